"""Each cluster's WAL archive a dataset of its own, for real: zfs-fuse + PostgreSQL 17, on the
example specs' bundle derived by tests/derived_example.py (disks, addresses, ports, folders;
pg168104 dropped), pg168121 with the example's archive.method, unset, so `standby` (the
default from 9.5 with a slot): its backup standby's archive_command writes the archive.

The host starts as an existing one has it (docs/archive-datasets.md): the archive a FOLDER of
the archive root's dataset, written by the standby (60-standby.sh makes it the cluster's user's,
2750), a snapshot of the cluster taken while it is a folder. 20-datasets.sh refuses (exit 3,
nothing changed); `--migrate-archive pg168121` moves it into the dataset
`<pg_arch>/pg168121` while the primary writes and switches WAL in a loop (the standby receives
and archives it all along: no writer is held off). Then: the archive is the dataset, mounted at
the same path with the folder's owner and mode; every file archived before has the same bytes,
every WAL file PostgreSQL counts as archived (`archive_status/*.done`) and every segment the
loop switched is there, each with the bytes of the standby's pg_wal copy where it still has
one; nothing left aside; the bundle's continuity check (the monitor's) finds no gap; a
snapshot run takes the two snapshots under one name; a restore to a time after the migration,
from the snapshot taken before it, replays the WAL across it and opens with the expected rows.
The failing twin of the no-gap check is tests/test_continuity_zfs_pg.py and
tests/test_wal_standby_real_pg.py (a segment deleted from the archive is named)."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import subprocess
import threading
import time
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs, example_primary, real_root, tear_down
from test_continuity_zfs_pg import missing_perfdata, segments
from test_pitr_zfs_pg import utc
from test_standby_real_pg import PASSWORD, compose_pghome, run, wait_for
from zfs_fuse import sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 17
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 28421, 28422, 28423


def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=True).stdout.strip()


def digests(folder: Path) -> dict[str, str]:
    """Every file under folder (relative path: sha256), the helper's temporary files aside."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".tmp")}


