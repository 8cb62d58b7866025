"""The generated pool and datasets scripts against real ZFS (Debian's zfs-fuse, sparse files), on
the example specs' bundle derived by tests/derived_example.py (disks, pool name, mountpoints,
addresses; compression lzjb). Its cluster is pg168121; pg168104 (9.0) is dropped, as in the
other derived tests."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import pitr_bundle
from pg_backend import grant_traverse
from derived_example import CLUSTER, derived_specs
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = pytest.mark.zfs

PORTS = (27390, 27391, 27392)  # standby, primary, restore: nothing is started here


def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], check=True, capture_output=True, text=True).stdout


def write_specs(root: Path, pool: str, disks: list[Path], **change) -> Path:
    """The example specs derived by tests/derived_example.py: 3 sparse files for the raidz1, one
    for the log device and one for the spare, the pool named `pool`, mountpoints and the NFS
    files under root, addresses 127.0.0.1, compression lzjb (zfs-fuse has no lz4). `change`
    sets fields of pg168121 (a test that needs one names it and says why)."""
    specs = derived_specs(root, pool, disks[:3], PORTS, major=None, log=disks[3], spare=disks[4])
    cluster = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(cluster.read_text())
    spec.update(change)
    cluster.write_text(yaml.safe_dump(spec))
    return specs


def run_script(script: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(script), *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == expect, f"{script.name} {args}: exit {result.returncode}\n{result.stderr}"
    return result


@pytest.fixture
def host_bundle(zfs_fuse, tmp_path):
    pool = "pbt" + secrets.token_hex(3)
    disks = sparse_disks(tmp_path / "disks", 5)
    specs = write_specs(tmp_path, pool, disks)
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    yield pool, tmp_path / "out/pitr1", disks
    destroy_pool(pool)


def layout(pool: str) -> str:
    return subprocess.run(["zpool", "status", pool], check=True, capture_output=True, text=True).stdout


def test_pool_script_builds_the_spec_layout_and_properties(host_bundle):
    pool, bundle, disks = host_bundle
    run_script(bundle / "host/10-pool.sh", "--yes")
    status = layout(pool)
    config = status[status.index("config:"):]
    assert "raidz1-0" in config
    for disk in disks[:3]:
        assert str(disk) in config.split("logs")[0]
    assert str(disks[3]) in config.split("logs")[1].split("spares")[0]
    assert str(disks[4]) in config.split("spares")[1]
    ashift = subprocess.run(["zpool", "get", "ashift", pool], capture_output=True, text=True).stdout
    assert ashift.splitlines()[1].split()[2] == "12"
    for prop, value in {"compression": "lzjb", "atime": "off", "canmount": "off", "dedup": "off"}.items():
        assert zfs("get", "-H", "-o", "value", prop, pool).strip() == value


def test_second_run_changes_nothing(host_bundle):
    pool, bundle, _ = host_bundle
    run_script(bundle / "host/10-pool.sh", "--yes")
    history_before = subprocess.run(["zpool", "history", pool], capture_output=True, text=True).stdout
    again = run_script(bundle / "host/10-pool.sh", "--yes")
    assert "already present with the spec's layout" in again.stderr
    assert "run:" not in again.stderr
    history_after = subprocess.run(["zpool", "history", pool], capture_output=True, text=True).stdout
    assert history_after == history_before


def test_drifted_property_is_reconciled(host_bundle):
    pool, bundle, _ = host_bundle
    run_script(bundle / "host/10-pool.sh", "--yes")
    zfs("set", "atime=on", pool)
    result = run_script(bundle / "host/10-pool.sh", "--yes")
    assert "run: zfs set atime=off" in result.stderr
    assert zfs("get", "-H", "-o", "value", "atime", pool).strip() == "off"


def test_datasets_are_created_mounted_and_idempotent(zfs_fuse, tmp_path):
    """One field changed from the example: pg168121 gets properties {recordsize: 8K} (the example
    sets no dataset property), to prove a cluster's properties reach its dataset."""
    pool = "pbd" + secrets.token_hex(3)
    specs = write_specs(tmp_path, pool, sparse_disks(tmp_path / "disks", 5), properties={"recordsize": "8K"})
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    try:
        run_script(bundle / "host/10-pool.sh", "--yes")
        run_script(bundle / "host/20-datasets.sh")
        mnt = tmp_path / "mnt"
        for name, mountpoint in [("pg_home", "pg_home"), ("pg_arch", "pg_arch"), ("pg_log", "pg_log"),
                                 (CLUSTER, CLUSTER), (f"pg_arch/{CLUSTER}", f"pg_arch/{CLUSTER}")]:
            dataset = f"{pool}/{name}"
            assert zfs("get", "-H", "-o", "value", "mountpoint", dataset).strip() == str(mnt / mountpoint)
            assert zfs("get", "-H", "-o", "value", "mounted", dataset).strip() == "yes"
            # inherited from the pool root
            assert zfs("get", "-H", "-o", "value", "compression", dataset).strip() == "lzjb"
        assert zfs("get", "-H", "-o", "value", "recordsize", f"{pool}/{CLUSTER}").strip() == "8K"
        # the archive, which root on every primary writes into: nothing in it runs
        hardened = {"exec": "off", "setuid": "off", "devices": "off"}
        archive = f"{pool}/pg_arch"
        for prop, value in hardened.items():
            assert zfs("get", "-H", "-o", "value,source", prop, archive).split() == [value, "local"]
            assert zfs("get", "-H", "-o", "value", prop, f"{pool}/{CLUSTER}").strip() == "on"
        again = run_script(bundle / "host/20-datasets.sh")
        # the shared three, the cluster's and its WAL archive's
        assert "0 created, 0 updated, 5 already present" in again.stderr
        assert "run:" not in again.stderr
        # an archive dataset made before (with them on) is brought in line; --dry-run only says so
        zfs("set", "exec=on", archive)
        zfs("inherit", "setuid", archive)
        planned = run_script(bundle / "host/20-datasets.sh", "--dry-run")
        assert f"would run: zfs set exec=off {archive}" in planned.stderr
        assert zfs("get", "-H", "-o", "value", "exec", archive).strip() == "on"
        fixed = run_script(bundle / "host/20-datasets.sh")
        assert f"{archive}: 2 properties updated" in fixed.stderr
        for prop, value in hardened.items():
            assert zfs("get", "-H", "-o", "value", prop, archive).strip() == value
    finally:
        destroy_pool(pool)


