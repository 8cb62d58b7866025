"""Restore drills for real: zfs-fuse + PostgreSQL 17, the bundle of the example specs with only
disks, addresses, ports and folders moved onto this machine (cluster pg168121; the 9.0 cluster
pg168104 has no binaries here, and zfs-fuse has no lz4). A drill that succeeds is recorded and
the monitor is OK; a drill whose WAL has a gap (a segment removed from the archive) fails, is
recorded with PostgreSQL's error, leaves no clone, and the monitor says so."""

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

MAJOR = 17
CLUSTER = "pg168121"
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 29617, 29717, 29817


def test_drill_ok_then_a_gap_in_the_archive_fails_it(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "pd" + os.urandom(3).hex()
    specs = derived_specs(root, pool, sparse_disks(root / "disks", 3, "256M"),
                          (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    scripts = bundle / f"clusters/{CLUSTER}"
    mnt = root / "mnt"
    pgdata = mnt / CLUSTER / "pg_root"
    archive = mnt / "pg_arch" / CLUSTER / "arch"
    state = root / "state" / f"drill-{CLUSTER}.state"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    pghome = mnt / "pg_home" / CLUSTER / "pgsql"
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])
        primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(CLUSTER).pw_gid)
            folder.chmod(0o2750)
        (root / "primary/bin").mkdir(parents=True)
        shutil.copy(scripts / "primary/pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
        (root / "primary/bin/pitr-archive-wal").chmod(0o755)
        primary.initdb()
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
        pghome.symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        standby = pg.PgServer(MAJOR, pgdata, STANDBY_PORT)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")

        # a drill that works: snapshot, a target after it, a commit after the target
        primary.psql("insert into t values (1, 'A')")
        wait_for("A on the standby", lambda: standby.psql("select count(*) from t") == "1")
        run([scripts / "snapshot.sh"])
        # this PGHOME has no pg_controldata of 17 (the npm build lacks it), so snapshot.sh could
        # not record the REDO WAL file: record what the standby itself reports, as it would
        newest = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "creation", "-d", "1",
                                 f"{pool}/{CLUSTER}"], capture_output=True, text=True, check=True).stdout.split()[-1]
        redo = standby.psql("select redo_wal_file from pg_control_checkpoint()")
        subprocess.run(["zfs", "set", f"pitr-bundle:redo-wal={redo}", newest], check=True)
        # WAL the drill must replay: some 20 MB written after the snapshot, before the target
        primary.psql("insert into t select g, repeat('x', 200) from generate_series(10, 60000) g")
        written = int(primary.psql("select pg_current_wal_lsn() - '0/0'::pg_lsn"))
        time.sleep(1.5)
        target = utc(time.time())
        time.sleep(1.5)
        primary.psql("insert into t values (2, 'B')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("B archived", lambda: any(archive.glob(f"*/{segment}")))
        ok = run([scripts / "drill.sh", "--target-time", target])
        assert "drill ok" in ok.stderr, ok.stderr
        recorded = dict(line.split("=", 1) for line in state.read_text().splitlines())
        assert recorded["result"] == "ok" and recorded["target"] == target, recorded
        assert recorded["snapshot"].startswith(f"{pool}/{CLUSTER}@pitr-")
        assert recorded["reached"] and int(recorded["duration_seconds"]) >= 0
        # the replay it saw: from the REDO point before the snapshot past the 20 MB written
        # after it, at a measured rate; restore.sh's whole run is longer than the replay
        assert int(recorded["replay_bytes"]) >= 15_000_000, recorded
        assert int(recorded["replay_bytes"]) <= written, recorded
        assert re.fullmatch(r"[0-9]+\.[0-9]{3}", recorded["replay_seconds"]), recorded
        assert int(recorded["replay_bytes_per_second"]) == int(
            int(recorded["replay_bytes"]) * 1000 // max(int(recorded["replay_seconds"].replace(".", "")), 1))
        assert float(recorded["restore_seconds"]) > float(recorded["replay_seconds"]), recorded
        assert subprocess.run(["zfs", "list", f"{pool}/restore/{CLUSTER}-drill"],
                              capture_output=True).returncode != 0
        monitor = run([bundle / "host/monitor.sh"], expect=0)
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
        recorded = dict(line.split("=", 1) for line in state.read_text().splitlines())
        assert recorded["result"] == "failed", recorded
        # PostgreSQL's own words, without the refusals of the polls while it started
        assert "recovery ended before configured recovery target was reached" in recorded["error"], recorded
        assert "starting up" not in recorded["error"], recorded
        assert recorded["last_ok_epoch"]  # the earlier success is kept
        assert subprocess.run(["zfs", "list", f"{pool}/restore/{CLUSTER}-drill"],
                              capture_output=True).returncode != 0, failed.stderr
        critical = run([bundle / "host/monitor.sh"], expect=2)
        assert f"{CLUSTER}: the last restore drill" in critical.stdout and "failed" in critical.stdout
        print(critical.stdout)
    finally:
        for data in (mnt / f"restore/{CLUSTER}-drill/pg_root", pgdata):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", CLUSTER, "--", str(pghome / "bin/pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
