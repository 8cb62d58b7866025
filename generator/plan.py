"""Decide which files a host's bundle holds and what each is rendered from (pure: no I/O)."""

from __future__ import annotations

import posixpath

from generator import cluster_plan as cp
from generator import pgversions as pv
from generator.cluster_context import cluster_context, continuity_args
from generator.load import SpecFile
from generator.model import (BASEBACKUP_INCOMPLETE_MARK, DRILL_NAME, SNAPSHOT_LOCK_DIR, STATUS_CRON,
                             STATUS_INSTALLED, STATUS_SCHEDULE, VIP_UNIT, ClusterModel, HostModel)
from generator.planned import (CONFIG_MODE, KEPT_PROPERTY, MAJOR_PROPERTY, REDO_PROPERTY,
                               REPLICA_STATE_FILE, SYSTEM_ID_PROPERTY, PlannedFile)
from generator.replica_plan import plan_replica, plan_senders


def plan_host(model: HostModel) -> list[PlannedFile]:
    """The bundle's files, their contexts read from the derived model (nothing recomputed)."""
    host = model.host
    datasets = model.datasets
    # only the clusters whose primaries archive over NFS (archive.method nfs): a standby
    # that archives itself writes into its local folder, which no primary mounts
    exported = [cm for cm in model.clusters if cm.archive_method == "nfs"]
    exports = [{"path": cm.archive_export, "group": cm.spec.user, "cluster": cm.name,
                "clients": cm.spec.archive_clients} for cm in exported]
    files = [
        # verify.sh reads SHA256SUMS when it runs: its text holds no cluster's value
        PlannedFile("verify.sh", "verify", "verify.sh.j2",
                    "check every file of the bundle against SHA256SUMS (run it first)",
                    [host.source], order=0),
        PlannedFile("host/10-pool.sh", "pool", "host/pool.sh.j2",
                    f"create ZFS pool {host.spec.pool.name} and set its root properties",
                    [host.source], order=10, destructive=True,
                    context={"vdev_args": model.vdev_args, "layout_lines": model.layout_lines,
                             "takes_force": True}),
        PlannedFile("host/20-datasets.sh", "datasets", "host/datasets.sh.j2",
                    "create the shared and per-cluster ZFS datasets",
                    sources_of(model, model.clusters), order=20,
                    context={"datasets": datasets,
                             "shared": [d for d in datasets if d.kind == "shared"],
                             "archive": next(d for d in datasets
                                             if d.name == host.spec.datasets.pg_arch.name),
                             "archives": [d for d in datasets if d.kind == "archive"],
                             "encrypted": host.spec.encryption is not None,
                             "encryption": host.spec.encryption,
                             "lock_dir": SNAPSHOT_LOCK_DIR, "dropped_name": DROPPED_NAME}),
    ]
    if host.spec.managed_vip:
        files.append(plan_vip(model))
    # without exports too: it then takes out what an earlier bundle exported (the last NFS
    # cluster moved to archive.method standby, or retired), which nothing else would
    files.append(
        PlannedFile("host/40-nfs-exports.sh", "nfs-exports", "host/nfs-exports.sh.j2",
                    "export the WAL archive folders over NFS and pin the NFS ports" if exports else
                    "no cluster archives over NFS: take out the exports and NFS ports an "
                    "earlier bundle wrote",
                    sources_of(model, exported), order=40, context={"exports": exports},
                    uses_install_block=True))
    for cm in model.clusters:
        files += plan_cluster(model, cm)
    files += plan_senders(model)
    if model.replica_of:
        files += plan_replica(model)
    monitor = plan_monitor(model)
    for cm in model.retired:
        files += plan_retired(model, cm, monitor[0])
    files += monitor
    files += plan_status(model)
    return files


def plan_vip(model: HostModel) -> PlannedFile:
    host = model.host
    vip = host.spec.managed_vip
    return PlannedFile(
        "host/15-vip.sh", "vip", "host/vip.sh.j2",
        f"bring up virtual IP {vip.address}/{vip.prefix_length} on {vip.interface} and route "
        "connections to the primaries from it, at boot too (--remove undoes it)",
        sources_of(model, model.clusters), order=15,
        context={"vip": vip, "routes": model.vip_routes, "unit_name": VIP_UNIT})