def test_dry_run_changes_nothing_on_real_zfs(host_bundle):
    pool, bundle, _ = host_bundle
    result = run_script(bundle / "host/10-pool.sh", "--dry-run")
    assert "would run: zpool create" in result.stderr
    assert subprocess.run(["zpool", "list", pool], capture_output=True).returncode != 0


def test_a_disk_already_in_a_pool_is_refused(host_bundle, tmp_path):
    pool, bundle, disks = host_bundle
    other = "pbo" + secrets.token_hex(3)
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-m", "none", other, str(disks[1])],
                   check=True)
    try:
        result = run_script(bundle / "host/10-pool.sh", "--yes", "--force", expect=3)
        assert f"device {disks[1]} belongs to an imported pool" in result.stderr
        assert subprocess.run(["zpool", "list", pool], capture_output=True).returncode != 0
    finally:
        destroy_pool(other)


def test_a_disk_with_an_old_pool_label_needs_force(host_bundle):
    pool, bundle, disks = host_bundle
    old = "pbl" + secrets.token_hex(3)
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-m", "none", old, str(disks[0])],
                   check=True)
    destroy_pool(old)  # the label stays on the disk
    result = run_script(bundle / "host/10-pool.sh", "--yes", expect=3)
    assert f"{disks[0]} carries TYPE=zfs_member" in result.stderr
    run_script(bundle / "host/10-pool.sh", "--yes", "--force")
    assert "raidz1-0" in layout(pool)


