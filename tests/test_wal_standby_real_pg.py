"""archive.method standby for real: zfs-fuse + PostgreSQL 17, on the example specs' bundle derived
by tests/derived_example.py (disks, addresses, ports, folders; pg168104 dropped) with one field
more: pg168121's `archive: {method: standby}` (the method under test; the example keeps nfs by
default until the primary-side migration lands, docs/wal-transport.md).

The primary has NO archive_command: the bundle's own primary step, run on it for real, writes
only the streaming settings and archive_timeout (archive_mode stays off), its pg_hba lines,
the replication role (with the password from PITR_REPLICATION_PASSWORD) and the slot. The backup standby, set up by the bundle's user, base backup and standby steps,
archives what it receives (archive_mode = always) through the helper the standby step installs,
into the archive folders the NFS path uses. Then: a restore with restore.sh to a time T has row A
and not row B; the monitor's continuity check is OK; a row committed but never in a whole
segment (the primary crashes before it switches) is in no archive file, yet a snapshot of the
standby taken after the crash restores it (--latest: recovery reads the clone's pg_wal once
restore_command has nothing more); and the failing twin: a segment deleted from the archive is
named as a gap by the monitor."""

from __future__ import annotations

import json
import os
import pwd
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
from test_continuity_zfs_pg import missing_perfdata, segments
from test_pitr_zfs_pg import utc
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 17
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 28411, 28412, 28413


