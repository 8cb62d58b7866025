"""The values a cluster's scripts render: the template context shared by every file under
clusters/<cluster>/, read from the derived model (pure: no I/O). Each part is a function of its
own, named after the scripts that read it."""

from __future__ import annotations

from generator import cluster_plan as cp
from generator import pgversions as pv
from generator.model import BASEBACKUP_INCOMPLETE_MARK, ClusterModel, HostModel, snapshot_lock_file
from generator.planned import (KEPT_PROPERTY, MAJOR_PROPERTY, REDO_PROPERTY, SYSTEM_ID_PROPERTY,
                               TIMELINE_PROPERTY)
from generator.quoting import shell_quote


def cluster_context(model: HostModel, cm: ClusterModel) -> dict:
    c, version = cm.spec, cm.spec.postgres.version
    configure = list(cm.configure_args)
    basebackup = basebackup_context(cm)
    return {
        "c": c, "cluster": cm.cluster, "paths": cm.paths,
        "settings": cm.standby_settings,
        "recovery": cm.recovery_settings,
        "recovery_file": cm.recovery_file,
        "pg_ctl_waits": pv.has("pg_ctl -w knows standbys", version),
        "basebackup": basebackup,
        "configure_args": configure,
        # shell_quote keeps each word on one line ($'...' for newlines) for the comment
        "configure_display": _wrap(["./configure", *(shell_quote(a) for a in configure)]),
        "expected_configure": cp.autoconf_recorded(configure),
        "expected_version": cp.version_recorded(version, configure),
        "dropped_options": cp.dropped_options(list(c.postgres.configure)),
        "primary_settings": cp.primary_settings(cm.cluster),
        "primary_step": primary_step_context(cm),
        "hba_source": cp.hba_address(model.host.spec.replication_source),
        "hba_auth": cp.replication_auth(version),
        "hba_type": cp.hba_connection_type(cm.cluster),
        "tls": tls_context(cm),
        "archive_export": cm.archive_export,
        "continuity_args": continuity_args(cm),
        "install_script": "35-check-binaries.sh" if c.postgres.binaries else "35-build.sh",
        # what the scripts run from $PGHOME/bin (the check of installed binaries looks for them)
        "programs": ["postgres", "pg_ctl", "psql"]
        + (["pg_basebackup"] if pv.has("pg_basebackup", version) else []),
        "helper": cm.archive_helper,
        "archive_method": cm.archive_method,
        "check": check_context(cm, basebackup["wal_dir"]),
        "retention_installed": cm.retention_installed,
        # ZFS user properties: the REDO WAL file of each snapshot, and on the cluster's
        # dataset the first WAL file the retention keeps
        "redo_property": REDO_PROPERTY,
        "kept_property": KEPT_PROPERTY,
        "system_id_property": SYSTEM_ID_PROPERTY,
        "major_property": MAJOR_PROPERTY,
        "timeline_property": TIMELINE_PROPERTY,
        "incomplete_mark": BASEBACKUP_INCOMPLETE_MARK,
        "keep": c.snapshots.keep.model_dump(),
        "snapshot_installed": cm.snapshot_installed,
        "snapshot_lock": snapshot_lock_file(c.name),
        "archive_dataset": cm.archive_dataset,
        "cron_name": cm.cron_name,
        "restore": restore_context(cm),
    }


def basebackup_context(cm: ClusterModel) -> dict:
    """50-basebackup.sh: pg_basebackup with the WAL option the version has, else
    pg_start_backup and rsync (9.0)."""
    c, version = cm.spec, cm.spec.postgres.version
    if pv.has("pg_basebackup", version):
        wal = (["-X", "stream"] if pv.has("pg_basebackup tar -X stream", version)
               else ["-X", "fetch"] if pv.has("pg_basebackup -X stream", version) else ["-x"])
        if c.replication.slot and wal[1:] == ["stream"] and pv.has("pg_basebackup --slot", version):
            # the WAL stream of the backup goes through the standby's slot, made by the primary
            # step: a missing slot stops the backup at once, not the standby later
            wal += ["-S", c.replication.slot]
        basebackup = {"method": "pg_basebackup",
                      "options": ["-F", "t", *wal, "-c", "fast", "-w", "-l", cp.backup_label(cm.cluster)],
                      "manifest": pv.has("pg_verifybackup", version)}
    else:
        basebackup = {"method": "pg_start_backup", "options": [], "manifest": False}
    basebackup["wal_dir"] = cm.wal_dir
    return basebackup


