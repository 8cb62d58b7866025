"""The backup standby follows a failover, for real: PostgreSQL 17 servers on 127.0.0.1 and
127.0.0.2. The example specs' bundle (cluster pg168121 with its slot, hot
standby on, and the example's archive method: the backup standby archives what it streams,
archive_mode = always) derived by tests/derived_example.py, with the HA partner at 127.0.0.2 (same port,
as a partner that takes over the primary's service) and drill.enabled false (the drill has
its own real test; here none has run, which the monitor would report). The pool is zfs-fuse's;
the monitor's timeline and node findings are asserted by their text (their levels, WARNING
until acknowledged and CRITICAL for a fork, are the bats suite's, monitor.bats).

1. Follow: the primary (P, 127.0.0.1) and its HA partner (Q, 127.0.0.2, a physical replica
   made with pg_basebackup) both hold the slot (on Q made by the primary step's SQL for a node
   in recovery: it reserves nothing). The backup standby, made by 50-basebackup.sh and
   60-standby.sh, streams from P through the slot; the monitor records timeline 1 and names
   P. P stops, Q is promoted: the standby follows to timeline 2 without a new base backup,
   streams from Q through Q's slot, has a row written on Q, and the monitor says WARNING
   (timeline 1 to 2, streaming from Q) until --ack-timeline (--dry-run records nothing).
   Neither P nor Q archives (archive_mode off on both): 00000002.history reaches the archive
   because the backup standby archives the history file its walreceiver fetches from Q.
   Snapshots go on: one taken on timeline 2, then a restore to a time after the failover opens
   with the rows of timeline 2 (A from timeline 1, B from timeline 2) and not a later row.
2. Fork: P restarts as Q's replica; P stops (its replication with it), Q writes what only the
   backup standby receives, Q stops, P starts as a standby again and is promoted (timeline 3, forked off before what the
   standby replayed). The standby does not follow, and the monitor says CRITICAL with the
   fork and what brings the standby back."""

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
from derived_example import CLUSTER, derived_specs, example_primary
from test_pitr_zfs_pg import utc
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 17
PARTNER = "127.0.0.2"
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 29517, 27517, 29518


def monitor(check: Path, *args: str, expect: int | None = None) -> str:
    """The check's one status line (its exit code asserted when expected: without a pool the
    check's own level is CRITICAL whatever the standby does)."""
    result = subprocess.run([str(check), *args], capture_output=True, text=True, timeout=120)
    assert expect is None or result.returncode == expect, \
        f"exit {result.returncode}: {result.stdout}{result.stderr}"
    assert result.stdout.startswith("PITR "), result.stdout + result.stderr
    return result.stdout


def sql_of(script: Path, function: str) -> str:
    """The SQL a generated script's heredoc function prints."""
    text = script.read_text()
    return re.search(rf"(?ms)^{function}\(\) {{\n  cat <<'SQL'\n(.*?)\nSQL\n}}", text).group(1)


def replica_of(source: pg.PgServer, data_dir: Path, host: str, tools: Path) -> pg.PgServer:
    """A physical replica of source (pg_basebackup -R) listening on host, source's port."""
    replica = pg.PgServer(MAJOR, data_dir, source.port)
    replica.host = host
    replica._owned_dir(replica.run_dir)
    replica._owned_dir(data_dir)
    subprocess.run(["runuser", "-u", pg.DEFAULT_OS_USER, "--", str(tools / "pg_basebackup"),
                    "-h", source.host, "-p", str(source.port), "-U", "postgres", "-D", str(data_dir),
                    "-X", "stream", "-R", "--no-sync"], check=True, capture_output=True,
                   env=pg.client_env(), cwd="/", timeout=120)
    replica.configure({"listen_addresses": host, "unix_socket_directories": str(replica.run_dir)})
    return replica


def follow(replica: pg.PgServer, source: pg.PgServer) -> None:
    """Make a stopped old primary a standby of source (its last record is one source has)."""
    (replica.data_dir / "standby.signal").touch()
    shutil.chown(replica.data_dir / "standby.signal", pg.DEFAULT_OS_USER, pg.DEFAULT_OS_USER)
    replica.configure({"primary_conninfo": f"host={source.host} port={source.port} user=postgres",
                       "recovery_target_timeline": "latest"})


