"""WAL retention for real: zfs-fuse + PostgreSQL 18 (whose pg_controldata the client tools
carry), on the bundle of the example specs with only disks, addresses, ports and folders moved
onto this machine (cluster pg168121, its slot, the default PITR window of 7 days and the
default keep counts; derived as the drill test derives them). The generated snapshot script
records each snapshot's REDO WAL file; the generated WAL retention deletes what no restore of
the window can need; afterwards a restore from the oldest snapshot the window keeps WAL for
reaches a time just after it, a target before it is refused with the restorable points, and a
snapshot older than the window opens with --snapshot. Then, over a simulated span (a fake clock
for the scripts: snapshot names and day folders; a snapshot run a day for 18 days), the archive
stays bounded and no segment that an independent model says is needed is ever gone."""

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
from derived_example import derived_specs
from test_pitr_zfs_pg import utc
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: F401
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 18  # the client tools' pg_controldata must match the server's pg_control
CLUSTER = "pg168121"
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 28301, 28302, 28303
DAY = 86400


def retention_specs(root: Path, pool: str, disks: list[Path]) -> Path:
    """The drill test's derivation on PostgreSQL 18; the retention's own settings (window,
    keep counts, slot) stay the example's."""
    specs = derived_specs(root, pool, disks, (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR)
    cluster = yaml.safe_load((specs / f"clusters/{CLUSTER}.yaml").read_text())
    # the example's retention settings are the defaults (derived_specs sets only archive.method)
    assert set(cluster.get("archive", {})) <= {"method"} and "snapshots" not in cluster, \
        "the example now sets its own"
    assert cluster["replication"]["slot"]
    return specs


def fake_clock(folder: Path) -> Path:
    """A `date` that runs OFFSET seconds ahead (read from a file each call), for the scripts."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "offset").write_text("0")
    date = folder / "date"
    date.write_text(f"""#!/bin/bash
for arg in "$@"; do case $arg in -d* | --date*) exec /bin/date "$@" ;; esac; done
exec /bin/date -d "@$(( $(/bin/date +%s) + $(cat {folder}/offset) ))" "$@"
""")
    date.chmod(0o755)
    folder.chmod(0o755)
    return folder


def archived(archive: Path) -> dict[str, int]:
    """name -> size of every archived file"""
    return {p.name: p.stat().st_size for p in archive.glob("*/*") if p.is_file()}


def segment_number(name: str) -> int:
    return int(name[8:16], 16) * 256 + int(name[16:24], 16)


def test_wal_retention_restores_and_a_bounded_archive(zfs_fuse, client_tools):
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
    disks = sparse_disks(root / "disks", 3, "1G")
    specs = retention_specs(root, pool, disks)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                 if c["name"] == cluster)
    window_days = facts["archive"]["pitr_window_days"]
    assert window_days == 7, "the example's window is the documented default"
    paths = facts["paths"]
    scripts = bundle / f"clusters/{cluster}"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    pghome_bin = Path(paths["pghome"]) / "bin"
    clones = []
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])
        archive = Path(paths["archive"])
        primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(cluster).pw_gid)
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
        slot = yaml.safe_load((specs / f"clusters/{cluster}.yaml").read_text())["replication"]["slot"]
        primary.psql(f"select pg_create_physical_replication_slot('{slot}')")
        primary.psql("create table t (id int primary key, note text)")

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
        assert primary.psql(f"select active from pg_replication_slots where slot_name = '{slot}'") == "t"

        def write_and_switch(note: str, switches: int = 2) -> None:
            for i in range(switches):
                primary.psql(f"insert into t values ((select coalesce(max(id), 0) + 1 from t), '{note}')")
                segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
                primary.psql("select pg_switch_wal()")
                wait_for(f"{segment} archived", lambda s=segment: any(archive.glob(f"*/{s}")))
            # a checkpoint on the primary, replayed, then a restartpoint: the REDO point moves
            primary.psql("checkpoint")
            lsn = primary.psql("select pg_current_wal_lsn()")
            wait_for("replayed", lambda: standby.psql(
                f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
            standby.psql("checkpoint")

        def snapshot(clock: Path | None = None) -> tuple[str, str]:
            """Runs the snapshot script; returns the snapshot and the REDO WAL file the standby
            itself reports (SQL, not pg_controldata: the model's own source)."""
            redo = standby.psql("select redo_wal_file from pg_control_checkpoint()")
            run_env = dict(os.environ, PATH=f"{clock}:{os.environ['PATH']}") if clock else None
            out = run([scripts / "snapshot.sh", "--no-prune"], env=run_env).stderr
            name = out.split("took ")[1].split()[0]
            return name, redo

        # --- three snapshots a few seconds apart, WAL between them --------------------------
        write_and_switch("A")
        s1, redo1 = snapshot()
        time.sleep(2.2)
        write_and_switch("B")
        s2, redo2 = snapshot()
        t2 = time.time()
        for name, redo in ((s1, redo1), (s2, redo2)):
            recorded = subprocess.run(["zfs", "get", "-H", "-o", "value", "pitr-bundle:redo-wal", name],
                                      capture_output=True, text=True, check=True).stdout.strip()
            assert recorded == redo, (name, recorded, redo)
        assert segment_number(redo2) > segment_number(redo1)
        time.sleep(1.5)
        primary.psql("insert into t values (1000, 'after-s2')")
        time.sleep(1.5)
        target = utc(time.time())
        time.sleep(1.5)
        primary.psql("insert into t values (1001, 'after-target')")
        write_and_switch("C")
        time.sleep(2.2)
        s3, redo3 = snapshot()
        t3 = time.time()

        # --- the retention, on a clock where the window (7 days) starts between s2 and s3 -----
        clock = fake_clock(root / "clock")
        # now + offset - 7 days = the middle between s2 and s3
        (clock / "offset").write_text(str(int(window_days * DAY - (time.time() - (t2 + t3) / 2))))
        before = archived(archive)
        assert redo1 in before
        dry = run([scripts / "wal-retention.sh", "--dry-run"],
                  env=dict(os.environ, PATH=f"{clock}:{os.environ['PATH']}"))
        assert "would free" in dry.stderr and archived(archive) == before
        pruned = run([scripts / "wal-retention.sh"], env=dict(os.environ, PATH=f"{clock}:{os.environ['PATH']}"))
        assert f"anchor snapshot {s2}" in pruned.stderr, pruned.stderr
        assert f"first WAL file kept: {redo2}" in pruned.stderr
        after = archived(archive)
        gone = set(before) - set(after)
        assert redo1 in gone and redo2 in after
        assert all(segment_number(n) < segment_number(redo2) for n in gone)
        assert all(n in after for n in before if n.endswith(".history"))
        assert f"freed {len(gone)} WAL file(s), {sum(before[n] for n in gone)} bytes" in pruned.stderr

        # a restore from the oldest snapshot the window keeps WAL for reaches a time just after it
        restored = run([scripts / "restore.sh", "--target-time", target, "--name", "w1", "--yes"])
        clones.append("w1")
        assert f"newest snapshot before the target: {s2}" in restored.stderr
        clone = pg.PgServer(MAJOR, root / f"mnt/restore/{cluster}-w1/pg_root", RESTORE_PORT)
        assert clone.psql("select pg_is_in_recovery()") == "f"
        assert clone.psql("select count(*) from t where note = 'after-s2'") == "1"
        assert clone.psql("select count(*) from t where note = 'after-target'") == "0"
        run([scripts / "restore.sh", "--cleanup", "w1", "--yes"])
        clones.remove("w1")

        # a target whose WAL is gone is refused, naming the restorable points
        early = utc(t2 - 1)
        refused = run([scripts / "restore.sh", "--target-time", early, "--name", "w2", "--yes"], expect=3)
        assert "no longer holds the WAL" in refused.stderr
        assert f"--snapshot {s1.split('@')[1]}" in refused.stderr
        assert "the window's start: snapshot " + s2 in refused.stderr

        # the snapshot older than the window opens at its own point, from the WAL it holds
        own = run([scripts / "restore.sh", "--snapshot", s1.split("@")[1], "--name", "w3", "--yes"])
        clones.append("w3")
        assert "is open" in own.stderr
        old = pg.PgServer(MAJOR, root / f"mnt/restore/{cluster}-w3/pg_root", RESTORE_PORT)
        assert old.psql("select string_agg(distinct note, ',') from t") == "A"
        run([scripts / "restore.sh", "--cleanup", "w3", "--yes"])
        clones.remove("w3")

        # --- a simulated span: the example's daily snapshot run (with its pruning by the
        # default keep counts) for 24 days, WAL between them ----------------------------------
        # snapshot -> REDO WAL file (from SQL)
        model = {s.split("@")[1]: r for s, r in ((s1, redo1), (s2, redo2), (s3, redo3))}
        offset = DAY * (window_days + 1)
        most = 0
        newest_segment = 0
        for step_no in range(24):
            offset += DAY
            (clock / "offset").write_text(str(offset))
            write_and_switch(f"span{step_no}", switches=3)
            path_env = dict(os.environ, PATH=f"{clock}:{os.environ['PATH']}")
            redo = standby.psql("select redo_wal_file from pg_control_checkpoint()")
            out = run([scripts / "snapshot.sh"], env=path_env).stderr
            model[out.split("took ")[1].split()[0].split("@")[1]] = redo
            run([scripts / "wal-retention.sh"], env=path_env)
            present = archived(archive)
            segments = sorted(segment_number(n) for n in present if len(n) == 24)
            newest_segment = max(newest_segment, segments[-1])
            kept = set(subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1",
                                       f"{pool}/{cluster}"], capture_output=True, text=True,
                                      check=True).stdout.split())
            now = time.time() + offset
            start = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - window_days * DAY))
            ours = sorted(s for s in model if f"{pool}/{cluster}@{s}" in kept)
            anchor = max([s for s in ours if s[len("pitr-"):] < start] or [ours[0]])
            needed = min(segment_number(model[s]) for s in ours if s >= anchor)
            missing = [n for n in range(needed, newest_segment + 1) if n not in segments]
            assert not missing, f"step {step_no}: needed segments gone: {missing}"
            most = max(most, len(segments))
        # bounded: the window plus the gap to the anchor, at most a week with the default keep
        # counts (daily 7, then weekly): 15 runs of 3 switches and a checkpoint each, and a
        # little REDO lag; not the whole span
        print(f"simulated span: at most {most} segments kept, {len(segments)} at the end, "
              f"{newest_segment - segment_number(redo1) + 1} written since the first snapshot")
        assert most <= 15 * 5 + 6, most
        assert len(segments) < newest_segment - segment_number(redo1) - 20
    finally:
        for name in clones:
            subprocess.run([str(scripts / "restore.sh"), "--cleanup", name, "--yes"], capture_output=True)
        for data in (Path(paths["pgdata"]),):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", cluster, "--", str(pghome_bin / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(cluster)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