def primary_step_context(cm: ClusterModel) -> dict:
    """primary/45-apply-on-primary.sh: what it asks the running server and what it sets."""
    cluster, c, version = cm.cluster, cm.spec, cm.spec.postgres.version
    return {
        "facts_sql": cp.primary_facts_sql(cluster),
        "create_slot_sql": cp.create_slot_sql(cluster) if c.replication.slot else "",
        "standby_slot_sql": cp.standby_slot_sql(cluster) if c.replication.slot else "",
        "managed": cp.primary_managed(cluster),
        "psql_candidates": cp.psql_candidates(cluster),
        "archive_command": cp.archive_command(cluster),
        "wal_level_needed": cp.wal_level_needed(version),
        # wal_level 'archive' means replica from 9.6 on; before, it is below hot_standby
        "archive_rank": 2 if pv.has("wal_level=replica", version) else 1,
        "senders_needed": cp.SENDERS_NEEDED,
        "archive_timeout": c.primary.archive_timeout,
        "slot_keep_mb": cp.slot_keep_megabytes(cluster),
        "include_name": cp.INCLUDE_NAME,
        "major_num": pv.major_num(version),
        "application_name": cp.application_name(cluster),
        # the role: REPLICATION from 9.1 (9.0 streams to superusers only); a password
        # stored as SCRAM where the hba lines ask for it (14+), whatever
        # password_encryption the server defaults to
        "role_attribute": "REPLICATION" if pv.has("replication role attribute", version)
        else "SUPERUSER",
        "password_encryption": "scram-sha-256"
        if cp.replication_auth(version) == "scram-sha-256" else "",
    }


def tls_context(cm: ClusterModel) -> dict:
    """replication.tls: the primary step's check of ssl, the base backup's libpq environment,
    the standby steps' check of the CA file, check-primary.sh's TLS check."""
    tls, version = cm.spec.replication.tls, cm.spec.postgres.version
    return {
        "mode": tls.mode if tls else "",
        "ca_file": (tls.ca_file or "") if tls else "",
        "environment": cp.tls_environment(cm.cluster),
        "ssl_reloads": pv.has("ssl reloads", version),
        "pg_stat_ssl": pv.has("pg_stat_ssl", version),
    }


def check_context(cm: ClusterModel, wal_dir: str) -> dict:
    """primary/check-primary.sh: the catalog functions and views of the primary's version."""
    version = cm.spec.postgres.version
    return {
        "wal_dir": wal_dir,
        "archiver": pv.has("pg_stat_archiver", version),
        "slots": pv.has("replication slots", version),
        "wal_status": pv.has("wal_status", version),
        "sync_state": pv.has("synchronous_standby_names", version),
        "application_name": cp.application_name(cm.cluster),
        "backup_label": cp.backup_label(cm.cluster),
        "current_lsn": ("pg_current_wal_lsn" if pv.has("pg_current_wal_lsn", version)
                        else "pg_current_xlog_location"),
        "lsn_diff": ("pg_wal_lsn_diff" if pv.has("pg_current_wal_lsn", version)
                     else "pg_xlog_location_diff"),
    }


def restore_context(cm: ClusterModel) -> dict:
    """restore.sh and drill.sh: where clones go and how recovery ends at the target."""
    version = cm.spec.postgres.version
    # pause at the target, then promote: the server opens without waiting for the
    # end-of-recovery checkpoint. A pause needs a hot standby (else `pause` acts as
    # `shutdown`), which only a spec whose standby runs hot is known to allow (its
    # max_connections and friends are at least the primary's)
    fast_open = pv.has("promote ends a recovery pause", version) and cm.spec.standby.hot_standby
    return {
        "parent": cm.restore_parent,
        "port": cm.restore_port,
        "recovery_file": cm.restore_recovery_file,
        "socket_setting": ("unix_socket_directories" if pv.has("unix_socket_directories", version)
                           else "unix_socket_directory"),
        "promote_at_pause": fast_open,
        "target_action": ("recovery_target_action = 'pause'" if fast_open
                          else "recovery_target_action = 'promote'"
                          if pv.has("recovery_target_action", version)
                          else "pause_at_recovery_target = false"
                          if pv.has("pause_at_recovery_target", version) else ""),
    }


def continuity_args(cm: ClusterModel) -> list[str]:
    """The arguments of the archive continuity check (templates/lib/wal-continuity.sh.j2's
    wal_continuity, less the property names) for one cluster."""
    skips = pv.has("last segment of a log file unused", cm.spec.postgres.version)
    return [cm.cluster.dataset, cm.spec.snapshots.prefix, cm.paths.archive, cm.paths.pghome,
            cm.paths.pgdata, "1" if skips else "0"]


def _wrap(words: list[str], width: int = 92) -> list[str]:
    """Shell words as comment lines ending in a backslash (never inside a word), for the
    script header."""
    lines, current = [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current + " \\")
            current = "  " + word
        else:
            current = f"{current} {word}" if current else word
    return lines + [current]
