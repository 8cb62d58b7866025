"""archive.method in the bundle. The example's pg168121 (17, a slot) archives through its backup
standby, the default from 9.5: what its primary and the host get and do not get, the 9.0
cluster beside it on NFS unchanged (`check` of the example runs the suites' standby branches).
And the same specs with pg168121 on `archive: {method: nfs}`: the suites' NFS branches on a
17 cluster (the example's own NFS cluster is 9.0), as a host built before standby became the
default has it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLE_SPECS, pitr_bundle


@pytest.fixture(scope="module")
def standby_bundle(tmp_path_factory) -> Path:
    """The example bundle, unchanged specs."""
    root = tmp_path_factory.mktemp("walstandby")
    pitr_bundle("build", str(EXAMPLE_SPECS), "-o", str(root / "out"), check=True)
    return root / "out/pitr1"


@pytest.fixture(scope="module")
def nfs_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("walnfs")
    specs = root / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    cluster = specs / "clusters/pg168121.yaml"
    cluster.write_text(cluster.read_text().replace("replication:", "archive: {method: nfs}\nreplication:", 1))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    return root / "out/pitr1"


def test_the_example_archives_through_the_standby_from_95(standby_bundle, nfs_bundle):
    methods = {c["name"]: c["archive"]["method"]
               for c in json.loads((standby_bundle / "MANIFEST.json").read_text())["facts"]["clusters"]}
    assert methods == {"pg168104": "nfs", "pg168121": "standby"}
    assert (nfs_bundle / "clusters/pg168121/primary/pitr-archive-wal.sh").exists()
    assert "/pg_arch/pg168121" in (nfs_bundle / "host/40-nfs-exports.sh").read_text()


def test_the_primary_gets_no_nfs_piece(standby_bundle):
    primary = standby_bundle / "clusters/pg168121/primary"
    assert sorted(p.name for p in primary.iterdir()) == [
        "45-apply-on-primary.sh", "check-primary.sh", "pg_hba.conf.lines", "pitr-archive.conf"]
    step = (primary / "45-apply-on-primary.sh").read_text()
    # it installs nothing of the NFS path (it only removes what an nfs bundle left: plan_leave_nfs)
    for absent in ("write_helper", "write_mount_script", "write_unit", "write_sudoers", "visudo",
                   "MOUNT_NOW", "install_file \"$HELPER\""):
        assert absent not in step, absent
    assert "leave_nfs_step\n" in step and "remove_boot_mount\n" in step
    settings = [line for line in (primary / "pitr-archive.conf").read_text().splitlines()
                if line and not line.startswith("#")]
    assert settings == ["archive_timeout = '60s'", "max_slot_wal_keep_size = '20GB'"]
    # the 9.0 cluster beside it still archives over NFS: its export stays, pg168121's is gone
    exports = (standby_bundle / "host/40-nfs-exports.sh").read_text()
    assert "readonly -a EXPORT_PATHS=(/pg_arch/pg168104)\n" in exports
    assert "/pg_arch/pg168121" not in exports and '"$ARCHIVE_ROOT"/pg168121' not in exports
    assert (standby_bundle / "clusters/pg168104/primary/pitr-archive-wal.sh").exists()


def test_the_standby_archives_through_the_helper(standby_bundle):
    cluster = standby_bundle / "clusters/pg168121"
    standby = (cluster / "60-standby.sh").read_text()
    assert "archive_mode = 'always'\n" in standby
    assert "archive_command = '/usr/local/sbin/pitr-archive-wal-pg168121 \"%p\" \"%f\"'\n" in standby
    helper = (cluster / "pitr-archive-wal.sh").read_text()
    assert "readonly MOUNT=/pg_arch/pg168121\n" in helper
    assert "readonly QUEUE_MAX=0\n" in helper
    assert "mountpoint -q" not in helper  # a local folder: no mount to check
    manifest = json.loads((standby_bundle / "MANIFEST.json").read_text())
    roles = {f["path"]: f["role"] for f in manifest["files"]}
    assert roles["clusters/pg168121/pitr-archive-wal.sh"] == "standby"
    # a restored or drilled clone never archives, whatever the standby does
    assert "printf \"archive_mode = 'off'\\n\"" in (cluster / "restore.sh").read_text()


def test_the_suites_nfs_branches_run_on_a_17_cluster(nfs_bundle):
    """What the example's pg168121 ran in `check` before standby became the default: the NFS
    path's primary step, helper and mount script on a 17 cluster (roles, slots, TLS, the
    archiver's views of 9.5+), which the 9.0 cluster cannot show. Their fault positions (tagged
    deep) run on the example's 9.0 cluster in check --deep of the example."""
    result = pitr_bundle("check", str(nfs_bundle), "--filter",
                         "^(standby|primary|archive (helper|mount)|check-primary)")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = result.stdout
    for name in ("primary: installs the archive helper, the boot mount service, the sudo rule and mounts",
                 "primary: a sudo rule visudo rejects stops it before any change",
                 "primary: on the HA partner (in recovery) the slot is made too, reserving no WAL",
                 "primary: the helper's state folder is readable to the server's group, an existing counter too"):
        ran = [line for line in out.splitlines() if name in line and line.startswith("ok ")]
        assert any("# skip" not in line for line in ran), name


def test_a_host_whose_standbys_all_archive_exports_nothing_and_passes_its_host_suites(tmp_path):
    """The example without its 9.0 cluster: every cluster archives through its standby (the
    default from 9.5 with a slot), so the exports script only takes out what an earlier bundle
    exported; the datasets suite passes, the exports suite runs its no-NFS tests and says why
    it skips the others (`check` of the example runs the rest with a standby cluster); the
    archive migration's tests run on a standby cluster, its NFS writer's skip, saying why."""
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    (specs / "clusters/pg168104.yaml").unlink()
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    exports = (bundle / "host/40-nfs-exports.sh").read_text()  # takes out what an earlier bundle exported
    assert 'install_block "$EXPORTS_FILE" "$BLOCK_TAG" "" 0644' in exports and "EXPORT_PATHS" not in exports
    result = pitr_bundle("check", str(bundle), "--filter", "^(nfs-exports|datasets)")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# skip no cluster of this bundle archives over NFS" in result.stdout
    ran = [line for line in result.stdout.splitlines() if line.startswith("ok ") and "(no NFS cluster)" in line]
    assert len(ran) == 3 and not any("# skip" in line for line in ran), result.stdout
    assert "ok 1 datasets:" in result.stdout
    # the archive migration of a standby-archived cluster runs; the NFS writer's tests say why not
    migration = [line for line in result.stdout.splitlines()
                 if line.startswith("ok ") and "datasets:" in line
                 and line.split(" # ")[0].endswith(("(standby cluster)", "(NFS cluster)"))]
    standby = [line for line in migration if "(standby cluster)" in line]
    nfs = [line for line in migration if "(NFS cluster)" in line]
    assert len(standby) == 3 and not any("# skip" in line for line in standby), result.stdout
    assert len(nfs) == 4 and all("# skip no cluster of this bundle archives through method nfs" in line
                                 for line in nfs), result.stdout
    assert any("of a standby-archived cluster holds nothing off" in line and "# skip" not in line
               for line in result.stdout.splitlines() if line.startswith("ok ")), result.stdout