MONITOR_INSTALLED = "/usr/local/sbin/pitr-check"
DROPPED_NAME = "dropped-wal"  # the archive helper's drop count, beside the cluster's arch/


def sources_of(model: HostModel, clusters) -> list[SpecFile]:
    """The specs a host-level file is made from: the host's, and those of the clusters whose
    values it renders (a file's header names only these, so that a change to one cluster's
    spec leaves every file that renders nothing of it byte for byte the same)."""
    return [model.host.source] + [cm.cluster.source for cm in clusters]


def plan_monitor(model: HostModel) -> list[PlannedFile]:

    monitored = []
    for cm in model.clusters:
        c, m = cm.spec, cm.spec.monitor
        monitored.append({"name": c.name, "args": [
            c.name, cm.cluster.dataset, cm.paths.pgdata, str(c.port), cm.wal_dir,
            cm.paths.archive, c.snapshots.prefix, m.archive_warn_minutes, m.archive_crit_minutes,
            m.restore_warn_minutes, m.restore_crit_minutes, cm.snapshot_warn_seconds,
            cm.snapshot_crit_seconds, cm.receiver_title, c.primary.archive_timeout],
            "drill": ([c.name, cm.drill.state_file, m.drill_max_age_days]
                      if cm.drill.enabled else None),
            "rto": [c.name, cm.drill.state_file if cm.drill.enabled else "",
                    "" if c.restore.rto_seconds is None else str(c.restore.rto_seconds),
                    cm.cluster.dataset, cm.paths.pgdata, cm.wal_dir,
                    c.snapshots.prefix, str(c.restore.replay_mb_per_second)]})
    for entry, cm in zip(monitored, model.clusters):
        entry["replay"] = replay_args(cm)
        entry["timeline"] = [cm.name, cp.timeline_state_file(cm.spec), cm.paths.log_dir,
                             "1" if cm.follows_partner else "0", cp.fork_hint(cm.spec)]
        entry["continuity"] = continuity_args(cm)
        entry["dropped"] = [cm.name, posixpath.join(cm.archive_export, DROPPED_NAME),
                            cm.cluster.dataset, cm.spec.snapshots.prefix]
    context = {"monitored": monitored, "monitor_installed": MONITOR_INSTALLED,
               "scrub": model.scrub, "replica": model.replica_of,
               "replica_state": (REPLICA_STATE_FILE.format(source=model.replica_of.source)
                                 if model.replica_of else ""),
               "redo_property": REDO_PROPERTY, "kept_property": KEPT_PROPERTY}
    check = PlannedFile("host/monitor.sh", "monitor", "host/monitor.sh.j2",
                        "Nagios/NRPE check of the pool and every standby (installed by "
                        "80-install-monitor.sh)" if not model.replica_of else
                        "Nagios/NRPE check of the pool and of the copy's last pull and lag "
                        "(installed by 80-install-monitor.sh)",
                        sources_of(model, model.clusters)
                        # a replica's check names the copies of the source's clusters
                        + ([model.host.source_host.source] + [c.source for c in model.host.copied]
                           if model.replica_of else []),
                        context=context)
    scrub = model.scrub
    cron = PlannedFile(
        "host/scrub.cron", "scrub-cron", "host/scrub.cron.j2",
        f"cron schedule of the pool's scrub ({scrub.schedule}, {scrub.time_zone}; installed "
        f"as {scrub.cron_file} by 80-install-monitor.sh)", [model.host.source],
        mode=CONFIG_MODE, context=context) if scrub.install_cron else None
    install = PlannedFile("host/80-install-monitor.sh", "monitor", "host/monitor-install.sh.j2",
                          f"install the check as {MONITOR_INSTALLED} with its sudo rule"
                          + (f", and the pool's scrub schedule as {scrub.cron_file}"
                             if cron else ""),
                          # installs the bundle's check, checked against SHA256SUMS when
                          # it runs: its text names the check's path, no cluster's value
                          [model.host.source], order=80,
                          context={**context, "check_file": check, "scrub_cron_file": cron})
    return [check, *([cron] if cron else []), install]


