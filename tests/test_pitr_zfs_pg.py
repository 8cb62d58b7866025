"""The whole point of the host, for real: a standby on a zfs-fuse dataset streams from a real
primary; the generated snapshot script snapshots it; the generated restore script clones the
newest snapshot before a target time and replays archived WAL up to it; the generated monitor
check sees it all. PostgreSQL 10 (recovery.conf, the WAL receiver's old process title), 11
(recovery.conf), 12 (signals; recovery that runs out of WAL before its target still opens) and
16 (which refuses to open short of the target). Each says where recovery stopped: a target
reached in one line, a target past the archive's end refused with the point reached (the
archive_command broken on the primary, as when archiving fails for a while), and --list
shows the range of times a restore can reach. On 16, host/status.sh --json (pitr-status,
docs/status.md) reports a range that a real restore then reaches.
The bundle is the example specs' (cluster pg168121 with its slot), with only disks, addresses,
ports, folders and the version moved onto this machine (tests/derived_example.py), and one more
field: the host's monitor.prometheus_textfile_dir (status.sh --prometheus writes there)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: F401
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch))


def stopped_at(line: str) -> float:
    """The time of the last replayed transaction in restore.sh's line "... stopped at T, LSN ..."."""
    return datetime.fromisoformat(line.split("stopped at ")[1].split(", LSN")[0]).timestamp()