def test_existing_pool_with_another_layout_is_refused(zfs_fuse, tmp_path):
    pool = "pbx" + secrets.token_hex(3)
    disks = sparse_disks(tmp_path / "disks", 5)
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-m", "none", pool, "mirror",
                    str(disks[0]), str(disks[1])], check=True)
    try:
        specs = write_specs(tmp_path, pool, disks)
        pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
        result = run_script(tmp_path / "out/pitr1/host/10-pool.sh", "--yes", expect=3)
        assert "exists with another layout" in result.stderr
        assert "data mirror disk00 disk01" in result.stderr
    finally:
        destroy_pool(pool)


def test_host_scripts_in_run_order_on_real_zfs(host_bundle, tmp_path):
    """pool -> datasets -> user -> NFS exports, as the bundle README orders them, for real."""
    pool, bundle, _ = host_bundle
    mnt = tmp_path / "mnt"
    subprocess.run(["userdel", "-r", CLUSTER], capture_output=True)
    subprocess.run(["groupdel", CLUSTER], capture_output=True)
    try:
        run_script(bundle / "host/10-pool.sh", "--yes")
        run_script(bundle / "host/20-datasets.sh")
        run_script(bundle / f"clusters/{CLUSTER}/30-user.sh")
        assert (mnt / CLUSTER / "pg_root").stat().st_mode & 0o777 == 0o700
        first = run_script(bundle / "host/40-nfs-exports.sh")
        exports = (tmp_path / "etc/exports").read_text()
        assert f"{mnt}/pg_arch/{CLUSTER} 127.0.0.1(rw,no_root_squash,sync)" in exports
        archive = mnt / "pg_arch" / CLUSTER / "arch"
        assert archive.is_dir() and archive.stat().st_mode & 0o7777 == 0o2750
        assert "port=892" in (tmp_path / "etc/nfs.conf.d/pitr-bundle.conf").read_text()
        # every script again: nothing changes
        for script in ("host/10-pool.sh", "host/20-datasets.sh", f"clusters/{CLUSTER}/30-user.sh",
                       "host/40-nfs-exports.sh"):
            again = run_script(bundle / script, "--yes") if "pool" in script else run_script(bundle / script)
            assert "run:" not in again.stderr, f"{script} changed something on a second run:\n{again.stderr}"
        assert (tmp_path / "etc/exports").read_text() == exports
        assert "run: install" in first.stderr
    finally:
        subprocess.run(["userdel", "-r", CLUSTER], capture_output=True)
        subprocess.run(["groupdel", CLUSTER], capture_output=True)


def snapshot_names(dataset: str) -> list[str]:
    return zfs("list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", "-s", "name", dataset).split()


def fake_standby(bundle: Path, cluster: dict) -> None:
    """The cluster's user, and binaries that say its standby runs in recovery: the snapshot
    script snapshots nothing else. This test is about the scope of ZFS changes; the standby
    checks are proven on a real standby in test_generations_zfs_pg.py."""
    run_script(bundle / f"clusters/{CLUSTER}/30-user.sh")
    pghome, pgdata = Path(cluster["paths"]["pghome"]), Path(cluster["paths"]["pgdata"])
    (pghome / "bin").mkdir(parents=True, exist_ok=True)
    (pghome / "bin/pg_ctl").write_text("#!/bin/sh\nexit 0\n")
    (pghome / "bin/pg_controldata").write_text(
        "#!/bin/sh\nprintf 'Database system identifier: 7301234567890123456\\n"
        "Database cluster state: in archive recovery\\nLatest checkpoint'\\''s TimeLineID: 1\\n'\n")
    for tool in ("pg_ctl", "pg_controldata"):
        (pghome / "bin" / tool).chmod(0o755)
    grant_traverse(pghome / "bin")  # the cluster's user runs them, below the test's own folder
    (pgdata / "global").mkdir(parents=True, exist_ok=True)
    (pgdata / "global/pg_control").touch()
    (pgdata / "PG_VERSION").write_text(cluster["postgres_major"] + "\n")


