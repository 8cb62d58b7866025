"""Replay health and the pool's scrub, for real: a standby on a zfs-fuse dataset streams from a
real PostgreSQL 16 primary, and the generated monitor check (host/monitor.sh) reports what
the issue asked for. Replay paused with pg_wal_replay_pause() is CRITICAL, and resumed it is
OK again; a standby promoted by mistake is CRITICAL. A new pool not scrubbed yet is OK with a
note, and a WARNING past the scrub's warning age; the
scrub schedule's own command line (host/scrub.cron) scrubs it for real, and then the check
reports the scrub's age and is OK.
The bundle is the example specs' (cluster pg168121 with its slot, hot standby on), with only
disks, addresses, ports, folders and the version moved onto this machine
(tests/derived_example.py), and one more field: drill.enabled false (the drill has its own
real test, test_pitr_zfs_pg.py; here no drill has run, which the check would report)."""

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
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 16


def monitor(check: Path, expect: int) -> str:
    """The check's one status line, its exit code asserted."""
    result = subprocess.run([str(check)], capture_output=True, text=True, timeout=120)
    assert result.returncode == expect, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout


def test_replay_paused_promoted_and_scrub_on_real_backends(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    root = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "rh" + os.urandom(3).hex()
    disks = sparse_disks(root / "disks", 3, "256M")
    standby_port, primary_port = 29300 + MAJOR, 27400 + MAJOR
    specs = derived_specs(root, pool, disks, (standby_port, primary_port, 29400 + MAJOR), major=MAJOR)
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(cluster_file.read_text())
    spec["drill"]["enabled"] = False
    cluster_file.write_text(yaml.safe_dump(spec))
    slot = spec["replication"]["slot"]
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    scripts = bundle / f"clusters/{CLUSTER}"
    mnt = root / "mnt"
    pgdata = mnt / CLUSTER / "pg_root"
    archive = mnt / "pg_arch" / CLUSTER / "arch"
    pghome_bin = mnt / "pg_home" / CLUSTER / "pgsql/bin"
    check = bundle / "host/monitor.sh"
    primary = pg.PgServer(MAJOR, root / "primary/data", primary_port)
    standby = pg.PgServer(MAJOR, pgdata, standby_port)
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])
        # the archive: the primary's user writes, the cluster's group reads (as over NFS)
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
        primary.psql(f"select pg_create_physical_replication_slot('{slot}')")
        primary.psql("create table t (id int primary key, note text)")
        (mnt / "pg_home" / CLUSTER / "pgsql").symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        primary.psql("insert into t values (1, 'A')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("a segment archived", lambda: any(archive.glob(f"*/{segment}")))
        wait_for("row A on the standby", lambda: standby.psql("select note from t where id = 1") == "A")
        run([scripts / "snapshot.sh"])

        # never scrubbed, a new pool (the real creation time): OK, with a note, until the scrub's
        # warning age
        fresh = monitor(check, 0)
        assert fresh.startswith("PITR OK") and f"pool {pool}: no scrub yet (created " in fresh, fresh
        assert "pool_scrub_age" not in fresh
        # past that age (the same check with a warning age of one second): a WARNING, the only finding
        impatient = root / "monitor-impatient.sh"
        impatient.write_text(re.sub(r"(?m)^readonly SCRUB_WARN=\d+ ", "readonly SCRUB_WARN=1 ",
                                    check.read_text(), count=1))
        impatient.chmod(0o755)
        time.sleep(2)
        never = monitor(impatient, 1)
        assert never.startswith(f"PITR WARNING - pool {pool} has no finished scrub (zpool status: none "
                                "requested)"), never
        assert "pool_scrub_age" not in never
        # the scrub schedule's own command, as cron runs it, scrubs the pool
        cron_line = next(line for line in (bundle / "host/scrub.cron").read_text().splitlines()
                         if line.startswith(spec_schedule(specs) + " root "))
        run(["bash", "-c", cron_line.split(" root ", 1)[1]])
        wait_for("the scrub finished", lambda: "in progress" not in subprocess.run(
            ["zpool", "status", pool], capture_output=True, text=True).stdout)
        healthy = monitor(check, 0)
        assert healthy.startswith("PITR OK"), healthy
        age = re.search(r" pool_scrub_age=(\d+)s;(\d+)", healthy)
        assert age and int(age.group(1)) < 120, healthy
        # replay caught up, on timeline 1, its figures in the perfdata
        assert f" {CLUSTER}_replay_lag=" in healthy and f" {CLUSTER}_replay_delay=" in healthy, healthy
        assert f" {CLUSTER}_timeline=1" in healthy, healthy

        # replay paused: CRITICAL, while the WAL it receives waits (the lag grows)
        standby.psql("select pg_wal_replay_pause()")
        wait_for("replay paused", lambda: standby.psql("select pg_get_wal_replay_pause_state()") == "paused")
        primary.psql("insert into t select g, 'B' from generate_series(2, 20000) g")
        received = primary.psql("select pg_current_wal_lsn()")
        wait_for("WAL received", lambda: standby.psql(
            f"select pg_last_wal_receive_lsn() >= '{received}'") == "t")
        paused = monitor(check, 2)
        assert paused.startswith(f"PITR CRITICAL - {CLUSTER}: WAL replay is paused (select "
                                 "pg_wal_replay_resume() resumes it"), paused
        lag = re.search(rf" {CLUSTER}_replay_lag=(\d+)B;", paused)
        assert lag and int(lag.group(1)) > 0, paused

        # resumed: OK again, caught up
        standby.psql("select pg_wal_replay_resume()")
        wait_for("replay caught up", lambda: standby.psql(
            "select pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()") == "t")
        resumed = monitor(check, 0)
        assert resumed.startswith("PITR OK"), resumed
        assert f" {CLUSTER}_replay_lag=0B;" in resumed, resumed

        # promoted by mistake: CRITICAL
        run(["runuser", "-u", CLUSTER, "--", pghome_bin / "pg_ctl", "-D", pgdata, "-w", "promote"])
        wait_for("promoted", lambda: standby.psql("select pg_is_in_recovery()") == "f")
        promoted = monitor(check, 2)
        assert f"{CLUSTER}: the standby is not in recovery (promoted?): it no longer follows the primary" in promoted
    finally:
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(pghome_bin / "pg_ctl"), "-D", str(pgdata),
                            "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)


def spec_schedule(specs: Path) -> str:
    """The host spec's scrub schedule (the default when it gives none)."""
    host = yaml.safe_load((specs / "hosts/pitr1.yaml").read_text())
    return (host.get("scrub") or {}).get("schedule", "0 3 1 * *")
