"""The archive continuity check for real: zfs-fuse + PostgreSQL 18 (whose pg_controldata the
client tools carry), on the bundle of the example specs with only disks, addresses, ports and
folders moved onto this machine (cluster pg168121; derived as the drill test derives them).
The primary is initialised with 1 MB WAL segments (an initdb choice since 11: the check must
take the size from the standby's pg_controldata, not assume 16 MB). A real archive, filled by
the generated archive helper: intact, the drill says it is continuous and the monitor is OK; a
segment removed from its middle makes the monitor CRITICAL naming it and fails the drill; a
real timeline switch (a second standby of the primary, archiving into the same folder, promoted
after the primary stops: 00000002.history and the old timeline's .partial) is no gap, and a
segment removed on the new timeline is named with its timeline."""

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
from test_pitr_zfs_pg import utc
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: F401
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 18  # the client tools' pg_controldata must match the server's pg_control
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT, HA_PORT = 28401, 28402, 28403, 28404


def segments(archive: Path, timeline: str = "") -> list[Path]:
    """The archive's whole segments (of one timeline, 8 hex digits), oldest first."""
    return sorted((p for p in archive.glob("*/*") if len(p.name) == 24 and p.name.startswith(timeline)),
                  key=lambda p: p.name)


def missing_perfdata(out: str) -> str:
    return out.split(f"{CLUSTER}_archive_missing_segments=")[1].split(";")[0]