def plan_status(model: HostModel) -> list[PlannedFile]:
    """host/status.sh (pitr-status: the restorable range and the figures behind it, as text,
    JSON or Prometheus metrics; docs/status.md), its installer and, with
    monitor.prometheus_textfile_dir, the cron file that writes the metrics."""
    prom_dir = model.host.spec.monitor.prometheus_textfile_dir or ""
    status_clusters = [{"name": cm.name, "args": [
        cm.name, cm.spec.postgres.major_text, *continuity_args(cm), cm.spec.user,
        str(cm.spec.port), cm.replay.status_sql if cm.replay.hot_standby else "",
        cm.drill.state_file if cm.drill.enabled else ""]} for cm in model.clusters]
    # a replica host (no cluster of its own): per copied cluster the datasets it copies, in
    # the pull's order (a cluster's data, then its WAL archive)
    link = model.replica_of
    status_copies: list[dict] = []
    for d in link.datasets if link else ():
        if not status_copies or status_copies[-1]["cluster"] != d.cluster:
            status_copies.append({"cluster": d.cluster, "copies": []})
        status_copies[-1]["copies"].append([d.cluster, d.copy, d.kind, d.source, d.prefix])
    context = {"status_clusters": status_clusters, "status_installed": STATUS_INSTALLED,
               "prom_dir": prom_dir, "status_cron": STATUS_CRON,
               "status_schedule": STATUS_SCHEDULE,
               "redo_property": REDO_PROPERTY, "kept_property": KEPT_PROPERTY,
               "system_id_property": SYSTEM_ID_PROPERTY, "major_property": MAJOR_PROPERTY,
               "replica": link, "status_copies": status_copies,
               "replica_state": REPLICA_STATE_FILE.format(source=link.source) if link else ""}
    status = PlannedFile("host/status.sh", "status", "host/status.sh.j2",
                         "per cluster the restorable range, snapshots, archive, replay and last "
                         "drill, as text, JSON or Prometheus metrics; read-only (installed as "
                         f"{STATUS_INSTALLED} by 81-install-status.sh)" if not link else
                         f"per dataset copied from {link.source} the last pull and the snapshots "
                         "received here, as text, JSON or Prometheus metrics; read-only "
                         f"(installed as {STATUS_INSTALLED} by 81-install-status.sh)",
                         sources_of(model, model.clusters)
                         # a replica's report names the copies of the source's clusters
                         + ([model.host.source_host.source] + [c.source for c in model.host.copied]
                            if link else []),
                         context=context)
    cron = PlannedFile(
        "host/status.cron", "status", "host/status.cron.j2",
        f"cron schedule of pitr-status --prometheus ({STATUS_SCHEDULE}, into {prom_dir}; "
        f"installed as {STATUS_CRON} by 81-install-status.sh)", [model.host.source],
        mode=CONFIG_MODE, context=context) if prom_dir else None
    install = PlannedFile(
        "host/81-install-status.sh", "status", "host/status-install.sh.j2",
        f"install the status report as {STATUS_INSTALLED}"
        + (f", and its Prometheus metrics' cron file as {STATUS_CRON}" if cron else ""),
        # installs the bundle's status.sh, checked against SHA256SUMS when it runs: its
        # text names no cluster's value
        [model.host.source], order=81,
        context={**context, "status_file": status, "status_cron_file": cron})
    return [status, *([cron] if cron else []), install]


def replay_args(cm: ClusterModel) -> list[str]:
    """check_replay's arguments in host/monitor.sh (read from the model)."""
    r = cm.replay
    return [cm.name, cm.spec.user, cm.paths.pghome, cm.paths.pgdata, str(cm.spec.port),
            cm.wal_dir, "1" if r.hot_standby else "0", r.sql, r.paused_hint, str(r.log_bytes),
            str(r.lag_warn_bytes), str(r.lag_crit_bytes), str(r.delay_warn_seconds),
            str(r.delay_crit_seconds), BASEBACKUP_INCOMPLETE_MARK]


