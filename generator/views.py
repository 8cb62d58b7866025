"""What a cluster suite sees of a bundle: its view, declared in the suite, enforced by check.

A cluster suite runs against one cluster. It used to see the whole bundle, so it had to run
again on every cluster whose files or facts differed anywhere (generator/shapes.py), even
where it reads none of the difference: the snapshot suite ran once per PostgreSQL major
although snapshot.sh is the same program on all of them. Now each cluster suite declares, in
comment lines of its own file, what it reads:

    # view roles: snapshot wal-retention    the cluster's files of these roles (or one of a
                                            # role's files: primary:pitr-archive-wal.sh)
    # view facts: name dataset snapshots    the cluster's facts (dotted paths: drill.port)
    # view host: pool.name                  facts of the host (outside facts.clusters)

and check runs it on a folder that holds only that: the declared files at their paths in the
bundle (byte for byte, with their modes), the bundle's SHA256SUMS and signatures (the same for
every cluster: scripts check their own line), and a MANIFEST.json with the declared facts, the
declared files' entries and the bundle's generator, version and host name. The suite then runs
once per distinct view (shapes.view_key: the view's text up to the cluster's identity values),
not once per shape of the whole cluster.

Why nothing it could find is missed. A suite, and the scripts it runs, learn about a cluster
from the bundle folder alone (the suites read it through PITR_BUNDLE_DIR, the scripts read
their own folder; the rest of the machine is the same for every cluster). In a view folder, whatever is not declared is not there:
- a script that reads an undeclared file fails (an installer refuses a missing file with exit
  3, a suite's cmp or rebase of it fails), so the test fails, it does not pass on less;
- a query (test_helper.bash: query) is answered from the view and, in the same process, from
  the whole bundle (every file, every fact of the cluster): if the two answers differ, for
  example a fact the view lacks, or a list of files that would hold one more, the query fails
  and writes the expression to PITR_VIEW_MISSES; check then fails that suite, naming what it
  read outside its view, whatever the test made of the failure.
So a suite that passes on a view passes on what it read of the whole bundle, and two clusters
with the same view (up to identity values) are the same test run twice.
A suite without a declaration sees all of its cluster and every fact of the host (and so runs
on nearly every cluster); tests/test_views.py fails while a cluster suite has none.
tests/test_views.py: a fact or role left out of a declaration fails check and is named;
clusters that differ only outside a suite's view share its run; inside, they split it."""

from __future__ import annotations

import copy
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_DECLARATION = re.compile(r"^# view (roles|facts|host):(.*)$", re.M)
GLOBAL_FILES = ("SHA256SUMS",)  # the same for every cluster; scripts look up their own line
GLOBAL_FOLDERS = ("signatures",)  # pitr-bundle sign: what check_signatures reads
MANIFEST_KEYS = ("generator", "version", "host")  # the same for every cluster


@dataclass(frozen=True)
class View:
    """A suite's declared reads; None: all of that kind (a suite that declares nothing)."""
    roles: tuple[str, ...] | None
    facts: tuple[str, ...] | None
    host: tuple[str, ...] | None


EVERYTHING = View(None, None, None)


def declared_view(suite: Path) -> View:
    """The view a suite's `# view ...:` lines declare (EVERYTHING when it has none)."""
    found: dict[str, tuple[str, ...]] = {}
    for kind, words in _DECLARATION.findall(suite.read_text(errors="replace")):
        found[kind] = found.get(kind, ()) + tuple(words.split())
    if not found:
        return EVERYTHING
    return View(found.get("roles", ()), found.get("facts", ()), found.get("host", ()))


def _pick(data: dict, paths: tuple[str, ...] | None) -> dict:
    """The parts of `data` at the dotted `paths` (all of it for None), nested as in data."""
    if paths is None:
        return copy.deepcopy(data)
    picked: dict = {}
    for path in paths:
        keys = path.split(".")
        source, target = data, picked
        for key in keys[:-1]:
            if not isinstance(source, dict) or not isinstance(source.get(key), dict):
                break
            source = source[key]
            target = target.setdefault(key, {})
        else:
            if isinstance(source, dict) and keys[-1] in source:
                target[keys[-1]] = copy.deepcopy(source[keys[-1]])
    return picked


def view_files(manifest: dict, index: int, view: View) -> list[dict]:
    """The MANIFEST entries of the cluster's files the view holds."""
    name = manifest["facts"]["clusters"][index]["name"]
    return [entry for entry in manifest["files"] if entry.get("cluster") == name
            and (view.roles is None or entry["role"] in view.roles
                 or f"{entry['role']}:{entry['path'].rsplit('/', 1)[-1]}" in view.roles)]


def view_manifest(manifest: dict, index: int, view: View) -> dict:
    """MANIFEST.json as the suite sees it in its view: the cluster at index 0."""
    host_facts = {k: v for k, v in manifest["facts"].items() if k != "clusters"}
    facts = _pick(host_facts, view.host)
    facts["clusters"] = [_pick(manifest["facts"]["clusters"][index], view.facts)]
    return {**{k: manifest[k] for k in MANIFEST_KEYS if k in manifest},
            "files": view_files(manifest, index, view), "facts": facts}


def whole_manifest(manifest: dict, index: int) -> dict:
    """The whole bundle as a query compares it (every file and fact; the cluster at index 0)."""
    return {**manifest, "facts": {**manifest["facts"],
                                  "clusters": [manifest["facts"]["clusters"][index]]}}


def write_view(bundle_dir: Path, manifest: dict, index: int, view: View, folder: Path) -> Path:
    """The view's bundle folder under `folder` (returned), and whole.json beside it."""
    root = folder / "bundle"
    root.mkdir(parents=True)
    for entry in view_files(manifest, index, view):
        target = root / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bundle_dir / entry["path"], target)
    for name in GLOBAL_FILES:
        if (bundle_dir / name).is_file():
            shutil.copy2(bundle_dir / name, root / name)
    for name in GLOBAL_FOLDERS:
        if (bundle_dir / name).is_dir():
            shutil.copytree(bundle_dir / name, root / name)
    (root / "MANIFEST.json").write_text(json.dumps(view_manifest(manifest, index, view)))
    (folder / "whole.json").write_text(json.dumps(whole_manifest(manifest, index)))
    return root