def test_migrate_a_standby_archived_folder_into_its_dataset(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    root, pool = real_root("pa")
    specs = derived_specs(root, pool, sparse_disks(root / "disks", 3, "256M"),
                          (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR, archive_method=None)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                 if c["name"] == CLUSTER)
    assert facts["archive"]["method"] == "standby"
    scripts = bundle / f"clusters/{CLUSTER}"
    datasets_script = bundle / "host/20-datasets.sh"
    mnt = root / "mnt"
    archive_dir = mnt / "pg_arch" / CLUSTER  # the folder, then the dataset's mountpoint
    archive = archive_dir / "arch"
    archive_ds = facts["archive_dataset"]
    assert archive_ds == f"{pool}/pg_arch/{CLUSTER}"
    pgdata = mnt / CLUSTER / "pg_root"
    pghome_bin = mnt / "pg_home" / CLUSTER / "pgsql/bin"
    helper = Path(f"/usr/local/sbin/pitr-archive-wal-{CLUSTER}")  # 60-standby.sh installs it
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    standby = pg.PgServer(MAJOR, pgdata, STANDBY_PORT)
    clone_data = mnt / f"restore/{CLUSTER}-t1/pg_root"
    started = time.monotonic()
    try:
        # --- the host as before archive datasets: the archive a folder of pg_arch -----------
        run([bundle / "host/10-pool.sh", "--yes"])
        run([datasets_script])
        # the layout of a host set up before: no archive dataset (zfs-fuse destroys no mounted one)
        zfs("unmount", archive_ds)
        wait_for(f"{archive_ds} destroyed (zfs-fuse: busy just after the unmount)", lambda: subprocess.run(
            ["zfs", "destroy", archive_ds], capture_output=True).returncode == 0, timeout=10)
        archive_dir.mkdir(exist_ok=True)
        run([scripts / "30-user.sh"])

        # the primary as its step leaves it for archive.method standby: no archive_command;
        # 1 MB segments: many of them, quickly
        example_primary(root, scripts, archive, primary, PASSWORD, ("--wal-segsize=1",))
        primary.psql(f"select pg_create_physical_replication_slot('{facts['replication_slot']}')")
        primary.psql("create table t (id serial primary key, note text)")
        assert primary.psql("show archive_mode") == "off"

        # the backup standby archives into the folder
        (mnt / "pg_home" / CLUSTER / "pgsql").symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        # WAL the base backup streamed: marked done by pg_basebackup, never archived by the standby
        status = pgdata / "pg_wal/archive_status"
        from_backup = {p.name for p in status.glob("*.done")}
        run([scripts / "60-standby.sh"], env=env)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        assert standby.psql("show archive_mode") == "always"
        owner = pwd.getpwnam(CLUSTER)
        folder_stat = archive_dir.stat()
        assert (folder_stat.st_uid, oct(folder_stat.st_mode & 0o7777)) == (owner.pw_uid, "0o2750")
        assert folder_stat.st_dev == archive_dir.parent.stat().st_dev  # a folder of pg_arch

        switched: list[str] = []

        def write_and_switch(note: str) -> str:
            primary.psql(f"insert into t (note) values ('{note}')")
            segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
            primary.psql("select pg_switch_wal()")
            switched.append(segment)
            return segment

        def archived(segment: str) -> bool:
            return any(archive.glob(f"*/{segment}"))

        for _ in range(4):
            last = write_and_switch("before")
        wait_for("the standby archives into the folder", lambda: archived(last))
        lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        # the snapshot the restore starts from, taken while the archive is a folder
        early = run([scripts / "snapshot.sh"])
        assert "the WAL archive is no dataset yet" in early.stderr, early.stderr
        (first_snapshot,) = [n.split("@")[1] for n in zfs("list", "-H", "-t", "snapshot", "-o", "name").split()
                             if n.startswith(f"{pool}/{CLUSTER}@")]
        before = digests(archive_dir)
        assert len(before) >= 4, before

        # --- 20-datasets.sh refuses while the archive is a folder -------------------------------
        refused = run([datasets_script], expect=3)
        assert f"{CLUSTER}: {archive_dir} is a folder of {pool}/pg_arch" in refused.stderr, refused.stderr
        assert "the standby archives: its archive_command fails while" in refused.stderr
        assert subprocess.run(["zfs", "list", archive_ds], capture_output=True).returncode != 0
        dry = run([datasets_script, "--migrate-archive", CLUSTER, "--dry-run"])
        assert f"would run: mv -T -- {archive_dir} {mnt}/pg_arch/.{CLUSTER}.premigration" in dry.stderr
        assert subprocess.run(["zfs", "list", archive_ds], capture_output=True).returncode != 0
        assert digests(archive_dir) == before

        # --- the migration while the primary writes and switches WAL ---------------------------
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                while not stop.is_set():
                    write_and_switch("during")
                    time.sleep(0.05)
            except BaseException as exc:  # noqa: BLE001 (reported by the test)
                errors.append(exc)

        writer = threading.Thread(target=loop)
        writer.start()
        try:
            time.sleep(1)  # WAL arriving before the copy starts
            moved = run([datasets_script, "--migrate-archive", CLUSTER])
            time.sleep(1)  # and after
        finally:
            stop.set()
            writer.join()
        assert not errors, errors
        assert "1 archive(s) migrated" in moved.stderr, moved.stderr
        assert "exportfs" not in moved.stderr and "umount -l" not in moved.stderr
        late = write_and_switch("after")
        wait_for("the standby's archiver caught up", lambda: archived(late), timeout=90)
        assert not [s for s in switched if not archived(s)], "a switched segment is not archived"

        # the dataset at the folder's place, with its owner and mode; nothing left aside
        assert zfs("get", "-H", "-o", "value", "mountpoint", archive_ds) == str(archive_dir)
        assert zfs("get", "-H", "-o", "value", "mounted", archive_ds) == "yes"
        dataset_stat = archive_dir.stat()
        assert dataset_stat.st_dev != archive_dir.parent.stat().st_dev  # a filesystem of its own
        assert (dataset_stat.st_uid, oct(dataset_stat.st_mode & 0o7777)) == (owner.pw_uid, "0o2750")
        assert not (mnt / "pg_arch" / f".{CLUSTER}.premigration").exists()
        assert not (mnt / "pg_arch" / f".{CLUSTER}.migrating").exists()
        # every file of before, the same bytes
        after = digests(archive_dir)
        assert {name: after.get(name) for name in before} == before
        # every WAL file PostgreSQL counts as archived is there, with the bytes the archiver had
        done = [p.name[:-len(".done")] for p in status.glob("*.done") if p.name not in from_backup]
        assert not list(status.glob("*.ready")), "WAL waits to be archived"
        by_name = {Path(name).name: digest for name, digest in after.items()}
        for name in done:
            assert name in by_name, f"{name} archived (PostgreSQL says) but not in the dataset"
            source = pgdata / "pg_wal" / name
            if source.exists():
                assert hashlib.sha256(source.read_bytes()).hexdigest() == by_name[name], name
        # WAL the standby's archiver failed to write while the folder was away (retried)
        failed = standby.psql("select failed_count from pg_stat_archiver")

        # --- a re-run: present, nothing to do ---------------------------------------------------
        again = run([datasets_script])
        assert f"{archive_ds}: already present" in again.stderr, again.stderr

        # --- continuity: the bundle's check finds no gap -----------------------------------------
        check = subprocess.run([str(bundle / "host/monitor.sh"), "--cluster", CLUSTER],
                               capture_output=True, text=True)
        assert "archive gap" not in check.stdout and "not checked" not in check.stdout, check.stdout
        assert missing_perfdata(check.stdout) == "0", check.stdout
        assert len(segments(archive)) >= len(switched)

        # --- a restore to a time after the migration, from the snapshot before it ---------------
        time.sleep(1.1)
        expected = primary.psql("select count(*) from t")
        target = utc(time.time())
        time.sleep(1.1)
        late = write_and_switch("later")
        wait_for("archived", lambda: archived(late))

        restored = run([scripts / "restore.sh", "--target-time", target, "--name", "t1", "--yes"])
        assert "is open" in restored.stderr, restored.stderr
        assert f"newest snapshot before the target: {pool}/{CLUSTER}@{first_snapshot}" in restored.stderr, \
            restored.stderr
        clone = pg.PgServer(MAJOR, clone_data, RESTORE_PORT)
        assert clone.psql("select count(*) from t") == expected
        assert clone.psql("select count(*) from t where note = 'later'") == "0"
        assert clone.psql("select count(*) from t where note = 'during'") == primary.psql(
            "select count(*) from t where note = 'during'")
        run([scripts / "restore.sh", "--cleanup", "t1", "--yes"])

        # --- a snapshot run: the cluster's and the archive's, one name ---------------------------
        lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        took = run([scripts / "snapshot.sh"])
        assert "no dataset yet" not in took.stderr, took.stderr
        ours = zfs("list", "-H", "-t", "snapshot", "-o", "name").split()
        cluster_snaps = sorted(n.split("@")[1] for n in ours if n.startswith(f"{pool}/{CLUSTER}@"))
        archive_snaps = sorted(n.split("@")[1] for n in ours if n.startswith(f"{archive_ds}@"))
        # the archive's first snapshot, under the name of the cluster's newest (the cluster's
        # keep counts may have pruned the one taken before the migration)
        assert archive_snaps == cluster_snaps[-1:] and cluster_snaps[-1] != first_snapshot, (
            cluster_snaps, archive_snaps)
        print(f"archive datasets test body: {time.monotonic() - started:.1f} s; "
              f"{len(switched)} segments switched, {len(done)} .done, archiver failures {failed}; "
              + " | ".join(line.split(": ", 1)[-1] for line in moved.stderr.splitlines()
                           if " copied, " in line or "removed (copied)" in line))
    finally:
        tear_down(root, pool, pghome_bin, [clone_data, pgdata], [primary], [helper])