def plan_cluster(model: HostModel, cm: ClusterModel) -> list[PlannedFile]:

    cluster, c, paths = cm.cluster, cm.spec, cm.paths
    sources = [model.host.source, cluster.source]
    context = cluster_context(model, cm)
    base = f"clusters/{c.name}"

    def cluster_file(path, role, template, summary, **kw) -> PlannedFile:
        return PlannedFile(f"{base}/{path}", role, template, summary, sources, cluster=c.name,
                           context=context, **kw)

    primary_nodes = " and ".join(c.primary.nodes)
    snapshot_installed = cm.snapshot_installed
    retention_installed = cm.retention_installed
    snapshot = cluster_file("snapshot.sh", "snapshot", "cluster/snapshot.sh.j2",
                            f"snapshot of {cluster.dataset} and pruning (installed as "
                            f"{snapshot_installed} by 70-install-snapshot-cron.sh)",
                            syslog_tag=f"pitr-snapshot-{c.name}")
    retention = cluster_file("wal-retention.sh", "wal-retention", "cluster/wal-retention.sh.j2",
                             f"deletes the WAL no restore of the last {c.archive.pitr_window_days} "
                             f"day(s) can need (run after each snapshot run; installed as "
                             f"{retention_installed} by 70-install-snapshot-cron.sh)",
                             syslog_tag=f"pitr-wal-retention-{c.name}")
    # the cron installer installs the bundle's own files, checked against SHA256SUMS
    context["snapshot_file"] = snapshot
    context["retention_file"] = retention
    archive_files, sudo_files, standby_files = plan_archive_transport(cm, cluster_file, context)
    snapshot_cron = cluster_file("snapshot.cron", "snapshot-cron", "cluster/snapshot.cron.j2",
                                 f"cron schedule of the snapshots ({c.snapshots.schedule}, "
                                 f"{c.snapshots.time_zone})", mode=CONFIG_MODE)
    context["snapshot_cron_file"] = snapshot_cron
    restore = cluster_file("restore.sh", "restore", "cluster/restore.sh.j2",
                           "point-in-time restore from a snapshot clone (--target-time ..., "
                           "--cleanup NAME); run when needed", destructive=True)
    drill_files = plan_drill(cm, cluster_file, restore) if cm.drill.enabled else []
    return [
        cluster_file("30-user.sh", "user", "cluster/user.sh.j2",
                     f"create OS user {c.user}, its folders and .bash_profile", order=30),
        cluster_file("bash_profile", "bash-profile", "cluster/bash_profile.j2",
                     f".bash_profile of {c.user} (installed by 30-user.sh)", mode=CONFIG_MODE),
        install_step(cluster_file, c),
        cluster_file("primary/45-apply-on-primary.sh", "primary", "cluster/primary.sh.j2",
                     ("archive helper, boot mount of the archive, sudo rule; "
                      if cm.archive_method == "nfs" else "")
                     + "asks the running server, raises only what is too low, pg_hba lines, "
                     "replication role (PITR_REPLICATION_PASSWORD) and slot"
                     + ("; moves a node off the NFS path once the backup standby archives"
                        if cm.archive_method == "standby" else ""),
                     order=45, runs_on=f"primary {primary_nodes}",
                     uses_install_block=True),
        *archive_files,
        cluster_file("primary/pitr-archive.conf", "primary", "cluster/primary-archive.conf.j2",
                     "the primary's archive settings", mode=CONFIG_MODE),
        cluster_file("primary/pg_hba.conf.lines", "primary", "cluster/primary-hba.conf.j2",
                     "the primary's pg_hba.conf lines for replication", mode=CONFIG_MODE),
        *sudo_files,
        cluster_file("primary/check-primary.sh", "check-primary", "cluster/check-primary.sh.j2",
                     "Nagios/NRPE check run on the primary as its OS user: archive failures "
                     "and backlog, WAL kept by the replication slot, size of the WAL folder",
                     runs_on=f"primary {primary_nodes}"),
        cluster_file("50-basebackup.sh", "basebackup", "cluster/basebackup.sh.j2",
                     f"base backup of the primary into {paths.pgdata} (--force replaces it)",
                     order=50, destructive=True, context_force=True),
        cluster_file("60-standby.sh", "standby", "cluster/standby.sh.j2",
                     f"standby configuration ({cm.recovery_file}) and start", order=60),
        *standby_files,
        snapshot,
        retention,
        snapshot_cron,
        cluster_file("70-install-snapshot-cron.sh", "snapshot-cron", "cluster/snapshot-cron.sh.j2",
                     "install the snapshot and WAL retention scripts and their cron schedule",
                     order=70),
        restore,
        *drill_files,
    ]