def test_archive_gap_and_timeline_switch(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pc", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    cluster = CLUSTER
    drop_user(cluster)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "pc" + os.urandom(3).hex()
    disks = sparse_disks(root / "disks", 3, "256M")
    specs = derived_specs(root, pool, disks, (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                 if c["name"] == cluster)
    paths = facts["paths"]
    scripts = bundle / f"clusters/{cluster}"
    check = bundle / "host/monitor.sh"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    ha = pg.PgServer(MAJOR, root / "ha/data", HA_PORT)
    pghome_bin = Path(paths["pghome"]) / "bin"
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])
        # the archive: the primary's user writes, the cluster's group reads (as over NFS)
        archive = Path(paths["archive"])
        primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(cluster).pw_gid)
            folder.chmod(0o2750)
        (root / "primary/bin").mkdir(parents=True)
        shutil.copy(scripts / "primary/pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
        (root / "primary/bin/pitr-archive-wal").chmod(0o755)
        primary.initdb("--wal-segsize=1")
        shutil.copy(scripts / "primary/pitr-archive.conf", primary.data_dir)
        os.chown(primary.data_dir / "pitr-archive.conf", primary_user.pw_uid, primary_user.pw_gid)
        with open(primary.conf_file, "a") as conf:
            conf.write("\ninclude 'pitr-archive.conf'\n")
        lines = (scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
        primary.hba([line for line in lines if line and not line.startswith("#")])
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        slot = yaml.safe_load((specs / f"clusters/{cluster}.yaml").read_text())["replication"]["slot"]
        primary.psql(f"select pg_create_physical_replication_slot('{slot}')")
        primary.psql("create table t (id serial primary key, note text)")

        home = compose_pghome(root / "soft", MAJOR, client_tools)
        wrapper = home / "bin/pg_controldata"
        wrapper.write_text(f'#!/bin/sh\nunset LD_LIBRARY_PATH\nexec {client_tools / "pg_controldata"} "$@"\n')
        wrapper.chmod(0o755)
        Path(paths["pghome"]).symlink_to(home)
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        standby = pg.PgServer(MAJOR, Path(paths["pgdata"]), STANDBY_PORT)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")

        def write_and_switch(server: pg.PgServer, note: str, switches: int) -> None:
            for _ in range(switches):
                server.psql(f"insert into t (note) values ('{note}')")
                segment = server.psql("select pg_walfile_name(pg_current_wal_lsn())")
                server.psql("select pg_switch_wal()")
                wait_for(f"{segment} archived", lambda s=segment: any(archive.glob(f"*/{s}")))

        write_and_switch(primary, "A", 3)
        primary.psql("checkpoint")
        lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        assert "took " in run([scripts / "snapshot.sh"]).stderr
        redo = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "pitr-bundle:redo-wal", "-d", "1",
                               f"{pool}/{cluster}"], capture_output=True, text=True, check=True).stdout.split()[0]
        time.sleep(1.5)
        target = utc(time.time())
        time.sleep(1.5)
        write_and_switch(primary, "B", 5)
        newest = segments(archive)[-1].name
        assert all(p.stat().st_size == 1048576 for p in segments(archive))

        # --- intact: the drill says so (1 MB segments, from the snapshot's REDO point), OK ----
        drill = run([scripts / "drill.sh", "--target-time", target])
        assert "drill ok" in drill.stderr
        assert f"archive continuous from {redo} to {newest} (" in drill.stderr, drill.stderr
        assert " segments of 1 MB)" in drill.stderr
        ok = run([check], expect=0)
        assert ok.stdout.startswith("PITR OK"), ok.stdout
        assert missing_perfdata(ok.stdout) == "0"

        # --- a segment removed from the middle (after the drill's target): CRITICAL, named ----
        after = [p for p in segments(archive) if p.name > redo]
        gone = after[-3]
        kept = root / gone.name
        shutil.copy2(gone, kept)
        gone.unlink()
        gap = run([check], expect=2)
        assert (f"{cluster}: archive gap: {gone.name} missing; restorable up to {after[-4].name} "
                f"(archived ") in gap.stdout, gap.stdout
        assert f" and from {after[-2].name} on; 1 segment(s) missing up to {newest}; take a new base backup" \
            in gap.stdout
        assert missing_perfdata(gap.stdout) == "1"
        failed = run([scripts / "drill.sh", "--target-time", target], expect=1)
        assert f"archive gap: {gone.name} missing" in failed.stderr
        state = (root / f"state/drill-{cluster}.state").read_text()
        assert "result=failed" in state and f"error=archive gap: {gone.name} missing" in state
        shutil.copy2(kept, gone)
        os.chown(gone, primary_user.pw_uid, pwd.getpwnam(cluster).pw_gid)
        # the file back: the next drill passes, the monitor is OK again
        assert "drill ok" in run([scripts / "drill.sh", "--target-time", target]).stderr
        assert missing_perfdata(run([check], expect=0).stdout) == "0"

        # --- a real timeline switch: a second standby of the primary, archiving into the same
        # folder, promoted after the primary stops ---------------------------------------------
        ha.data_dir.parent.mkdir(parents=True, exist_ok=True)
        ha._owned_dir(ha.data_dir)
        ha._owned_dir(ha.run_dir)
        pg._runuser(pg.DEFAULT_OS_USER, ["env", "-u", "LD_LIBRARY_PATH", client_tools / "pg_basebackup",
                                         "-h", "127.0.0.1", "-p", PRIMARY_PORT, "-U", "postgres",
                                         "-D", ha.data_dir, "-X", "stream", "-R", "-c", "fast"],
                    env=pg._clean_env(), check=True, capture_output=True, text=True)
        ha.configure({"port": HA_PORT, "unix_socket_directories": str(ha.socket_dir or "")})
        ha.start()
        wait_for("ha streaming", lambda: ha.psql("select status from pg_stat_wal_receiver") == "streaming")
        write_and_switch(primary, "C", 2)
        last_lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("ha caught up", lambda: ha.psql(f"select pg_last_wal_replay_lsn() >= '{last_lsn}'") == "t")
        primary.stop()
        ha._run("pg_ctl", "-D", ha.data_dir, "promote", "-w")
        wait_for("ha promoted", lambda: ha.psql("select pg_is_in_recovery()") == "f")
        write_and_switch(ha, "D", 4)
        wait_for("00000002.history archived", lambda: any(archive.glob("*/00000002.history")))
        wait_for(".partial archived", lambda: any(archive.glob("*/00000001*.partial")))
        second = segments(archive, "00000002")
        assert len(second) >= 4
        # (the backup standby lost its primary: other findings may raise the status)
        switched = subprocess.run([str(check), "--cluster", cluster], capture_output=True, text=True)
        assert "archive gap" not in switched.stdout and "continuity not checked" not in switched.stdout, \
            switched.stdout
        assert missing_perfdata(switched.stdout) == "0"

        # its failing twin: a segment of the new timeline removed from the middle
        second[1].unlink()
        gap2 = subprocess.run([str(check), "--cluster", cluster], capture_output=True, text=True)
        assert gap2.returncode == 2, gap2.stdout
        assert f"{cluster}: archive gap: {second[1].name} missing; restorable up to {second[0].name}" \
            in gap2.stdout, gap2.stdout
    finally:
        for data in (root / f"mnt/restore/{cluster}-drill/pg_root", Path(paths["pgdata"])):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", cluster, "--", str(pghome_bin / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        ha.stop(mode="immediate", check=False)
        primary.stop(mode="immediate", check=False)
        drop_user(cluster)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
