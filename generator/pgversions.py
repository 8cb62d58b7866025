"""PostgreSQL version facts as data (as Patroni keeps them): which setting or file exists in
which major versions. Versions are integers like 120000 (12) or 90000 (9.0); `from` is
inclusive, `till` exclusive. Templates never compare versions: they get the results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# the majors whose rules FACTS describe, from 9.0 (the runbook's) to 18: a newer major has
# recovery rules nobody has checked yet. Before 10 a major has two parts (9.6), since one (16).
KNOWN_MAJORS = tuple(f"9.{minor}" for minor in range(7)) + tuple(str(m) for m in range(10, 19))


@dataclass(frozen=True)
class Fact:
    name: str
    since: Optional[int]  # inclusive; None: as old as we know
    till: Optional[int]  # exclusive; None: still there

    def holds(self, version_num: int) -> bool:
        return (self.since is None or version_num >= self.since) and (
            self.till is None or version_num < self.till)


FACTS = {fact.name: fact for fact in [
    # where standby settings live
    Fact("recovery.conf", None, 120000),
    Fact("standby.signal", 120000, None),
    Fact("standby_mode", None, 120000),
    Fact("trigger_file", None, 120000),
    Fact("promote_trigger_file", 120000, 160000),
    Fact("recovery_target_action", 90500, None),
    Fact("pause_at_recovery_target", 90100, 90500),
    # a promote request ends a recovery paused at its target, and the server then opens with
    # an end-of-recovery record and checkpoints in the background (13+, "Prefer standby
    # promotion over recovery pause"); before, a promote waits for pg_wal_replay_resume() and
    # a target reached always ends with a synchronous end-of-recovery checkpoint (measured on
    # 10 and 12: "checkpoint starting: end-of-recovery immediate wait" either way)
    Fact("promote ends a recovery pause", 130000, None),
    Fact("recovery_target_lsn", 100000, None),
    Fact("recovery_target_timeline", None, None),
    # WAL retention on the sending side
    Fact("wal_keep_segments", None, 130000),
    Fact("wal_keep_size", 130000, None),
    Fact("max_slot_wal_keep_size", 130000, None),
    # names that changed
    Fact("pg_xlog", None, 100000),
    # before 9.3 a log file's last segment is never used (16 MB segments: no ...FF file; the
    # segments of a log file are 0xFFFFFFFF // segment size, not 2^32 // segment size)
    Fact("last segment of a log file unused", None, 90300),
    Fact("pg_wal", 100000, None),
    Fact("unix_socket_directory", None, 90300),
    Fact("unix_socket_directories", 90300, None),
    Fact("wal_level=hot_standby", 90000, 90600),
    Fact("wal_level=replica", 90600, None),
    # base backups
    Fact("pg_basebackup", 90100, None),
    Fact("pg_basebackup -X stream", 90200, None),
    Fact("pg_basebackup tar -X stream", 100000, None),
    Fact("max_worker_processes", 90400, None),
    Fact("max_wal_senders default 10", 100000, None),
    # the primary's side: replication slots, and what its settings default to
    Fact("replication slots", 90400, None),
    # a standby archives what it receives (archive.method: standby)
    Fact("archive_mode always", 90500, None),
    Fact("slot reserves WAL at creation", 90600, None),  # immediately_reserve
    Fact("pg_basebackup --slot", 90600, None),
    Fact("pg_stat_replication", 90100, None),
    # the REPLICATION role attribute: before 9.1 a walsender serves superusers only
    Fact("replication role attribute", 90100, None),
    # synchronous replication (and pg_stat_replication.sync_state); 'quorum' (ANY n) from 10
    Fact("synchronous_standby_names", 90100, None),
    Fact("pg_file_settings", 90500, None),
    Fact("archive_library", 150000, None),
    Fact("wal_level default replica", 100000, None),
    Fact("max_replication_slots default 10", 100000, None),
    Fact("log_directory absolute", None, None),
    Fact("in_place_tablespaces", 150000, None),
    # pg_ctl -w returns once a standby runs (PM_STATUS_STANDBY); before, it waits for
    # connections, which a standby with hot_standby=off never accepts
    Fact("pg_ctl -w knows standbys", 100000, None),
    # TLS of replication: libpq's sslmode verify-ca/verify-full and sslrootcert (from 8.4,
    # with hostssl lines; so in every known major), the server's view of each connection's
    # TLS (pg_stat_ssl, joined to pg_stat_replication by pid), and ssl changed by a reload
    # (before 10 only by a restart)
    Fact("sslmode verify-full", 80400, None),
    Fact("pg_stat_ssl", 90500, None),
    Fact("ssl reloads", 100000, None),
    # process titles and monitoring views
    Fact("walreceiver process title", 110000, None),  # before (10 too): "wal receiver process"
    Fact("pg_stat_archiver", 90400, None),  # before: count archive_status/*.ready
    Fact("replication slots", 90400, None),
    Fact("pg_current_wal_lsn", 100000, None),  # before: pg_current_xlog_location
    Fact("wal_status", 130000, None),  # pg_replication_slots.wal_status, safe_wal_size
    Fact("pg_last_xact_replay_timestamp", 90100, None),
    # verifying a copy: the amcheck extension (contrib, bt_index_check) from 10, its client
    # pg_amcheck (heap and B-tree of every database) from 14; data checksums from 9.3 (initdb
    # -k, SHOW data_checksums), checked offline by pg_checksums --check from 12; base backups
    # carry a backup_manifest that pg_verifybackup checks from 13
    Fact("amcheck extension", 100000, None),
    Fact("pg_amcheck", 140000, None),
    Fact("data checksums", 90300, None),
    Fact("pg_checksums --check", 120000, None),
    Fact("pg_verifybackup", 130000, None),
    # replay health on a standby: receive and replay positions (named *_xlog_* before 10),
    # pausing replay (9.1+; pg_is_*_replay_paused() errors when not in recovery), and 14+
    # pausing by itself when the primary's hot standby settings rose above the standby's
    Fact("pg_last_wal_receive_lsn", 100000, None),  # before: pg_last_xlog_receive_location
    Fact("replay pause", 90100, None),
    Fact("pauses on insufficient parameter settings", 140000, None),
    # before 9.3 the last segment of each 4 GB WAL "log" (xlogid) is never used: 255 segments
    # of 16 MB a log, not 256
    Fact("last segment of each log skipped", None, 90300),
    # following a failover: libpq takes a list of hosts (host=a,b port=p,p) and, with
    # target_session_attrs=read-write, skips a node that is in recovery (both from 10; the
    # standby's own libpq decides, and the bundle builds the primary's version). Before 10 a
    # conninfo names one host: the standby keeps primary.address
    Fact("libpq multi-host", 100000, None),
    Fact("target_session_attrs", 100000, None),
    # recovery_target_timeline defaults to latest from 12 (current before): the bundle sets
    # latest on every version, explicitly, so a standby follows a promoted HA partner
    Fact("recovery_target_timeline default latest", 120000, None),
    # which node a standby streams from: pg_stat_wal_receiver (9.6; its conninfo names the
    # host list), sender_host/sender_port (11)
    Fact("pg_stat_wal_receiver", 90600, None),
    Fact("pg_stat_wal_receiver.sender_host", 110000, None),
    # a standby that replayed past a new timeline's fork point can be brought back without a
    # new base backup by pg_rewind (contrib from 9.5; 9.4 had it only as an external tool)
    Fact("pg_rewind", 90500, None),
]}


def version_num(version: str) -> int:
    """'9.0.17' -> 90017, '17.6' -> 170006, '18' -> 180000 (as server_version_num)."""
    parts = [int(p) for p in version.split(".")]
    if parts[0] < 10:
        major, minor, patch = parts[0], parts[1], parts[2] if len(parts) > 2 else 0
        return major * 10000 + minor * 100 + patch
    return parts[0] * 10000 + (parts[1] if len(parts) > 1 else 0)


def major_num(version: str) -> int:
    """The major as a version number: 90000 for 9.0.x, 170000 for 17.x."""
    number = version_num(version)
    return number - number % 100 if number < 100000 else number - number % 10000


def major_text(version: str) -> str:
    """'9.0.17' -> '9.0', '16.4' -> '16'."""
    parts = version.split(".")
    return ".".join(parts[:2]) if int(parts[0]) < 10 else parts[0]


def has(fact: str, version: str) -> bool:
    return FACTS[fact].holds(version_num(version))


def known(version: str) -> bool:
    return major_text(version) in KNOWN_MAJORS


# settings a hot standby must keep at least as high as the primary's (else it refuses to start)
HOT_STANDBY_FLOORS = ("max_connections", "max_worker_processes", "max_prepared_transactions",
                      "max_locks_per_transaction", "max_wal_senders")