def plan_archive_transport(cm: ClusterModel, cluster_file,
                           context: dict) -> tuple[list[PlannedFile], ...]:
    """The files that bring WAL into the archive. nfs: on the primary, the helper, the boot
    mount of the export (carried inside the primary step, rendered as the bundle's own copy)
    and the sudo rule. standby: only the helper, on the backup host (installed by the standby
    step, run by the standby's archive_command). Three lists, for their places in the MANIFEST:
    beside the primary step, after the pg_hba lines (the sudo rule), after the standby step."""
    if cm.archive_method == "standby":
        helper = cluster_file("pitr-archive-wal.sh", "standby", "cluster/archive-wal.sh.j2",
                              f"the standby's archive_command helper (installed as "
                              f"{cm.archive_helper.installed} by 60-standby.sh)")
        context["helper_file"] = helper
        return [], [], [helper]
    mount_script = cluster_file("primary/pitr-archive-mount.sh", "primary",
                                "cluster/archive-mount.sh.j2",
                                "boot-time mount of the archive (installed by "
                                "45-apply-on-primary.sh)")
    context["mount_file"] = mount_script
    return [
        cluster_file("primary/pitr-archive-wal.sh", "primary", "cluster/archive-wal.sh.j2",
                     "archive_command helper (installed by 45-apply-on-primary.sh)"),
        mount_script,
    ], [cluster_file("primary/sudoers", "primary", "cluster/primary-sudoers.j2",
                     "sudo rule for the archive helper", mode=CONFIG_MODE)], []


def plan_drill(cm: ClusterModel, cluster_file, restore: PlannedFile) -> list[PlannedFile]:
    """The restore drill (role drill), its cron file and installer (role drill-cron). The
    drill runs restore.sh as a user would; the paths of the clone it makes are restore.sh's."""

    c, d = cm.spec, cm.drill
    context = restore.context
    drill = {
        "name": DRILL_NAME,
        "clone": d.clone,
        "pgdata": d.pgdata,
        "log_dir": d.log_dir,
        "port": d.port,
        "state_file": d.state_file,
        "history_file": d.history_file,
        "installed": d.installed,
        "restore_installed": d.restore_installed,
        "replay_timestamp": pv.has("pg_last_xact_replay_timestamp", c.postgres.version),
        "amcheck": ("pg_amcheck" if pv.has("pg_amcheck", c.postgres.version)
                    else "extension" if pv.has("amcheck extension", c.postgres.version) else "none"),
        "data_checksums": pv.has("data checksums", c.postgres.version),
        "pg_checksums": pv.has("pg_checksums --check", c.postgres.version),
        "restore_file": restore,
    }
    context["drill"] = drill
    script = cluster_file("drill.sh", "drill", "cluster/drill.sh.j2",
                          f"restore drill ({c.drill.schedule}): restore.sh of the kept "
                          f"snapshots in turn (the newest to {c.drill.target_lag_minutes} min ago, "
                          "the oldest of the PITR window, one between), sanity query, amcheck "
                          "and pg_checksums where available, result in "
                          f"{drill['state_file']}, clone removed (installed as "
                          f"{drill['installed']} by 75-install-drill-cron.sh)",
                          syslog_tag=f"pitr-drill-{c.name}")
    cron = cluster_file("drill.cron", "drill-cron", "cluster/drill.cron.j2",
                        f"cron schedule of the restore drill ({c.drill.schedule}, "
                        f"{c.drill.time_zone})", mode=CONFIG_MODE)
    # the installer installs the bundle's own files, checked against SHA256SUMS
    drill["file"] = script
    drill["cron_file"] = cron
    return [
        script,
        cron,
        cluster_file("75-install-drill-cron.sh", "drill-cron", "cluster/drill-cron.sh.j2",
                     "install the restore drill, the restore script it runs, and its cron "
                     "schedule", order=75),
    ]


