"""archive.method standby in the bundle: the example specs with pg168121 set to it (the example
itself keeps nfs, so `check` on it skips the standby branches): what the primary and the host get
and do not get, the nfs cluster beside it unchanged, and the shipped bats suites' standby
branches run on it (the standby step installing the helper and giving the archive folders to
the standby's user, its fault test, the helper's duplicate handling on the backup host)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLE_SPECS, pitr_bundle


@pytest.fixture(scope="module")
def standby_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("walstandby")
    specs = root / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    cluster = specs / "clusters/pg168121.yaml"
    cluster.write_text(cluster.read_text().replace("replication:", "archive: {method: standby}\nreplication:", 1))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    return root / "out/pitr1"


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


def test_the_suites_standby_branches_run(standby_bundle):
    result = pitr_bundle("check", str(standby_bundle), "--deep", "--filter",
                         "^(standby|primary|archive (helper|mount)|check-primary|faults: the (standby|primary-side) script)")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = result.stdout
    for name in ("installs the bundle's helper before the start and archives through it",
                 "the archive folders and the NFS path's day folders become the standby user's",
                 "a helper that differs from the bundle's SHA256SUMS is refused, nothing started",
                 "an inactive slot warns (nothing reaches the archive), a missing one is critical",
                 "installs nothing on the node and leaves another archive_command alone",
                 "a node of the NFS path is moved off it once the backup standby streams, with --restart"):
        ran = [line for line in out.splitlines() if name in line and line.startswith("ok ")]
        assert any("# skip" not in line for line in ran), name
    assert "archive helper: never overwrites; the same content again is success" in out
    assert out.count("ok 1 faults: the standby script") == 2
    assert "faults: the primary-side script" in out
