"""Snapshots that know their system, and generations, for real: zfs-fuse + PostgreSQL 18 (whose
pg_controldata the client tools carry), on the bundle of the example specs with only disks,
addresses, ports and folders moved onto this machine (cluster pg168121, derived as the WAL
retention test derives it).

One pool, one primary and its standby serve the whole file, in order: the generated snapshot
script records the standby's real system identifier, major and timeline on a real snapshot;
it refuses a stopped standby (and takes one once it runs again), a PGDATA whose base backup is
unfinished, and a promoted standby. Then the primary is rebuilt (a new initdb: another system
identifier), whose archiving fails on the first name the old system used, and 50-basebackup.sh
takes a base backup of it: a new generation, said naming both systems; the old system's WAL
leaves the archive for generations/<old system>/ (checked by the system identifier in each
segment's header), so the new primary archives again; the old system's floor of kept WAL goes.
restore.sh refuses the old system's snapshot naming both systems, and restores the new
system's (the twin), which the old floor would have refused."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import derived_specs
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 18  # the client tools' pg_controldata must match the server's pg_control
CLUSTER = "pg168121"
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 28551, 28552, 28553


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch))


def zfs_get(prop: str, name: str) -> str:
    return subprocess.run(["zfs", "get", "-H", "-o", "value", prop, name], capture_output=True,
                          text=True, check=True).stdout.strip()


def header_system(segment: Path) -> int:
    """The system identifier in a WAL segment's first page header (offset 24 from 9.3 on)."""
    with open(segment, "rb") as f:
        f.seek(24)
        return struct.unpack("<Q", f.read(8))[0]


def segments(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.glob("*/*") if len(p.name) == 24 and p.is_file()}