def standby_specs(root: Path, pool: str, disks: list[Path]) -> Path:
    specs = derived_specs(root, pool, disks, (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR)
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(cluster_file.read_text())
    spec["archive"] = {"method": "standby"}
    cluster_file.write_text(yaml.safe_dump(spec))
    return specs


def test_standby_archives_without_nfs(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pw", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    cluster = CLUSTER
    drop_user(cluster)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "pw" + os.urandom(3).hex()
    disks = sparse_disks(root / "disks", 3, "256M")
    specs = standby_specs(root, pool, disks)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                 if c["name"] == cluster)
    paths = facts["paths"]
    scripts = bundle / f"clusters/{cluster}"
    # the primary's footprint: no NFS export, mount, sudo rule or helper in the bundle
    assert not (bundle / "host/40-nfs-exports.sh").exists()
    assert sorted(p.name for p in (scripts / "primary").iterdir()) == [
        "45-apply-on-primary.sh", "check-primary.sh", "pg_hba.conf.lines", "pitr-archive.conf"]
    check = bundle / "host/monitor.sh"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    pghome_bin = Path(paths["pghome"]) / "bin"
    helper = Path(f"/usr/local/sbin/pitr-archive-wal-{cluster}")
    archive = Path(paths["archive"])
    started = time.monotonic()
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])

        # --- the primary: default settings, its step run for real ----------------------------
        primary.initdb("--wal-segsize=1")
        primary.start()
        # the primary step asks the server as its OS user over the socket (peer, as postgres on
        # Debian and RHEL): that user's role here
        primary.psql(f'create role "{pg.DEFAULT_OS_USER}" superuser login')
        step = run([scripts / "primary/45-apply-on-primary.sh", "--psql", client_tools / "psql",
                    "--socket-dir", primary.socket_dir, "--reload"],
                   env=pg.client_env({"PITR_REPLICATION_PASSWORD": PASSWORD}))
        # the primary's whole footprint: the role (made by the step), its hba lines, the slot
        assert "create role replicator (LOGIN REPLICATION, with the password given): done" in step.stderr
        include = [line for line in (primary.data_dir / "pitr-archive.conf").read_text().splitlines()
                   if not line.startswith("#")]
        assert include == ["archive_timeout = '60'", "max_slot_wal_keep_size = '20480'"], step.stderr
        assert primary.psql("show archive_mode") == "off"
        # no configuration file sets either ('(disabled)' is all archive_command shows while off)
        assert primary.psql("select count(*) from pg_file_settings "
                            "where name in ('archive_mode', 'archive_command')") == "0"
        assert primary.psql("show archive_timeout") == "1min"
        slot = yaml.safe_load((specs / f"clusters/{cluster}.yaml").read_text())["replication"]["slot"]
        assert primary.psql(f"select slot_type from pg_replication_slots where slot_name = '{slot}'") == "physical"
        for gone in ("pitr-archive-wal", "pitr-archive-mount", "sudo rule"):
            assert gone not in step.stderr, step.stderr
        primary.psql("create table t (id int primary key, note text)")

        # --- the backup standby archives what it receives -------------------------------------
        Path(paths["pghome"]).symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        assert helper.read_bytes() == (scripts / "pitr-archive-wal.sh").read_bytes()
        owner = pwd.getpwnam(cluster)
        assert (archive.stat().st_uid, oct(archive.stat().st_mode & 0o7777)) == (owner.pw_uid, "0o2750")
        standby = pg.PgServer(MAJOR, Path(paths["pgdata"]), STANDBY_PORT)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        assert standby.psql("show archive_mode") == "always"
        assert primary.psql(f"select active from pg_replication_slots where slot_name = '{slot}'") == "t"

        def write_and_switch(note: str, switches: int) -> str:
            for _ in range(switches):
                primary.psql(f"insert into t values ((select coalesce(max(id), 0) + 1 from t), '{note}')")
                segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
                primary.psql("select pg_switch_wal()")
                wait_for(f"{segment} archived by the standby", lambda s=segment: any(archive.glob(f"*/{s}")))
            return segment

        first = write_and_switch("A", 2)
        (archived,) = archive.glob(f"*/{first}")
        assert archived.stat().st_uid == owner.pw_uid and archived.stat().st_size == 1 << 20
        lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        assert "took " in run([scripts / "snapshot.sh"]).stderr
        time.sleep(1.1)
        target = utc(time.time())
        time.sleep(1.1)
        write_and_switch("B", 3)

        # --- restore to T: A, not B -----------------------------------------------------------
        restored = run([scripts / "restore.sh", "--target-time", target, "--name", "t1", "--yes"])
        assert "is open" in restored.stderr
        clone = pg.PgServer(MAJOR, root / f"mnt/restore/{cluster}-t1/pg_root", RESTORE_PORT)
        assert clone.psql("select string_agg(distinct note, ',') from t") == "A"
        # the clone never archives (restore.sh forces archive_mode off over the standby's always)
        assert clone.psql("show archive_mode") == "off"
        run([scripts / "restore.sh", "--cleanup", "t1", "--yes"])

        # --- continuity: OK ---------------------------------------------------------------------
        ok = subprocess.run([str(check), "--cluster", cluster], capture_output=True, text=True)
        assert "archive gap" not in ok.stdout and "not checked" not in ok.stdout, ok.stdout
        assert missing_perfdata(ok.stdout) == "0", ok.stdout

        # --- RPO: a row the primary committed, streamed but never in a whole segment ----------
        primary.psql("insert into t values (1000, 'C')")
        open_segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        c_lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("C received", lambda: standby.psql(f"select pg_last_wal_receive_lsn() >= '{c_lsn}'") == "t")
        primary.stop(mode="immediate")
        assert not any(archive.glob(f"*/{open_segment}")), "the open segment is not archived"
        standby.psql("checkpoint")
        assert "took " in run([scripts / "snapshot.sh"]).stderr
        latest = run([scripts / "restore.sh", "--latest", "--name", "t2", "--yes"])
        assert "is open" in latest.stderr
        clone = pg.PgServer(MAJOR, root / f"mnt/restore/{cluster}-t2/pg_root", RESTORE_PORT)
        assert clone.psql("select note from t where id = 1000") == "C", latest.stderr
        run([scripts / "restore.sh", "--cleanup", "t2", "--yes"])

        # --- the failing twin: a segment missing from the archive is named ----------------------
        after = segments(archive)
        gone = after[-3]
        gone.unlink()
        gap = subprocess.run([str(check), "--cluster", cluster], capture_output=True, text=True)
        assert gap.returncode == 2, gap.stdout
        assert f"{cluster}: archive gap: {gone.name} missing; restorable up to {after[-4].name}" in gap.stdout, \
            gap.stdout
        assert missing_perfdata(gap.stdout) == "1"
        print(f"wal standby test body: {time.monotonic() - started:.1f} s")
    finally:
        for data in (root / f"mnt/restore/{cluster}-t1/pg_root", root / f"mnt/restore/{cluster}-t2/pg_root",
                     Path(paths["pgdata"])):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", cluster, "--", str(pghome_bin / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        helper.unlink(missing_ok=True)
        drop_user(cluster)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
