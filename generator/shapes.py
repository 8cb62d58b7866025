"""Which clusters a cluster suite needs to run on: one per distinct view, up to names.

What a suite sees of a cluster is its view (generator/views.py): the files and facts it
declares, nothing else, enforced while it runs. Two clusters whose views are the same text
once their IDENTITY values are replaced by placeholders are the same program run on the same
facts, up to those values: version-dependent branches, hot standby
on or off, a slot or none, keep counts, configure lines, custom paths, a hook, any new fact
or file another script role adds, all stay in the text as they are and so split clusters
into shapes. Only the identity values are abstracted, each to a placeholder that keeps:
- which value it is (equal values, e.g. a user named like its cluster, share a placeholder;
  different ones do not);
- the order of its character classes: a run of ASCII lower-case letters stands as `a`, of
  upper-case ones as `A`, of digits as `0`, every other character as itself. So a value with
  `.`, `-`, `%`, `*`, a space, a quote or a non-ASCII letter shapes its own group, and so do
  all-digit and all-letter values; 10.1.0.2 and 10.1.0.10, c7 and c12 do not (an opaque word's
  length is nothing a script or suite reads: no width, offset or limit applies to these
  values; validate bounds their lengths).
A value counts where it stands as a whole number or word: not as a part of a longer number
(digits and dots), so the host address 10.0.0.1 holds neither the version 10.0 nor the value
0.1, and 54321 does not hold the port 5432.
A value is not abstracted (and so makes a shape of its own) when the suites hold it so (e.g.
port 5432, which their fake postgresql.conf says, or 15, a PG_VERSION they write): there a
suite could tell it from another of its class. A suite that matched a part of a longer number
would have to write that part itself, and so would hold it.
Which occurrences are replaced does not bear on soundness, only on how many clusters share a
shape: whatever is not replaced stays literal and must then be equal text in both.
The digests of the specs (in each script's provenance header) are abstracted to one
placeholder: nothing reads them but a reviewer.
The argument rests on the scripts and suites treating identity values as opaque words:
compared for equality, joined into paths, passed as arguments, never ordered or computed
with (a computed value such as the restore port is a fact of its own). Replacing text
throughout (not only in `readonly` lines) also catches a value that coincides with other
text of a script: the texts then differ, and so do the shapes.
tests/test_check.py: clusters that differ only in identity values share a key; a changed
byte in one cluster's file, a value of another class, or a value the suites name, each gives
a key of its own; the key covers every fact in the view. tests/test_views.py: what lies
outside a suite's view splits none of its runs, what lies inside does."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from generator.views import View, view_manifest

# facts (paths in a cluster's MANIFEST facts) that name a cluster rather than shape it
IDENTITY = (("name",), ("user",), ("port",), ("restore_port",), ("postgres_version",),
            ("primary", "address"), ("primary", "nodes"), ("primary", "port"),
            ("replication_user",), ("drill", "port"))

_CLASS = str.maketrans({**dict.fromkeys("abcdefghijklmnopqrstuvwxyz", "a"),
                        **dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "A"),
                        **dict.fromkeys("0123456789", "0")})


_RUN = re.compile(r"a+|A+|0+")


def value_class(value: str) -> str:
    """`value`'s class: its characters' classes, each run of one class as one character."""
    return _RUN.sub(lambda run: run.group()[0], value.translate(_CLASS))


def _standing(value: str) -> str:
    """A pattern of `value` where it stands whole, not inside a longer number."""
    return r"(?<![0-9])(?<![0-9]\.)" + re.escape(value) + r"(?![0-9])(?!\.[0-9])"


def named_by(value: str, suites_text: str) -> bool:
    """Whether the suites hold `value` (see the module's docstring)."""
    return re.search(_standing(value), suites_text) is not None


def _identity_values(facts: dict, suites_text: str) -> list[str]:
    values: list[str] = []
    for path in IDENTITY:
        found = facts
        for key in path:
            found = found.get(key) if isinstance(found, dict) else None
        for value in found if isinstance(found, list) else [found]:
            if value is None or isinstance(value, bool):
                continue
            text = str(value)
            if text and text not in values and not named_by(text, suites_text):
                values.append(text)
    return values


class Abstraction:
    """A cluster's text with its identity values (and the specs' digests) as placeholders."""

    def __init__(self, manifest: dict, index: int, suites_text: str):
        values = _identity_values(manifest["facts"]["clusters"][index], suites_text)
        self.placeholder = {v: f"\0{n}:{value_class(v)}\0" for n, v in enumerate(values)}
        # the specs' digests in the provenance headers: opaque, only ever compared whole
        for spec in manifest.get("specs", []):
            if spec["sha256"] not in self.placeholder:
                values.append(spec["sha256"])
                self.placeholder[spec["sha256"]] = "\0spec digest\0"
        self.pattern = (re.compile("|".join(_standing(v) for v in
                                            sorted(values, key=len, reverse=True)))
                        if values else None)

    def __call__(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: self.placeholder[m.group()], text)


def view_key(bundle_dir: Path, manifest: dict, index: int, view: View, suites_text: str,
             abstraction: Abstraction | None = None, contents: dict | None = None) -> str:
    """The key of what a suite sees of the cluster at `index` through `view` (generator/
    views.py), up to the cluster's identity values: equal keys, the same test run. `contents`
    caches the abstracted text of the cluster's files by path (one cluster, many suites)."""
    abstract = abstraction or Abstraction(manifest, index, suites_text)
    contents = {} if contents is None else contents
    seen = view_manifest(manifest, index, view)
    seen["files"] = [{k: v for k, v in entry.items() if k != "sha256"} for entry in seen["files"]]
    material = [abstract(json.dumps(seen, sort_keys=True, ensure_ascii=False))]
    for entry in seen["files"]:
        if entry["path"] not in contents:
            raw = (bundle_dir / entry["path"]).read_bytes().decode("utf-8", "surrogateescape")
            contents[entry["path"]] = abstract(raw)
        material.append(contents[entry["path"]])
    return hashlib.sha256("\0\0".join(material).encode("utf-8", "surrogateescape")).hexdigest()


def suite_runs(bundle_dir: Path, manifest: dict, views: dict[str, View],
               suites_text: str) -> dict[str, list[list[int]]]:
    """For each suite (by name), the clusters' indexes grouped by that suite's view key, in
    MANIFEST order; the first of each group is the one the suite runs on."""
    runs: dict[str, dict[str, list[int]]] = {suite: {} for suite in views}
    for index in range(len(manifest["facts"]["clusters"])):
        abstraction, contents = Abstraction(manifest, index, suites_text), {}
        for suite, view in views.items():
            key = view_key(bundle_dir, manifest, index, view, suites_text, abstraction, contents)
            runs[suite].setdefault(key, []).append(index)
    return {suite: list(groups.values()) for suite, groups in runs.items()}