class World:
    """The bundle, the pool, the primary and the standby the tests of this file share."""

    def __init__(self, root: Path, client_tools: Path):
        self.root = root
        self.pool = "pg" + os.urandom(3).hex()
        specs = derived_specs(root, self.pool, sparse_disks(root / "disks", 3, "1G"),
                              (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR)
        self.slot = yaml.safe_load((specs / f"clusters/{CLUSTER}.yaml").read_text())["replication"]["slot"]
        pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
        bundle = root / "out/pitr1"
        facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                     if c["name"] == CLUSTER)
        self.paths = facts["paths"]
        self.dataset = facts["dataset"]
        self.scripts = bundle / f"clusters/{CLUSTER}"
        self.archive = Path(self.paths["archive"])
        self.generations = Path(self.paths["generations"])
        self.pgdata = Path(self.paths["pgdata"])
        self.pghome = Path(self.paths["pghome"])
        self.env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        self.primary: pg.PgServer | None = None
        self.clones: list[str] = []
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([self.scripts / "30-user.sh"])
        primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        self.archive.mkdir(parents=True)
        for folder in (self.archive.parent, self.archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(CLUSTER).pw_gid)
            folder.chmod(0o2750)
        (root / "primary/bin").mkdir(parents=True)
        shutil.copy(self.scripts / "primary/pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
        (root / "primary/bin/pitr-archive-wal").chmod(0o755)
        home = compose_pghome(root / "soft", MAJOR, client_tools)
        wrapper = home / "bin/pg_controldata"
        wrapper.write_text(f'#!/bin/sh\nunset LD_LIBRARY_PATH\nexec {client_tools / "pg_controldata"} "$@"\n')
        wrapper.chmod(0o755)
        self.pghome.symlink_to(home)

    def new_primary(self, name: str) -> pg.PgServer:
        """A new initdb (a new system identifier) archiving into the cluster's archive, with the
        replication role and the spec's slot; the previous primary stopped."""
        if self.primary:
            self.primary.stop(mode="fast")
        primary = pg.PgServer(MAJOR, self.root / name / "data", PRIMARY_PORT)
        primary.initdb()
        user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        shutil.copy(self.scripts / "primary/pitr-archive.conf", primary.data_dir)
        os.chown(primary.data_dir / "pitr-archive.conf", user.pw_uid, user.pw_gid)
        with open(primary.conf_file, "a") as conf:
            conf.write("\ninclude 'pitr-archive.conf'\n")
        lines = (self.scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
        primary.hba([line for line in lines if line and not line.startswith("#")])
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        primary.psql(f"select pg_create_physical_replication_slot('{self.slot}')")
        primary.psql("create table t (id serial primary key, note text)")
        self.primary = primary
        return primary

    def system_id(self) -> str:
        return self.primary.psql("select system_identifier from pg_control_system()")

    def standby(self) -> pg.PgServer:
        return pg.PgServer(MAJOR, self.pgdata, STANDBY_PORT)

    def start_standby(self) -> None:
        run([self.scripts / "60-standby.sh"], env=self.env)
        wait_for("streaming", lambda: self.standby().psql("select status from pg_stat_wal_receiver") == "streaming")

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", CLUSTER, "--", "env", f"LD_LIBRARY_PATH={self.pghome}/lib",
                        str(self.pghome / "bin/pg_ctl"), "-D", str(self.pgdata), *args],
                       check=True, capture_output=True, timeout=120)

    def switch(self, note: str, times: int = 1) -> None:
        """Writes, switches WAL and waits until the segment is archived."""
        for _ in range(times):
            self.primary.psql(f"insert into t (note) values ('{note}')")
            segment = self.primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
            self.primary.psql("select pg_switch_wal()")
            wait_for(f"{segment} archived", lambda s=segment: any(self.archive.glob(f"*/{s}")))

    def replayed(self) -> None:
        """The standby replayed all the primary wrote, and made a restartpoint."""
        self.primary.psql("checkpoint")
        lsn = self.primary.psql("select pg_current_wal_lsn()")
        wait_for("replayed", lambda: self.standby().psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        self.standby().psql("checkpoint")

    def snapshot(self, expect: int = 0) -> subprocess.CompletedProcess:
        return run([self.scripts / "snapshot.sh", "--no-prune"], expect=expect)

    def snapshots(self) -> list[str]:
        return subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", self.dataset],
                              capture_output=True, text=True, check=True).stdout.split()

    def close(self) -> None:
        for name in self.clones:
            subprocess.run([str(self.scripts / "restore.sh"), "--cleanup", name, "--yes"], capture_output=True)
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(self.pghome / "bin/pg_ctl"), "-D",
                            str(self.pgdata), "-m", "immediate", "stop"], capture_output=True)
        if self.primary:
            self.primary.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        time.sleep(0.5)
        destroy_pool(self.pool)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def world(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    w = World(root, client_tools)
    try:
        w.new_primary("primary")
        run([w.scripts / "50-basebackup.sh"], env=w.env)
        w.start_standby()
        yield w
    finally:
        w.close()


def test_a_snapshot_records_the_real_system_identifier_major_and_timeline(world):
    sysid = world.system_id()
    # the base backup recorded its system on the dataset
    assert zfs_get("pitr-bundle:system-id", world.dataset) == sysid
    world.switch("A", times=6)
    world.replayed()
    out = world.snapshot().stderr
    name = out.split("took ")[1].split()[0]
    assert zfs_get("pitr-bundle:system-id", name) == sysid
    assert zfs_get("pitr-bundle:major", name) == str(MAJOR)
    assert zfs_get("pitr-bundle:timeline", name) == "1"
    # the REDO WAL file as before, from the same reading of pg_controldata
    assert zfs_get("pitr-bundle:redo-wal", name) == world.standby().psql(
        "select redo_wal_file from pg_control_checkpoint()")
    assert f"(system {sysid}, PostgreSQL {MAJOR}, timeline 1; replay from" in out


def test_a_stopped_standby_is_not_snapshotted_a_running_one_is(world):
    before = world.snapshots()
    world.pg_ctl("-m", "fast", "-w", "stop")
    refused = world.snapshot(expect=3).stderr
    assert "ERROR: no snapshot of" in refused and "the standby is not running" in refused, refused
    assert world.snapshots() == before
    world.start_standby()
    time.sleep(1.1)  # snapshot names have a second's resolution
    world.snapshot()
    assert len(world.snapshots()) == len(before) + 1


def test_an_unfinished_base_backup_is_not_snapshotted(world):
    before = world.snapshots()
    mark = world.pgdata / ".pitr-bundle-basebackup-incomplete"
    mark.touch()
    try:
        refused = world.snapshot(expect=3).stderr
    finally:
        mark.unlink()
    assert "its base backup is unfinished" in refused, refused
    assert world.snapshots() == before


def test_a_promoted_standby_is_not_snapshotted(world):
    before = world.snapshots()
    world.pg_ctl("-w", "promote")
    wait_for("promoted", lambda: world.standby().psql("select pg_is_in_recovery()") == "f")
    refused = world.snapshot(expect=3).stderr
    assert "the standby is not in recovery (cluster state: in production): promoted by mistake?" in refused, refused
    assert world.snapshots() == before
    world.pg_ctl("-m", "fast", "-w", "stop")


def test_a_rebuilt_primary_starts_a_new_generation(world):
    old_sysid = zfs_get("pitr-bundle:system-id", world.dataset)
    old_snapshot = world.snapshots()[-1]  # the newest before the target below
    old_segments = segments(world.archive)
    assert {header_system(p) for p in old_segments.values()} == {int(old_sysid)}
    # the old system's floor of kept WAL, as its WAL retention records it (it only moves
    # forward): its newest segment, a later name than the new system's first ones
    kept = max(old_segments, key=lambda n: n[8:])
    subprocess.run(["zfs", "set", f"pitr-bundle:wal-kept-from={kept}", world.dataset], check=True)
    time.sleep(1.1)
    between = utc(time.time())
    time.sleep(1.1)
    # the old system's last commit, after the target: where a restore to it stops
    world.switch("old, after the target")

    # --- the rebuilt primary: its archiving is refused while the old system's names are there
    primary = world.new_primary("primary2")
    # the old primary's last segments, archived as it stopped, too
    old_segments = segments(world.archive)
    assert {header_system(p) for p in old_segments.values()} == {int(old_sysid)}
    new_sysid = world.system_id()
    assert new_sysid != old_sysid
    first = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
    assert first in old_segments, "the new system's first segment name is one the old one used"
    primary.psql("select pg_switch_wal()")
    wait_for("the clash", lambda: primary.psql(
        "select failed_count > 0 from pg_stat_archiver") == "t")
    assert primary.psql("select last_failed_wal from pg_stat_archiver") == first

    backup = run([world.scripts / "50-basebackup.sh", "--force", "--yes"], env=world.env).stderr
    assert (f"a new generation: the primary is now system {new_sysid}, the previous base backup "
            f"was of system {old_sysid}") in backup, backup
    assert zfs_get("pitr-bundle:system-id", world.dataset) == new_sysid
    assert zfs_get("pitr-bundle:wal-kept-from", world.dataset) == "-"
    apart = segments(world.generations / old_sysid)
    assert set(apart) == set(old_segments)
    assert {header_system(p) for p in apart.values()} == {int(old_sysid)}
    # the new primary archives the names the old one had used, and only its own WAL is left
    world.switch("B", times=2)
    wait_for(f"{first} archived again", lambda: first in segments(world.archive))
    assert {header_system(p) for p in segments(world.archive).values()} == {int(new_sysid)}

    # --- restore to a time of the old system: its snapshot replays its set-apart WAL, not the
    # new system's files of the same names in the archive
    restored = run([world.scripts / "restore.sh", "--target-time", between, "--name", "g1", "--yes"]).stderr
    world.clones.append("g1")
    assert (f"{old_snapshot} is of an earlier system ({old_sysid}; the archive's is now {new_sysid}): "
            f"replaying that system's WAL, set apart in {world.generations / old_sysid}") in restored, restored
    assert f"reached the target {between}" in restored, restored
    clone = pg.PgServer(MAJOR, world.root / f"mnt/restore/{CLUSTER}-g1/pg_root", RESTORE_PORT)
    assert clone.psql("select count(*) from t where note = 'A'") == "6"
    assert clone.psql("select count(*) from t where note like 'old, after%'") == "0"
    assert clone.psql("select system_identifier from pg_control_system()") == old_sysid
    run([world.scripts / "restore.sh", "--cleanup", "g1", "--yes"])
    world.clones.remove("g1")
    # without the set-apart WAL, the old system's snapshot is refused, naming both
    apart_folder = world.generations / old_sysid
    apart_folder.rename(apart_folder.with_name("moved-away"))
    refused = run([world.scripts / "restore.sh", "--target-time", between, "--name", "g3", "--yes"],
                  expect=3).stderr
    apart_folder.with_name("moved-away").rename(apart_folder)
    assert (f"{old_snapshot} is of system {old_sysid}, the archive holds the WAL of system "
            f"{new_sysid}") in refused, refused
    assert f"--snapshot {old_snapshot.split('@')[1]}" in refused

    # --- the twin: the new system's snapshot restores (the old floor would have refused it)
    world.start_standby()
    world.switch("B2")
    world.replayed()
    new_snapshot = world.snapshot().stderr.split("took ")[1].split()[0]
    assert zfs_get("pitr-bundle:system-id", new_snapshot) == new_sysid
    redo = zfs_get("pitr-bundle:redo-wal", new_snapshot)
    assert redo[8:] < kept[8:], (redo, kept)
    primary.psql("insert into t (note) values ('after the snapshot')")
    world.switch("B3")
    restored = run([world.scripts / "restore.sh", "--latest", "--name", "g2", "--yes"]).stderr
    world.clones.append("g2")
    assert f"newest snapshot before the target: {new_snapshot}" in restored, restored
    clone = pg.PgServer(MAJOR, world.root / f"mnt/restore/{CLUSTER}-g2/pg_root", RESTORE_PORT)
    assert clone.psql("select count(*) from t where note = 'after the snapshot'") == "1"
    assert clone.psql("select count(*) from t where note = 'A'") == "0"
    run([world.scripts / "restore.sh", "--cleanup", "g2", "--yes"])
    world.clones.remove("g2")
