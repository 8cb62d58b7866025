"""Retired clusters: validation (what a retired spec still claims), the bundle it gets (only
its retire scripts; nothing else of the host knows it), what `build` says it removed, and the
shipped suites of the retire scripts run by `check` on that bundle."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, pitr_bundle
from test_check import CHANGES_NOTHING, FAULT_TESTS
from test_validate import edit, errors_of, line_of

RETIRED = "pg168104"
ACTIVE = "pg168121"


def retire(specs: Path, name: str = RETIRED) -> Path:
    cluster = specs / f"clusters/{name}.yaml"
    edit(cluster, f"name: {name}\n", f"name: {name}\nretired: true\n")
    return cluster


@pytest.fixture
def retired_specs(specs_copy: Path) -> Path:
    retire(specs_copy)
    return specs_copy


def test_a_retired_cluster_validates_and_is_counted(retired_specs):
    result = pitr_bundle("validate", str(retired_specs))
    assert result.returncode == 0, result.stderr
    assert "ok: 2 host spec(s), 1 cluster spec(s), 1 retired" in result.stdout


def test_a_retired_clusters_port_is_free_again(retired_specs):
    # the active cluster takes the retired one's standby port and its default restore port
    edit(retired_specs / f"clusters/{ACTIVE}.yaml", "port: 19212", "port: 19211")
    assert pitr_bundle("validate", str(retired_specs)).returncode == 0


def test_a_retired_cluster_keeps_its_dataset_mountpoint_and_os_user(retired_specs):
    active = retired_specs / f"clusters/{ACTIVE}.yaml"
    text = active.read_text()
    for key, value in (("dataset", f"zp1/{RETIRED}"), ("mountpoint", f"/{RETIRED}"),
                       ("os_user", RETIRED)):
        text = re.sub(rf"^{key}: .*$", f"{key}: {value}", text, count=1, flags=re.M)
    active.write_text(text)
    errors = errors_of(retired_specs)
    retired_file = retired_specs / f"clusters/{RETIRED}.yaml"
    for key, what in (("dataset", "dataset"), ("mountpoint", "mountpoint"), ("os_user", "OS user")):
        line = line_of(active, f"{key}: ")
        first = line_of(retired_file, f"{key}: ")
        assert any(e.startswith(f"{active}:{line}: {key}: {what} ")
                   and f"already used at {retired_file}:{first} (retired cluster {RETIRED} there)" in e
                   for e in errors), errors


def test_a_retired_cluster_still_holds_its_primary_server(retired_specs):
    # its removal script takes out the include and helper that a new spec's would put there
    active = retired_specs / f"clusters/{ACTIVE}.yaml"
    edit(active, "  address: 192.168.1.121\n  port: 5432\n", "  address: 192.168.1.104\n  port: 1921\n")
    errors = errors_of(retired_specs)
    line = line_of(active, "  port: 1921")
    assert any(e.startswith(f"{active}:{line}: primary.port: PostgreSQL server 192.168.1.104:1921 "
                            "is already used at") for e in errors), errors


def test_schema_describes_retired():
    schema = json.loads((REPO / "schema/cluster.schema.json").read_text())
    assert "90-retire.sh" in schema["properties"]["retired"]["description"]


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "MANIFEST.json").read_text())


def test_the_bundle_of_a_retired_cluster_holds_only_its_retire_scripts(retired_specs, tmp_path):
    out = tmp_path / "out"
    pitr_bundle("build", str(retired_specs), "-o", str(out), check=True)
    bundle = out / "pitr1"
    files = {f["path"]: f for f in _manifest(bundle)["files"] if f["cluster"] == RETIRED}
    assert sorted(files) == [f"clusters/{RETIRED}/90-retire.sh",
                             f"clusters/{RETIRED}/primary/45-remove-from-primary.sh"]
    retire_file = files[f"clusters/{RETIRED}/90-retire.sh"]
    assert (retire_file["role"], retire_file["order"], retire_file["destructive"]) == ("retire", 90, True)
    remove = files[f"clusters/{RETIRED}/primary/45-remove-from-primary.sh"]
    assert (remove["role"], remove["order"], remove["runs_on"]) == (
        "primary-remove", 45, "primary 192.168.1.104 and 192.168.1.105")
    facts = _manifest(bundle)["facts"]
    assert [c["name"] for c in facts["clusters"]] == [ACTIVE]
    assert [c["name"] for c in facts["retired"]] == [RETIRED]
    # nothing else of the host knows it: no dataset to create, no export, no VIP route, no check
    for path in ("host/20-datasets.sh", "host/40-nfs-exports.sh", "host/monitor.sh",
                 "host/80-install-monitor.sh", "host/15-vip.sh"):
        text = (bundle / path).read_text()
        assert f"zp1/{RETIRED}" not in text and f"check_cluster {RETIRED}" not in text, path
        assert f"/pg_arch/{RETIRED}" not in text, path
    assert "192.168.1.104" not in (bundle / "host/15-vip.sh").read_text().split("# ---")[-1]
    readme = (bundle / "README.md").read_text()
    assert f"`clusters/{RETIRED}/90-retire.sh` | backup host" in readme
    assert f"- `{RETIRED}`: standby on port 19211, dataset `zp1/{RETIRED}`" in readme
    # the retire script names what it removes, as the installers install it
    script = (bundle / f"clusters/{RETIRED}/90-retire.sh").read_text()
    for installed in (f"/etc/cron.d/pitr-bundle-{RETIRED}", f"/etc/cron.d/pitr-bundle-{RETIRED}-drill",
                      f"/usr/local/sbin/pitr-snapshot-{RETIRED}",
                      f"/usr/local/sbin/pitr-wal-retention-{RETIRED}",
                      f"/usr/local/sbin/pitr-drill-{RETIRED}", f"/usr/local/sbin/pitr-restore-{RETIRED}"):
        assert f"={installed}\n" in script, installed


def test_installers_install_what_the_retire_script_removes(specs_copy, tmp_path):
    """The names the retire script removes are the ones 70- and 75-install-*.sh install."""
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    base = out / f"pitr1/clusters/{RETIRED}"
    snapshot = (base / "70-install-snapshot-cron.sh").read_text()
    drill = (base / "75-install-drill-cron.sh").read_text()
    assert f"readonly CRON_FILE=/etc/cron.d/pitr-bundle-{RETIRED}\n" in snapshot
    assert f"readonly SNAPSHOT_SCRIPT=/usr/local/sbin/pitr-snapshot-{RETIRED}\n" in snapshot
    assert f"readonly RETENTION_SCRIPT=/usr/local/sbin/pitr-wal-retention-{RETIRED}\n" in snapshot
    assert f"readonly CRON_FILE=/etc/cron.d/pitr-bundle-{RETIRED}-drill\n" in drill
    assert f"readonly DRILL_SCRIPT=/usr/local/sbin/pitr-drill-{RETIRED}\n" in drill
    assert f"readonly RESTORE_SCRIPT=/usr/local/sbin/pitr-restore-{RETIRED}\n" in drill


def test_build_says_which_cluster_files_it_removed_and_why(specs_copy, tmp_path):
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    retire(specs_copy)
    check = pitr_bundle("build", str(specs_copy), "-o", str(out), "--check")
    assert check.returncode == 1
    result = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    bundle = out / "pitr1"
    for output in (check.stdout, result.stdout):
        assert (f"removed    {bundle}/clusters/{RETIRED}/50-basebackup.sh  (cluster {RETIRED} is "
                "retired)") in output
        assert f"new        {bundle}/clusters/{RETIRED}/90-retire.sh" in output
        summary = [line for line in output.splitlines() if line.startswith("retired ")]
        assert summary == [f"retired    {RETIRED}: removed 20 file(s) of clusters/{RETIRED}/; run "
                           f"clusters/{RETIRED}/primary/45-remove-from-primary.sh on its primary, "
                           f"then clusters/{RETIRED}/90-retire.sh on pitr1"], output
    assert not (bundle / f"clusters/{RETIRED}/50-basebackup.sh").exists()
    # the same build again removes nothing
    again = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    assert "removed" not in again.stdout and "retired " not in again.stdout


def test_build_points_at_retiring_when_a_cluster_spec_is_deleted(specs_copy, tmp_path):
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    (specs_copy / f"clusters/{RETIRED}.yaml").unlink()
    result = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    assert (f"removed    {out}/pitr1/clusters/{RETIRED}/restore.sh  (cluster {RETIRED} has no spec "
            "any more)") in result.stdout
    gone = [line for line in result.stdout.splitlines() if line.startswith("gone ")]
    assert len(gone) == 1 and "`retired: true`" in gone[0] and "standby" in gone[0], result.stdout


@pytest.fixture(scope="module")
def retired_bundles(tmp_path_factory):
    """The example specs with each cluster retired in turn (9.0 without a slot, 17 with one)."""
    bundles = {}
    for name in (RETIRED, ACTIVE):
        root = tmp_path_factory.mktemp(f"retired-{name}")
        specs = root / "specs"
        shutil.copytree(REPO / "specs", specs)
        retire(specs, name)
        pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
        bundles[name] = root / "out/pitr1"
    return bundles


@pytest.mark.parametrize("name", [RETIRED, ACTIVE])
def test_check_runs_the_retire_suites_and_their_faults(retired_bundles, name):
    result = pitr_bundle("check", str(retired_bundles[name]), "--deep", "--filter",
                         "retire|primary-remove|primary-side removal")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "ok 1 faults: the retire script" in result.stdout
    assert "faults: the primary-side removal" in result.stdout
    assert result.stdout.count("\nok ") >= 12 and "not ok" not in result.stdout
    assert "skipped" not in result.stdout


def test_every_script_role_of_a_retired_bundle_has_a_fault_test(retired_bundles):
    roles = {f["role"] for f in _manifest(retired_bundles[RETIRED])["files"]
             if f["path"].endswith(".sh")}
    assert {"retire", "primary-remove"} <= roles
    suites = "".join(p.read_text() for p in (REPO / "generator/suites").glob("*faults.bats"))
    for role in roles - CHANGES_NOTHING:
        assert f'@test "faults: {FAULT_TESTS[role]}' in suites, role