def pitr_status(bundle: Path, primary: "pg.PgServer", standby: "pg.PgServer", archive: Path) -> dict:
    """host/status.sh --json, parsed, once the archive holds all the standby replayed: the
    primary closes its segment (pg_switch_wal, nothing when it holds no record yet) until the
    report's newest restorable time is the standby's last replayed transaction (the
    background writer may start a segment with a running-transactions record after a switch)."""
    for _ in range(3):
        # the segment written now (after a switch that did nothing: the one before, archived)
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for(f"{segment} archived", lambda: any(archive.glob(f"*/{segment}")))
        end = primary.psql("select pg_current_wal_lsn()::text")
        wait_for("the standby replayed the switch",
                 lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{end}'") == "t")
        result = subprocess.run([str(bundle / "host/status.sh"), "--json"], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode in (0, 1), result.stderr
        report = json.loads(result.stdout)
        if report["clusters"][0]["restorable"]["newest_source"] == "standby":
            assert report["clusters"][0]["restorable"]["newest_exact"] is True
            return report
    raise AssertionError(f"the newest restorable time never came from the standby: {result.stdout}")


def status_range_restores(bundle: Path, root: Path, primary: "pg.PgServer", standby: "pg.PgServer",
                           archive: Path) -> None:
    """host/status.sh --json on the real backends: the oldest restorable time is the snapshot's
    first second, the newest the last transaction's commit second (the standby's, exact);
    restore.sh to that newest time reaches it, a second before the oldest is refused;
    --prometheus writes the same range into the spec's folder."""
    major, cluster, scripts = 16, CLUSTER, bundle / f"clusters/{CLUSTER}"
    # its newest exact once the archive holds what the standby replayed (pitr_status)
    status = pitr_status(bundle, primary, standby, archive)
    entry = status["clusters"][0]
    print(json.dumps(entry, indent=1))
    assert entry["name"] == cluster and entry["problems"] == [
        f"no restore drill has run ({root}/state/drill-{cluster}.state missing)"], entry
    assert entry["unavailable"] == [] and entry["restorable"]["gap"] is None, entry
    assert entry["snapshots"]["count"] == 1 and entry["snapshots"]["newest_name"] == entry["restorable"]["oldest_snapshot"]
    creation = int(subprocess.run(["zfs", "get", "-H", "-p", "-o", "value", "creation",
                                   entry["restorable"]["oldest_snapshot"]],
                                  capture_output=True, text=True, check=True).stdout)
    oldest, newest = entry["restorable"]["oldest"]["epoch"], entry["restorable"]["newest"]["epoch"]
    assert oldest == max(creation, entry["snapshots"]["newest"]["epoch"]) + 1, (entry, creation)
    assert entry["restorable"]["oldest"]["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(oldest))
    b_committed = float(standby.psql("select extract(epoch from pg_last_xact_replay_timestamp())"))
    assert newest == int(b_committed) and newest > oldest, (entry, b_committed)
    assert entry["archive"]["newest_wal_file"] in {f.name for day in archive.iterdir() for f in day.iterdir()}
    # the newest restorable time: a real restore reaches it (recovery stops at B's
    # commit, the last transaction: before it, B committed within that second; after
    # it, at the second itself); a second before the oldest is refused
    at_newest = run([scripts / "restore.sh", "--target-time", utc(newest), "--name", "tn", "--yes"])
    assert f"reached the target {utc(newest)}: stopped at " in at_newest.stderr, at_newest.stderr
    newest_clone = pg.PgServer(major, root / f"mnt/restore/{cluster}-tn/pg_root", 29100 + major)
    rows = newest_clone.psql("select string_agg(note, ',' order by id) from t")
    assert rows == ("A" if b_committed > newest else "A,B"), (rows, b_committed)
    run([scripts / "restore.sh", "--cleanup", "tn", "--yes"])
    before = run([scripts / "restore.sh", "--target-time", utc(oldest - 1), "--yes"], expect=3)
    assert "older than the oldest snapshot" in before.stderr, before.stderr
    # the same figures for Prometheus, into the spec's folder (the cron file's command)
    cron = (bundle / "host/status.cron").read_text()
    assert "root /usr/local/sbin/pitr-status --prometheus ||" in cron
    run([bundle / "host/status.sh", "--prometheus"], expect=1)
    metrics = (root / "prom/pitr_bundle.prom").read_text()
    assert f'pitr_bundle_restorable_oldest_timestamp_seconds{{cluster="{cluster}"}} {oldest}\n' in metrics
    assert f'pitr_bundle_restorable_newest_exact{{cluster="{cluster}"}} 1\n' in metrics
    assert f'pitr_bundle_status_scrape_success{{cluster="{cluster}"}} 1\n' in metrics


@pytest.mark.parametrize("major", [10, 11, 12, 16])
def test_snapshot_restore_and_monitor(major, zfs_fuse, client_tools):
    if major not in pg.available_majors():
        backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
    # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pz", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    cluster = CLUSTER
    drop_user(cluster)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "pz" + os.urandom(3).hex()
    disks = sparse_disks(root / "disks", 3, "256M")
    specs = derived_specs(root, pool, disks, (29000 + major, 27100 + major, 29100 + major), major=major)
    # one more field: the host's Prometheus textfile folder (pitr-status --prometheus writes there)
    host_file = specs / "hosts/pitr1.yaml"
    host_spec = yaml.safe_load(host_file.read_text())
    host_spec["monitor"] = {"prometheus_textfile_dir": str(root / "prom")}
    host_file.write_text(yaml.safe_dump(host_spec))
    (root / "prom").mkdir()
    slot = yaml.safe_load((specs / f"clusters/{cluster}.yaml").read_text())["replication"]["slot"]
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                 if c["name"] == cluster)
    paths = facts["paths"]
    scripts = bundle / f"clusters/{cluster}"
    primary = pg.PgServer(major, root / "primary/data", 27100 + major)
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

        Path(paths["pghome"]).symlink_to(compose_pghome(root / "soft", major, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        standby = pg.PgServer(major, Path(paths["pgdata"]), 29000 + major)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        assert primary.psql(f"select active from pg_replication_slots where slot_name = '{slot}'") == "t"

        # a target before any snapshot is refused, with the reason
        early = run([scripts / "restore.sh", "--target-time", utc(time.time() - 3600), "--yes"], expect=3)
        assert "no snapshot" in early.stderr

        primary.psql("insert into t values (1, 'A')")
        wait_for("row A on the standby", lambda: standby.psql("select note from t where id = 1") == "A")
        snap = run([scripts / "snapshot.sh"])
        assert "took " in snap.stderr
        time.sleep(1.5)
        target = utc(time.time())
        time.sleep(1.5)
        primary.psql("insert into t values (2, 'B')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("B's WAL segment archived", lambda: any(archive.glob(f"*/{segment}")))

        # a target older than the oldest snapshot is refused
        older = run([scripts / "restore.sh", "--target-time", utc(time.time() - 3600), "--yes"], expect=3)
        assert "older than the oldest snapshot" in older.stderr

        # pitr-status (16, the proof): the range it reports is the range a restore reaches
        if major == 16:
            status_range_restores(bundle, root, primary, standby, archive)

        # restore to T: A, not B, open on its own port; the standby streams on; no temporary
        # file of the restore (its settings are written through pipelines) stays behind
        restore_tmp = root / "restore-tmp"
        restore_tmp.mkdir()
        restored = run([scripts / "restore.sh", "--target-time", target, "--name", "t1", "--yes"],
                       env=dict(os.environ, TMPDIR=str(restore_tmp)))
        assert "is open" in restored.stderr
        # reached, said in one line: the last transaction replayed is A's (before the target)
        reached = next(line for line in restored.stderr.splitlines()
                       if f"reached the target {target}: stopped at " in line)
        print(reached)  # shown with the test's output when it fails (or under -rP)
        assert ", timeline 1, last WAL file restored " in reached and "(PostgreSQL: recovery stopping " in reached
        assert stopped_at(reached) < datetime.fromisoformat(target).timestamp(), reached
        assert list(restore_tmp.iterdir()) == []
        clone = pg.PgServer(major, root / f"mnt/restore/{cluster}-t1/pg_root", 29100 + major)
        assert clone.psql("select pg_is_in_recovery()") == "f"
        assert clone.psql("select string_agg(note, ',' order by id) from t") == "A"
        # 13+ (hot standby): paused at the target, then promoted, the server opens with an
        # end-of-recovery record and checkpoints in the background; up to 12 PostgreSQL
        # promotes at the target itself, with the end-of-recovery checkpoint waited for
        clone_log = "".join(p.read_text() for p in (root / f"mnt/pg_log/{cluster}-restore-t1").iterdir())
        # the restore_command remembered the day folder it last found WAL in
        memo = (clone.data_dir / "pitr-fetch.day").read_text().strip()
        assert memo in {day.name for day in archive.iterdir()}, memo
        if major >= 13:
            assert "recovery paused at the target" in restored.stderr
            assert "received promote request" in clone_log
            assert "end-of-recovery immediate wait" not in clone_log
        else:
            assert "recovery paused" not in restored.stderr and "recovery paused" not in clone_log
        wait_for("row B on the live standby", lambda: standby.psql("select note from t where id = 2") == "B")
        assert standby.psql("select status from pg_stat_wal_receiver") == "streaming"
        origin = subprocess.run(["zfs", "get", "-H", "-o", "value", "origin", f"{pool}/restore/{cluster}-t1"],
                                capture_output=True, text=True).stdout.strip()
        assert origin.startswith(f"{pool}/{cluster}@pitr-")

        # a restore drill to T (beside restore t1, on the next port) passes and is recorded
        drill = run([scripts / "drill.sh", "--target-time", target])
        assert "drill ok" in drill.stderr
        assert "result=ok" in (root / f"state/drill-{cluster}.state").read_text()

        # the check is OK on the healthy setup
        check = bundle / "host/monitor.sh"
        ok = run([check], expect=0)
        assert ok.stdout.startswith("PITR OK"), ok.stdout

        # --list: the range in times (after the snapshot, to at most the newest archived WAL
        # file's time), the
        # snapshot, the restore
        listed = run([scripts / "restore.sh", "--list"]).stdout
        print(listed)
        newest = max((f for day in archive.iterdir() for f in day.iterdir()), key=lambda f: f.stat().st_mtime)
        snap_name = origin.split("@")[1]
        snap_time = datetime.strptime(snap_name.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%d %H:%M:%S UTC")
        assert (f"Restorable with --target-time: after {snap_time} (snapshot {snap_name}) to at most "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(int(newest.stat().st_mtime)))} UTC "
                f"(the newest archived WAL file, {newest.name}; the last transaction in it: "
                "pitr-status)") in listed, listed
        assert f"{snap_name}" in listed and "to any later time" in listed, listed
        assert "  t1 " in listed and "running" in listed, listed

        # --cleanup removes the clone
        run([scripts / "restore.sh", "--cleanup", "t1", "--yes"])
        assert subprocess.run(["zfs", "list", f"{pool}/restore/{cluster}-t1"], capture_output=True).returncode != 0

        # the archive falls behind (its command fails on the primary): C is committed after
        # the newest archived WAL; a target after C is refused with the point reached, the
        # clone kept: 12 opens short of it and restore.sh finds it in the log, 16 refuses
        primary.psql("alter system set archive_command = '/bin/false'")
        primary.psql("select pg_reload_conf()")
        time.sleep(1)
        primary.psql("insert into t values (3, 'C')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        time.sleep(1.5)
        past_end = utc(time.time())
        short = run([scripts / "restore.sh", "--target-time", past_end, "--name", "t2", "--yes"], expect=1)
        error = [line for line in short.stderr.splitlines() if "ERROR" in line][-1]
        print(short.stderr)
        assert f"ERROR: recovery ended before the target {past_end} was reached" in error, short.stderr
        assert ", timeline 1, last WAL file restored " in error, error
        assert stopped_at(error) < datetime.fromisoformat(past_end).timestamp(), error
        assert "is kept for inspection" in short.stderr and "--cleanup t2" in short.stderr
        assert "reached the target" not in short.stderr and "is open:" not in short.stderr
        if major >= 13:
            assert '(PostgreSQL: "recovery ended before configured recovery target was reached")' in error
        else:
            assert f"PostgreSQL {major} opened there anyway" in error
            short_clone = pg.PgServer(major, root / f"mnt/restore/{cluster}-t2/pg_root", 29100 + major)
            assert short_clone.psql("select string_agg(note, ',' order by id) from t") == "A,B"
        run([scripts / "restore.sh", "--cleanup", "t2", "--yes"])
        # a drill to that target fails, recorded with the reason, its clone removed
        failed_drill = run([scripts / "drill.sh", "--target-time", past_end], expect=1)
        state = (root / f"state/drill-{cluster}.state").read_text()
        assert "result=failed" in state and "recovery ended before" in state, failed_drill.stderr + state
        assert subprocess.run(["zfs", "list", f"{pool}/restore/{cluster}-drill"], capture_output=True).returncode != 0
        primary.psql("alter system reset archive_command")
        primary.psql("select pg_reload_conf()")
        wait_for("C's WAL segment archived", lambda: any(archive.glob(f"*/{segment}")))

        # an archive that stalls is CRITICAL
        for path in archive.rglob("*"):
            os.utime(path, (time.time() - 7200, time.time() - 7200))
        stalled = run([check], expect=2)
        assert stalled.stdout.startswith("PITR CRITICAL") and "archive delay" in stalled.stdout

        # a stopped standby is CRITICAL
        run(["runuser", "-u", cluster, "--", pghome_bin / "pg_ctl", "-D", paths["pgdata"], "-m", "fast", "-w", "stop"])
        stopped = run([check], expect=2)
        assert f"{cluster}: standby not running" in stopped.stdout
    finally:
        for data in (root / f"mnt/restore/{cluster}-t1/pg_root", root / f"mnt/restore/{cluster}-t2/pg_root",
                     root / f"mnt/restore/{cluster}-tn/pg_root", Path(paths["pgdata"])):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", cluster, "--", str(pghome_bin / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(cluster)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