def installed_names(cm: ClusterModel) -> dict[str, str]:
    """What 70- and 75-install-*.sh install for a cluster (the retire script removes them)."""
    return {
        "snapshot_cron": f"/etc/cron.d/{cm.cron_name}",
        "drill_cron": f"/etc/cron.d/{cm.cron_name}-drill",
        "snapshot_script": cm.snapshot_installed,
        "retention_script": cm.retention_installed,
        "drill_script": cm.drill.installed,
        "restore_script": cm.drill.restore_installed,
    }


def plan_retired(model: HostModel, cm: ClusterModel,
                 monitor_check: PlannedFile) -> list[PlannedFile]:
    """A retired cluster's bundle: the primary-side removal (role primary-remove) and the
    backup host's retire script (role retire), which installs the bundle's own monitor check,
    now without this cluster, over an installed one that still checks it."""
    c, cluster = cm.spec, cm.cluster
    context = {
        "c": c, "cluster": cluster, "paths": cm.paths,
        "installed": installed_names(cm),
        "archive_export": cm.archive_export,
        "archive_dataset": cm.archive_dataset,
        "continuity_args": continuity_args(cm),
        "restore_parent": cm.restore_parent,
        "monitor_installed": MONITOR_INSTALLED,
        "monitor_file": monitor_check,
        "monitored": monitor_check.context["monitored"],
        # WAL archived this recently means the primary still archives here
        "wal_fresh_minutes": c.monitor.archive_warn_minutes,
        "primary_step": {
            "include_name": cp.INCLUDE_NAME,
            "psql_candidates": cp.psql_candidates(cluster),
            "slots": pv.has("replication slots", c.postgres.version),
        },
    }
    sources = [model.host.source, cluster.source]
    base = f"clusters/{c.name}"
    primary_nodes = " and ".join(c.primary.nodes)
    return [
        PlannedFile(f"{base}/primary/45-remove-from-primary.sh", "primary-remove",
                    "cluster/primary-remove.sh.j2",
                    "retired cluster: stop archiving to the backup host (the include and its "
                    "line in postgresql.conf, the pg_hba.conf lines), drop the replication "
                    "slot, remove the archive helper, boot mount and sudo rule",
                    sources, cluster=c.name, order=45, destructive=True,
                    runs_on=f"primary {primary_nodes}", context=context,
                    uses_install_block=False),
        PlannedFile(f"{base}/90-retire.sh", "retire", "cluster/retire.sh.j2",
                    "retired cluster: stop the standby, remove its cron files, installed "
                    "scripts and monitor lines; keep dataset and archive (--destroy-data "
                    "--yes destroys them: the archive's dataset, or its folder on a host "
                    "not migrated)",
                    sources, cluster=c.name, order=90, destructive=True, context=context,
                    context_force=True),
    ]


def install_step(cluster_file, c) -> PlannedFile:
    """The cluster's PostgreSQL: built from the primary's sources, or installed binaries
    checked against the primary's version and extensions."""
    if c.postgres.binaries:
        return cluster_file("35-check-binaries.sh", "binaries", "cluster/check-binaries.sh.j2",
                            f"check the installed PostgreSQL in {c.postgres.binaries}: version "
                            f"{c.postgres.version} and the primary's extensions", order=35)
    return cluster_file("35-build.sh", "build", "cluster/build.sh.j2",
                        f"build PostgreSQL {c.postgres.version} as the primary's build", order=35)