def test_snapshot_and_restore_act_only_on_their_own_dataset(host_bundle):
    """Scope on real ZFS: the snapshot script prunes only its dataset's snapshots of its prefix
    (not a neighbour whose name starts the same, nor an unrelated dataset, nor other prefixes),
    and the restore script refuses a clone under its restore parent that is not of its dataset."""
    pool, bundle, _ = host_bundle
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    cluster = manifest["facts"]["clusters"][0]
    own, prefix = cluster["dataset"], cluster["snapshots"]["prefix"]
    run_script(bundle / "host/10-pool.sh", "--yes")
    run_script(bundle / "host/20-datasets.sh")
    neighbours = [own + "x", f"{pool}/unrelated"]
    for dataset in neighbours:
        zfs("create", dataset)
    # six snapshots within one hour of 2020: the policy keeps one of them
    stamps = [f"20200101T00{minute:02d}00Z" for minute in range(0, 60, 10)]
    for dataset in [own, *neighbours]:
        for stamp in stamps:
            zfs("snapshot", f"{dataset}@{prefix}{stamp}")
    zfs("snapshot", f"{own}@manual-{stamps[0]}")
    before = {dataset: snapshot_names(dataset) for dataset in neighbours}

    try:
        fake_standby(bundle, cluster)
        result = run_script(bundle / f"clusters/{cluster['name']}/snapshot.sh")
    finally:
        subprocess.run(["userdel", "-r", CLUSTER], capture_output=True)
        subprocess.run(["groupdel", CLUSTER], capture_output=True)
    assert "pruned 5" in result.stderr, result.stderr
    kept = snapshot_names(own)
    assert f"{own}@manual-{stamps[0]}" in kept and f"{own}@{prefix}{stamps[-1]}" in kept
    assert len(kept) == 3, kept  # the manual one, the newest of 2020 and the one just taken
    assert {dataset: snapshot_names(dataset) for dataset in neighbours} == before

    restore = bundle / f"clusters/{cluster['name']}/restore.sh"
    parent = re.search(r"^readonly RESTORE_PARENT='?([^'\n]+)'?$", restore.read_text(), re.M).group(1)
    zfs("create", "-p", "-o", "canmount=off", parent)
    foreign = f"{parent}/{cluster['name']}-evil"
    zfs("clone", f"{neighbours[0]}@{prefix}{stamps[0]}", foreign)
    refused = run_script(restore, "--cleanup", "evil", "--yes", expect=3)
    assert "is not a clone of" in refused.stderr
    refused = run_script(restore, "--latest", "--name", "evil", "--yes", expect=3)
    assert "for another target" in refused.stderr
    assert zfs("list", "-H", "-o", "name", foreign).strip() == foreign
    assert zfs("get", "-H", "-o", "value", "origin", foreign).strip() == f"{neighbours[0]}@{prefix}{stamps[0]}"


def test_a_cluster_dataset_one_level_deeper_is_created_with_its_parent(zfs_fuse, tmp_path):
    """validate accepts zp1/standby/crm14; the datasets script must create it (zfs create -p),
    not stop at "parent does not exist". One field changed from the example: pg168121's dataset
    is <pool>/standby/pg168121 (the example's is one level deep)."""
    pool = "pbn" + secrets.token_hex(3)
    disks = sparse_disks(tmp_path / "disks", 5)
    specs = write_specs(tmp_path, pool, disks, dataset=f"{pool}/standby/{CLUSTER}")
    pitr_bundle("validate", str(specs), check=True)
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    try:
        run_script(bundle / "host/10-pool.sh", "--yes")
        run_script(bundle / "host/20-datasets.sh")
        assert zfs("get", "-H", "-o", "value", "mountpoint", f"{pool}/standby/{CLUSTER}").strip() == \
            str(tmp_path / "mnt" / CLUSTER)
        assert zfs("get", "-H", "-o", "value", "mounted", f"{pool}/standby/{CLUSTER}").strip() == "yes"
        again = run_script(bundle / "host/20-datasets.sh")
        assert "0 created, 0 updated, 5 already present" in again.stderr
    finally:
        destroy_pool(pool)
