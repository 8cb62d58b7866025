"""What a cluster suite sees of its cluster (generator/views.py): declared in the suite, the only
thing there when it runs, and a read outside it fails check, naming what was read."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import pitr_bundle
from generator import audit
from generator.audit import read_manifest, suites_dir, suites_text
from generator.shapes import suite_runs
from generator.views import EVERYTHING, declared_view, view_manifest, write_view
from test_check import _fleet_specs

CLUSTER_SUITES = sorted(suites_dir().glob("cluster-*.bats"))


@pytest.fixture(scope="module")
def example_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    pitr_bundle("build", "specs", "-o", str(out), check=True)
    return out / "pitr1"


def _suites_with(tmp_path: Path, suite: str, old: str, new: str) -> Path:
    """A copy of the shipped suites with one line of one suite's declaration changed."""
    copy = tmp_path / "suites"
    shutil.copytree(suites_dir(), copy)
    path = copy / suite
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return copy


def _check(bundle: Path, suites: Path, filter_text: str, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(audit, "suites_dir", lambda: suites)
    rc = audit.run_bats(bundle, filter_text=filter_text)
    return rc, capsys.readouterr().out


@pytest.mark.parametrize("suite", [p.name for p in CLUSTER_SUITES])
def test_every_cluster_suite_declares_what_it_reads_and_each_name_exists(suite, example_bundle):
    view = declared_view(suites_dir() / suite)
    assert view != EVERYTHING, f"{suite}: no '# view' lines"
    manifest = read_manifest(example_bundle).data
    # every file a cluster can have, as the plan names them (the example has no binaries one)
    planned = re.findall(r'cluster_file\("([^"]+)", "([a-z-]+)"',
                         (Path(audit.__file__).parent / "plan.py").read_text())
    known = {role for _, role in planned} | {f"{role}:{path.rsplit('/', 1)[-1]}" for path, role in planned}
    for role in view.roles:
        assert role in known, f"{suite}: no role or file {role} in a cluster's files"
    facts = manifest["facts"]["clusters"][1]
    host = {k: v for k, v in manifest["facts"].items() if k != "clusters"}
    for source, paths in ((facts, view.facts), (host, view.host)):
        for path in paths:
            found = source
            for key in path.split("."):
                assert isinstance(found, dict) and key in found, f"{suite}: no fact {path}"
                found = found[key]


def test_a_view_holds_only_what_is_declared(example_bundle, tmp_path):
    manifest = read_manifest(example_bundle).data
    view = declared_view(suites_dir() / "cluster-snapshot.bats")
    root = write_view(example_bundle, manifest, 1, view, tmp_path / "view")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["MANIFEST.json", "SHA256SUMS", "clusters/pg168121/snapshot.sh"]
    seen = json.loads((root / "MANIFEST.json").read_text())
    assert seen == view_manifest(manifest, 1, view)
    assert sorted(seen["facts"]) == ["clusters", "pool"] and list(seen["facts"]["pool"]) == ["name"]
    assert set(seen["facts"]["clusters"][0]) == set(view.facts) - {"paths.pgdata", "paths.pghome"} | {"paths"}
    assert set(seen["facts"]["clusters"][0]["paths"]) == {"pgdata", "pghome"}
    # byte for byte, with its mode: the script runs from the view as from the bundle
    script = root / "clusters/pg168121/snapshot.sh"
    original = example_bundle / "clusters/pg168121/snapshot.sh"
    assert script.read_bytes() == original.read_bytes()
    assert script.stat().st_mode == original.stat().st_mode
    whole = json.loads((tmp_path / "view/whole.json").read_text())
    assert len(whole["files"]) == len(manifest["files"])
    assert whole["facts"]["clusters"] == [manifest["facts"]["clusters"][1]]


def test_a_fact_left_out_of_the_view_fails_check_and_is_named(example_bundle, tmp_path,
                                                              monkeypatch, capsys):
    """The snapshot suite reads the cluster's dataset; without it in its view the query differs
    from the whole bundle's answer: check fails and names the expression, whatever the test
    made of the failed query."""
    suites = _suites_with(tmp_path, "cluster-snapshot.bats",
                          "# view facts: name dataset ", "# view facts: name ")
    rc, out = _check(example_bundle, suites, "snapshot: takes", monkeypatch, capsys)
    assert rc == 1
    assert re.search(r"cluster-snapshot\.bats read outside its view .*: facts\['clusters'\]\[0\]\['dataset'\]", out), out
    rc, out = _check(example_bundle, suites_dir(), "snapshot: takes", monkeypatch, capsys)
    assert rc == 0 and "outside its view" not in out


def test_a_file_left_out_of_the_view_fails_check_and_is_named(example_bundle, tmp_path,
                                                              monkeypatch, capsys):
    """The snapshot cron installer installs wal-retention.sh too: left out of the view, the
    file is not there and the installer refuses (exit 3): the test fails, it does not pass on
    less."""
    suites = _suites_with(tmp_path, "cluster-snapshot-cron.bats",
                          "# view roles: snapshot-cron snapshot wal-retention",
                          "# view roles: snapshot-cron snapshot")
    rc, out = _check(example_bundle, suites, "installs the bundle", monkeypatch, capsys)
    assert rc == 1
    assert out.count("not ok 1 snapshot-cron: installs the bundle's snapshot") == 2
    assert "clusters/pg168121/wal-retention.sh is missing: the bundle is incomplete" in out


def test_clusters_alike_in_what_a_suite_sees_share_its_run(tmp_path):
    """Four clusters: the example's pg168104 (9.0) and pg168121 (17.6), and two copies of
    pg168121 of which one is moved to PostgreSQL 16: the snapshot suite, whose view holds
    nothing that differs between 16 and 17, runs once for the three; the restore suite, whose
    restore.sh differs (its major), runs twice for them. One changed byte of one cluster's
    snapshot.sh splits the suites that see it, and only them."""
    specs = _fleet_specs(tmp_path)
    path = specs / "clusters/pg168123.yaml"
    path.write_text(path.read_text().replace('version: "17.6"', 'version: "16.10"'))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    views = {p.name: declared_view(p) for p in CLUSTER_SUITES}

    def runs(suite: str) -> list[list[str]]:
        manifest = read_manifest(bundle).data
        names = [c["name"] for c in manifest["facts"]["clusters"]]
        groups = suite_runs(bundle, manifest, views, suites_text())[suite]
        return [[names[i] for i in group] for group in groups]

    assert runs("cluster-snapshot.bats") == [["pg168104"], ["pg168121", "pg168122", "pg168123"]]
    assert runs("cluster-restore.bats") == [["pg168104"], ["pg168121", "pg168122"], ["pg168123"]]
    script = bundle / "clusters/pg168122/snapshot.sh"
    script.write_text(script.read_text().replace("KEEP_DAILY=7", "KEEP_DAILY=8", 1))
    assert runs("cluster-snapshot.bats") == [["pg168104"], ["pg168121", "pg168123"], ["pg168122"]]
    assert runs("cluster-wal-retention.bats") == [["pg168104"], ["pg168121", "pg168123"], ["pg168122"]]
    assert runs("cluster-restore.bats") == [["pg168104"], ["pg168121", "pg168122"], ["pg168123"]]


def test_check_keeps_the_suites_files_in_its_own_scratch(monkeypatch, tmp_path):
    """A folder given in PITR_CHECK_TMPDIR wins; otherwise a memory file system where programs
    may run (on these machines /dev/shm), else the system's default."""
    monkeypatch.setenv(audit.SCRATCH_ENV, str(tmp_path))
    assert audit.scratch_root() == str(tmp_path)
    monkeypatch.delenv(audit.SCRATCH_ENV)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    if not audit._tmpfs_allowing_exec("/dev/shm"):
        pytest.skip("no /dev/shm tmpfs without noexec on this machine")
    assert audit.scratch_root() == "/dev/shm"
    assert not audit._tmpfs_allowing_exec(str(tmp_path)) or str(tmp_path).startswith("/dev/shm")


def test_no_cluster_suite_asks_whether_a_bundle_file_exists():
    """A view leaves undeclared files out: a suite that asked whether one exists (or listed the
    bundle's folders) would take another branch in the view than on the bundle, silently. The
    suites find files through query (compared with the whole bundle) and read them (a missing
    one fails); this keeps it so."""
    asking = re.compile(r"(\[\[?|test)\s+!?\s*-[efdsrx]\s+\"?\$\{?BUNDLE|(ls|find|compgen|stat)\b[^\n]*\$\{?BUNDLE\b")
    for suite in CLUSTER_SUITES:
        for number, line in enumerate(suite.read_text().splitlines(), 1):
            assert not asking.search(line), f"{suite.name}:{number}: {line.strip()}"
    assert asking.search('[[ -f "$BUNDLE/x" ]]') and asking.search("ls $BUNDLE/clusters")