def test_standby_follows_a_failover_and_says_when_it_cannot(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    root = Path(tempfile.mkdtemp(prefix="fo", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "fo" + os.urandom(3).hex()
    specs = derived_specs(root, pool, sparse_disks(root / "disks", 3, "256M"),
                          (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR,
                          archive_method=None)
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(cluster_file.read_text())
    spec["drill"]["enabled"] = False
    spec["primary"]["ha_partner"] = PARTNER
    cluster_file.write_text(yaml.safe_dump(spec))
    slot = spec["replication"]["slot"]
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    scripts = bundle / f"clusters/{CLUSTER}"
    step = scripts / "primary/45-apply-on-primary.sh"
    mnt = root / "mnt"
    pgdata = mnt / CLUSTER / "pg_root"
    archive = mnt / "pg_arch" / CLUSTER / "arch"
    pghome_bin = mnt / "pg_home" / CLUSTER / "pgsql/bin"
    check = bundle / "host/monitor.sh"
    timeline_state = root / "state" / f"timeline-{CLUSTER}.state"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    partner = None
    standby = pg.PgServer(MAJOR, pgdata, STANDBY_PORT)
    helper = Path(f"/usr/local/sbin/pitr-archive-wal-{CLUSTER}")  # 60-standby.sh installs it
    assert not (scripts / "primary/pitr-archive-wal.sh").exists()  # archive.method standby
    started = time.monotonic()
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])
        example_primary(root, scripts, archive, primary, PASSWORD)
        primary.psql(sql_of(step, "create_slot_sql"))
        primary.psql("create table t (id int primary key, note text)")

        # the HA partner: a physical replica on 127.0.0.2; the primary step's slot for a node in
        # recovery reserves no WAL there
        partner = replica_of(primary, root / "partner/data", PARTNER, client_tools)
        partner.start()
        assert partner.psql("select pg_is_in_recovery()") == "t"
        partner.psql(sql_of(step, "standby_slot_sql"))
        assert partner.psql(f"select slot_type, restart_lsn is null from pg_replication_slots "
                            f"where slot_name = '{slot}'") == "physical|t"

        # the backup standby, by the bundle's scripts: both nodes in its conninfo and .pgpass
        (mnt / "pg_home" / CLUSTER / "pgsql").symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        assert (f"primary_conninfo = 'host=127.0.0.1,{PARTNER} port={PRIMARY_PORT},{PRIMARY_PORT} "
                f"user=replicator application_name={CLUSTER} target_session_attrs=read-write'"
                ) in (pgdata / "pitr-bundle.conf").read_text()
        pgpass = (Path(pwd.getpwnam(CLUSTER).pw_dir) / ".pgpass").read_text().splitlines()
        for node in ("127.0.0.1", PARTNER):
            assert f"{node}:{PRIMARY_PORT}:*:replicator:{PASSWORD}" in pgpass, pgpass
        wait_for("streaming from the primary through its slot", lambda: primary.psql(
            f"select active from pg_replication_slots where slot_name = '{slot}'") == "t")
        assert standby.psql("show archive_mode") == "always"
        for server in (primary, partner):
            assert server.psql("show archive_mode") == "off"
        primary.psql("insert into t values (1, 'A')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("a segment archived", lambda: any(archive.glob(f"*/{segment}")))
        wait_for("row A on the standby", lambda: standby.psql("select note from t where id = 1") == "A")
        wait_for("row A on the partner", lambda: partner.psql("select note from t where id = 1") == "A")

        # the first run records timeline 1 and names the node streamed from
        first = monitor(check)
        assert f"{CLUSTER}: streams from 127.0.0.1:{PRIMARY_PORT} on timeline 1" in first, first
        assert "timeline changed" not in first, first
        assert timeline_state.read_text() == "timeline=1\n"

        # 1. failover: the primary stops, the partner is promoted; the standby follows
        primary.stop()
        partner._run("pg_ctl", "-D", partner.data_dir, "-w", "promote")
        partner.psql("insert into t values (2, 'B on timeline 2')")
        wait_for("row B on the standby", lambda: standby.psql(
            "select note from t where id = 2") == "B on timeline 2", timeout=90)
        wait_for("the standby streams from the partner", lambda: standby.psql(
            "select sender_host || ' ' || received_tli || ' ' || status from pg_stat_wal_receiver")
            == f"{PARTNER} 2 streaming")
        assert partner.psql(f"select active, restart_lsn is not null from pg_replication_slots "
                            f"where slot_name = '{slot}'") == "t|t"
        postmaster = (pgdata / "postmaster.pid").read_text().split()[0]
        wait_for("the standby's startup process on timeline 2", lambda: subprocess.run(
            ["pgrep", "-P", postmaster, "-f", "recovering 00000002"], capture_output=True).returncode == 0)
        changed = monitor(check)
        assert (f"{CLUSTER}: timeline changed from 1 to 2 (a failover or promotion "
                f"of the primary's side), streaming from {PARTNER}:{PRIMARY_PORT}: check that it "
                f"is the new primary, then monitor.sh --ack-timeline {CLUSTER}") in changed, changed
        dry = monitor(check, "--ack-timeline", CLUSTER, "--dry-run", expect=0)
        assert dry.startswith(f"PITR OK - {CLUSTER}: dry-run: would acknowledge timeline 2 (recorded: 1)"), dry
        assert timeline_state.read_text() == "timeline=1\n"
        acked = monitor(check, "--ack-timeline", CLUSTER, expect=0)
        assert acked.startswith(f"PITR OK - {CLUSTER}: timeline 2 acknowledged (was 1), streaming "
                                f"from {PARTNER}:{PRIMARY_PORT}"), acked
        after = monitor(check)
        assert "timeline changed" not in after and f"streams from {PARTNER}:{PRIMARY_PORT} on timeline 2" in after, after
        # the timeline's history file, which a restore reads: no node archives, the backup
        # standby does (its walreceiver marks the file it fetched .ready in archive_mode always)
        wait_for("00000002.history archived", lambda: any(archive.glob("*/00000002.history")))
        (history,) = archive.glob("*/00000002.history")
        assert history.read_bytes() == (partner.data_dir / "pg_wal/00000002.history").read_bytes()
        assert history.stat().st_uid == pwd.getpwnam(CLUSTER).pw_uid

        # snapshots go on, on timeline 2; a restore to a time after the failover has A and B
        lsn = partner.psql("select pg_current_wal_lsn()")
        wait_for("B replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        assert "took " in run([scripts / "snapshot.sh"]).stderr
        time.sleep(1.1)
        target = utc(time.time())
        time.sleep(1.1)
        partner.psql("insert into t values (4, 'B2 after the target')")
        segment = partner.psql("select pg_walfile_name(pg_current_wal_lsn())")
        partner.psql("select pg_switch_wal()")
        wait_for("B2's segment archived", lambda: any(archive.glob(f"*/{segment}")))
        assert segment.startswith("00000002"), segment
        restored = run([scripts / "restore.sh", "--target-time", target, "--name", "f1", "--yes"])
        assert "is open" in restored.stderr, restored.stderr
        clone = pg.PgServer(MAJOR, mnt / f"restore/{CLUSTER}-f1/pg_root", RESTORE_PORT)
        assert clone.psql("select string_agg(note, ',' order by id) from t") == "A,B on timeline 2"
        run([scripts / "restore.sh", "--cleanup", "f1", "--yes"])

        # 2. fork: the old primary follows the partner, then stops; the partner writes what
        # only the backup standby receives, stops; the old primary is promoted
        follow(primary, partner)
        primary.start()
        wait_for("the old primary replays timeline 2", lambda: primary.psql(
            "select note from t where id = 2") == "B on timeline 2")
        primary.stop()
        partner.psql("insert into t values (3, 'C only on the backup standby')")
        wait_for("row C on the standby", lambda: standby.psql(
            "select note from t where id = 3") == "C only on the backup standby")
        partner.stop()
        primary.start()
        primary._run("pg_ctl", "-D", primary.data_dir, "-w", "promote")
        assert primary.psql("select pg_is_in_recovery()") == "f"
        assert primary.psql("select count(*) from t where id = 3") == "0"
        wait_for("the fork in the standby's log", lambda: f"{CLUSTER}: the standby replayed past "
                 "the point where the new primary's timeline forked off" in monitor(check), timeout=90)
        forked = monitor(check)
        assert ("it cannot follow; pg_rewind from the new primary brings it back without a new base "
                "backup (after a snapshot of its dataset), else take a new base backup "
                "(50-basebackup.sh --force)") in forked, forked
        assert standby.psql("select note from t where id = 3") == "C only on the backup standby"
        print(f"failover real test: {time.monotonic() - started:.1f} s after the bundle was built")
    finally:
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(pghome_bin / "pg_ctl"), "-D", str(pgdata),
                            "-m", "immediate", "stop"], capture_output=True)
        clone_data = mnt / f"restore/{CLUSTER}-f1/pg_root"
        if (clone_data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(pghome_bin / "pg_ctl"), "-D", str(clone_data),
                            "-m", "immediate", "stop"], capture_output=True)
        for server in (primary, partner):
            if server is not None:
                server.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        helper.unlink(missing_ok=True)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
