"""The derived model: every value of a host's bundle that is computed from the validated specs
(paths, ports, settings, installed names, per cluster and for the host), computed once by
`derive` right after validate and then only read: plan puts it into the templates' contexts,
bundle into the MANIFEST facts and the README. One place computes a value, so a script and the
facts the suites and tools read of it can never disagree. Pure: values in, values out."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Optional

from generator import cluster_plan as cp
from generator import pgversions as pv
from generator.cluster_plan import ClusterPaths
from generator.schedule import longest_gap_minutes
from generator.schema import DEFAULT_ARCHIVE_PROPERTIES, ClusterSpec, size_bytes
from generator.validate import Cluster, Host

VIP_UNIT = "pitr-bundle-vip.service"
DRILL_NAME = "drill"  # the restore name of every drill: a leftover clone is found and removed
# left in PGDATA by 50-basebackup.sh while a base backup is written into it (its
# INCOMPLETE_MARK): the monitor reports such a standby CRITICAL
BASEBACKUP_INCOMPLETE_MARK = ".pitr-bundle-basebackup-incomplete"
SCRUB_CRON = "/etc/cron.d/pitr-bundle-scrub"
STATUS_INSTALLED = "/usr/local/sbin/pitr-status"
# with monitor.prometheus_textfile_dir: pitr-status --prometheus on this schedule
STATUS_CRON = "/etc/cron.d/pitr-bundle-status"
STATUS_SCHEDULE = "*/5 * * * *"
# the lock a cluster's snapshot and WAL retention runs share; the archive migration of
# host/20-datasets.sh holds it too (no snapshot, no deletion while the archive moves)
SNAPSHOT_LOCK_DIR = "/run/lock"


def snapshot_lock_file(cluster_name: str) -> str:
    return f"{SNAPSHOT_LOCK_DIR}/pitr-snapshot-{cluster_name}.lock"


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    mountpoint: str
    properties: list[str]  # "name=value", sorted (templates join it to a list of words)
    cluster: Optional[str] = None
    # shared (pg_home, pg_arch, pg_log), cluster (its standby's), archive (a cluster's WAL
    # archive: <pg_arch dataset>/<cluster> at <pg_arch mountpoint>/<cluster>)
    kind: str = "shared"
    # an archive's writers over NFS (archive.method nfs: the primary and HA partner, that
    # the archive migration holds off with exportfs -u); none for archive.method standby
    nfs_clients: tuple[str, ...] = ()
    # what the primary and HA partner run after that archive moved (their NFS handle is stale)
    remount: str = ""
    # encryption (host spec encryption): given only when the dataset is created (ZFS cannot
    # change them later), and the key file it needs then (key: file; "" for a prompt)
    create_properties: tuple[str, ...] = ()
    key_file: str = ""

    @property
    def script_properties(self) -> list[str]:
        """What 20-datasets.sh is given: the properties it keeps in line, then those it gives
        only when it creates the dataset, marked create:."""
        return self.properties + [f"create:{p}" for p in self.create_properties]


@dataclass(frozen=True)
class VipRoute:
    """An address the backup host connects to (a primary or HA partner), with its clusters."""
    address: str
    clusters: tuple[str, ...]


@dataclass(frozen=True)
class DrillModel:
    enabled: bool  # the spec's drill.enabled: off, there is no drill script, the facts stay
    port: int  # the first of ten ports the drill tries
    state_file: str  # key=value result of the last drill, read by the monitor
    history_file: str
    clone: str
    pgdata: str
    log_dir: str
    installed: str
    restore_installed: str


@dataclass(frozen=True)
class ReplayModel:
    """What host/monitor.sh's replay check needs of a cluster's version and spec."""
    hot_standby: bool  # SQL answers; off: only pg_controldata, WAL files, process titles
    # one row `in recovery|paused|receive LSN|replay LSN|seconds since the last replayed
    # transaction` (empty fields where the version has no such function)
    sql: str
    paused_hint: str  # how to resume, and why 14+ may have paused by itself
    # WAL segments in a 4 GB log are this / the segment size (before 9.3 one fewer: the
    # last one of each log is never used)
    log_bytes: int
    lag_warn_bytes: int
    lag_crit_bytes: int
    delay_warn_seconds: int
    delay_crit_seconds: int
    # host/status.sh's one row `in recovery|receive LSN|replay LSN|epoch of the last replayed
    # transaction` (empty fields where the version has no such function)
    status_sql: str


@dataclass(frozen=True)
class ArchiveHelperModel:
    """The archive_command helper (templates/cluster/archive-wal.sh.j2): on the primary with
    archive.method nfs (into the NFS mount), on the backup host with standby (run by the
    standby's archive_command, as its OS user, into the local archive)."""
    installed: str  # where it is installed
    runs_on: str  # for its header: "its primary" or "the backup host"
    mount: str  # the folder holding arch/ (and dropped-wal)
    requires_mount: bool  # refuses unless `mount` is a mount point (the NFS export)
    queue_max_bytes: int  # primary.archive_queue_max (0: off; the standby's slot holds WAL)
    dropped_file: str  # where it counts the WAL it dropped


@dataclass(frozen=True)
class ClusterModel:
    cluster: Cluster  # the validated spec, its source, dataset and mountpoint
    paths: ClusterPaths
    configure_args: tuple[str, ...]  # the primary's configure options for this host's build
    recovery_file: str  # what makes the standby one: recovery.conf or standby.signal
    standby_settings: dict[str, str]
    recovery_settings: dict[str, str]
    archive_export: str  # the archive folder exported to the primary
    archive_dataset: str  # the dataset mounted there, snapshotted with the cluster's
    wal_dir: str  # pg_wal or pg_xlog
    receiver_title: str  # the WAL receiver's process title
    restore_port: int
    restore_parent: str  # the dataset restore clones go under
    restore_recovery_file: str  # recovery.conf or recovery.signal
    snapshot_installed: str
    retention_installed: str
    cron_name: str
    drill: DrillModel
    snapshot_warn_seconds: int  # the newest snapshot's age: WARNING (from the schedule)
    snapshot_crit_seconds: int
    replay: ReplayModel
    # the standby's conninfo lists the HA partner too (libpq multi-host, 10+)
    follows_partner: bool
    archive_method: str  # nfs or standby (the spec's archive.method, resolved)
    archive_helper: ArchiveHelperModel

    @property
    def spec(self) -> ClusterSpec:
        return self.cluster.spec

    @property
    def name(self) -> str:
        return self.cluster.spec.name


@dataclass(frozen=True)
class ScrubModel:
    schedule: str
    time_zone: str
    install_cron: bool
    cron_file: str  # where the installer puts the bundle's host/scrub.cron
    warn_seconds: int  # the last scrub's age: WARNING


@dataclass(frozen=True)
class CopiedDataset:
    """One dataset a replica copies: a cluster's dataset or its WAL archive's."""
    cluster: str
    kind: str  # "cluster" or "archive"
    source: str  # on the source host: zp1/pg168121, zp1/pg_arch/pg168121
    copy: str  # on the replica: <root>/pg168121, <root>/pg_arch/pg168121
    prefix: str  # the cluster's snapshot prefix: only snapshots named <prefix><UTC time> travel


@dataclass(frozen=True)
class ReplicaLink:
    """A source and one of its replicas, as both bundles see it (the same values on each side:
    the replica's pull and the source's send command cannot disagree)."""
    source: str  # host names
    replica: str
    address: str  # what the replica connects to
    ssh_port: int
    user: str  # the unprivileged user on the source
    privilege: str  # "delegation" or "sudo"
    send_command: str  # installed on the source; the user's key can run nothing else
    hold_tag: str  # the zfs hold that keeps the last sent snapshot of each dataset
    root: str  # on the replica, never mounted
    datasets: tuple[CopiedDataset, ...]
    schedule: str
    time_zone: str
    mailto: str
    keep: dict
    lag_warn_minutes: int
    lag_crit_minutes: int


@dataclass(frozen=True)
class HostModel:
    host: Host  # the validated host spec and its clusters
    vdev_args: tuple[str, ...]  # zpool create's vdev arguments
    layout_lines: tuple[str, ...]  # the layout the pool script compares an existing pool with
    datasets: tuple[DatasetPlan, ...]
    vip_routes: tuple[VipRoute, ...]
    clusters: tuple[ClusterModel, ...]
    retired: tuple[ClusterModel, ...]  # clusters given up: only their retire scripts are built
    scrub: ScrubModel
    replica_of: Optional[ReplicaLink] = None  # a replica host: what it pulls, from where
    replicas: tuple[ReplicaLink, ...] = ()  # a source host: who pulls from it

    @property
    def name(self) -> str:
        return self.host.name


def pool_layout(host: Host) -> tuple[list[str], list[str]]:
    """zpool create vdev arguments, and the layout lines the pool script compares with."""
    pool = host.spec.pool
    args: list[str] = []
    lines: list[str] = []
    for vdev in pool.vdevs:
        args += [vdev.type, *vdev.disks]
        lines.append(" ".join(["data", vdev.type] + [posixpath.basename(d) for d in vdev.disks]))
    if pool.log:
        args.append("log")
        if pool.log.type == "mirror":
            args += ["mirror", *pool.log.devices]
            lines.append(" ".join(["log", "mirror"] + [posixpath.basename(d)
                                                     for d in pool.log.devices]))
        else:
            args += pool.log.devices
            lines += [f"log - {posixpath.basename(d)}" for d in pool.log.devices]
    if pool.cache:
        args += ["cache", *pool.cache]
        lines += [f"cache - {posixpath.basename(d)}" for d in pool.cache]
    if pool.spares:
        args += ["spare", *pool.spares]
        lines += [f"spare - {posixpath.basename(d)}" for d in pool.spares]
    return args, lines


ENCRYPTION = "aes-256-gcm"


def encryption_of(host: Host, cluster: str) -> dict:
    """The encryption of a cluster's datasets (its own and its archive's), as DatasetPlan
    fields: the creation-only properties, keylocation (settable later) among the properties,
    and the key file. Nothing without encryption in the host spec."""
    enc = host.spec.encryption
    if enc is None:
        return {"create": (), "location": [], "key_file": ""}
    if enc.key == "prompt":
        return {"create": (f"encryption={ENCRYPTION}", "keyformat=passphrase"),
                "location": ["keylocation=prompt"], "key_file": ""}
    key_file = f"{enc.key_dir.rstrip('/')}/{cluster}.key"
    return {"create": (f"encryption={ENCRYPTION}", "keyformat=raw"),
            "location": [f"keylocation=file://{key_file}"], "key_file": key_file}


def datasets_of(host: Host) -> tuple[DatasetPlan, ...]:
    shared = host.spec.datasets
    defaults = {"pg_arch": DEFAULT_ARCHIVE_PROPERTIES}
    plans = [DatasetPlan(d.name, d.mountpoint,
                         [f"{k}={v}" for k, v in sorted({**defaults.get(key, {}),
                                                         **d.properties}.items())])
             for key, d in (("pg_home", shared.pg_home), ("pg_arch", shared.pg_arch),
                            ("pg_log", shared.pg_log))]
    keys = {c.spec.name: encryption_of(host, c.spec.name) for c in host.clusters}
    plans += [DatasetPlan(c.dataset, c.mountpoint,
                          [f"{k}={v}" for k, v in sorted(c.spec.properties.items())]
                          + keys[c.spec.name]["location"],
                          c.spec.name, kind="cluster",
                          create_properties=keys[c.spec.name]["create"],
                          key_file=keys[c.spec.name]["key_file"])
              for c in host.clusters]
    # each cluster's archive, a dataset of its own (so that it can be snapshotted with the
    # cluster's and sent to a replica), hardened as the archive dataset it sits in
    arch = next(p for p in plans if p.name == shared.pg_arch.name)
    plans += [DatasetPlan(archive_dataset(host, c.spec.name), archive_dir(host, c.spec.name),
                          arch.properties + keys[c.spec.name]["location"], c.spec.name,
                          kind="archive", create_properties=keys[c.spec.name]["create"],
                          key_file=keys[c.spec.name]["key_file"],
                          nfs_clients=(tuple(c.spec.archive_clients)
                                       if c.spec.archive_method == "nfs" else ()),
                          remount=(f"umount -l {c.spec.archive_mount} && "
                                   f"/usr/local/sbin/pitr-archive-mount-{c.spec.name}"
                                   if c.spec.archive_method == "nfs" else ""))
              for c in host.clusters]
    return tuple(plans)


def vip_routes(host: Host) -> tuple[VipRoute, ...]:
    """The addresses the backup host connects to (each cluster's primary and HA partner), once
    each, with the clusters that use them: the VIP script routes each from the virtual IP."""
    nodes: dict[str, list[str]] = {}
    for cluster in host.clusters:
        for address in cluster.spec.primary.nodes:
            nodes.setdefault(address, []).append(cluster.spec.name)
    return tuple(VipRoute(a, tuple(names)) for a, names in nodes.items())


def archive_dir(host: Host, cluster_name: str) -> str:
    return f"{host.spec.datasets.pg_arch.mountpoint}/{cluster_name}"


def archive_dataset(host: Host, cluster_name: str) -> str:
    """The dataset of a cluster's WAL archive, mounted at archive_dir."""
    return f"{host.spec.datasets.pg_arch.name}/{cluster_name}"


SEND_COMMAND = "/usr/local/sbin/pitr-send-{replica}"
REPLICA_HOLD_TAG = "pitr-replica-{replica}"


def replica_link(replica: Host) -> ReplicaLink:
    """The link of a validated replica host to its source (validate set source_host)."""
    of, source = replica.spec.replica_of, replica.source_host
    root = of.root or f"{replica.spec.pool.name}/{source.name}"
    datasets = []
    for c in replica.copied:
        pool = source.spec.pool.name
        for kind, name in (("cluster", c.dataset), ("archive", archive_dataset(source, c.spec.name))):
            datasets.append(CopiedDataset(c.spec.name, kind, name, f"{root}/{name[len(pool) + 1:]}",
                                          c.spec.snapshots.prefix))
    return ReplicaLink(
        source=source.name, replica=replica.name, address=of.address or source.spec.address,
        ssh_port=of.ssh_port, user=of.send_user, privilege=of.send_privilege,
        send_command=SEND_COMMAND.format(replica=replica.name),
        hold_tag=REPLICA_HOLD_TAG.format(replica=replica.name), root=root,
        datasets=tuple(datasets), schedule=of.schedule, time_zone=of.time_zone, mailto=of.mailto,
        keep=of.keep.model_dump(), lag_warn_minutes=of.lag_warn_minutes,
        lag_crit_minutes=of.lag_crit_minutes)


def _drill(host: Host, c: ClusterSpec, restore_parent: str) -> DrillModel:
    """The drill runs restore.sh as a user would: its clone's paths are restore.sh's."""
    mountpoint = f"{c.restore.mountpoint_root}/{c.name}-{DRILL_NAME}"
    return DrillModel(
        enabled=c.drill.enabled, port=cp.drill_port(c), state_file=cp.drill_state_file(c),
        history_file=f"{c.drill.state_dir}/drill-{c.name}.log",
        clone=f"{restore_parent}/{c.name}-{DRILL_NAME}", pgdata=f"{mountpoint}/pg_root",
        log_dir=f"{host.spec.datasets.pg_log.mountpoint}/{c.name}-restore-{DRILL_NAME}",
        installed=f"/usr/local/sbin/pitr-drill-{c.name}",
        restore_installed=f"/usr/local/sbin/pitr-restore-{c.name}")


def schedule_wait_minutes(schedule: str, time_zone: str) -> int:
    """The longest wait between two runs of a cron schedule, in minutes: an hour more in a
    time zone other than UTC, where a change of daylight saving time lengthens one wait."""
    return longest_gap_minutes(schedule) + (0 if time_zone == "UTC" else 60)


def snapshot_thresholds(c: ClusterSpec) -> tuple[int, int]:
    """The newest snapshot's age (seconds) for WARNING and CRITICAL: the spec's hours, or from
    snapshots.schedule. WARNING at twice the longest wait plus 15 min: a single run missed
    (a reboot at the wrong minute) is tolerated, the next one missed too is a pattern; the
    15 min cover the run's own wait for its lock and pre-hook before it names its snapshot.
    CRITICAL one more wait later, and never sooner than a day after the warning: a lapse
    that outlasted yet another run, while a short schedule (hourly: 2 h 15 min, then
    26 h 15 min) leaves a day to act on the warning before it pages. Daily: 48 h 15 min and
    72 h 15 min."""
    m = c.monitor
    if m.snapshot_warn_hours is not None and m.snapshot_crit_hours is not None:
        return m.snapshot_warn_hours * 3600, m.snapshot_crit_hours * 3600
    wait = schedule_wait_minutes(c.snapshots.schedule, c.snapshots.time_zone)
    warn = 2 * wait + 15
    return warn * 60, (warn + max(wait, 1440)) * 60


def scrub_warn_seconds(schedule: str, time_zone: str) -> int:
    """The last scrub's age for WARNING: 1.5 times the schedule's longest wait. A scrub's age
    counts from its end; the half wait is room for a scrub of a large pool (days) and a run
    missed by a few days, while a monthly schedule that stopped is found within 47 days."""
    return schedule_wait_minutes(schedule, time_zone) * 90


def sender_sql(version: str) -> str:
    """The node the standby's WAL receiver streams from ('' when none or unknown): its
    sender_host:sender_port from 11; before, the host list of its conninfo (9.6, 10: with an
    HA partner both nodes, libpq does not say which it reached)."""
    if pv.has("pg_stat_wal_receiver.sender_host", version):
        found = "(select sender_host || ':' || sender_port from pg_stat_wal_receiver)"
    elif pv.has("pg_stat_wal_receiver", version):
        found = "(select substring(conninfo from 'host=([^ ]*)') from pg_stat_wal_receiver)"
    else:
        return "''"
    return f"coalesce({found}, '')"


def replay_model(c: ClusterSpec) -> ReplayModel:
    """The replay check's SQL and figures for the cluster's version."""
    version, m = c.postgres.version, c.monitor
    new = pv.has("pg_last_wal_receive_lsn", version)
    receive = "pg_last_wal_receive_lsn()" if new else "pg_last_xlog_receive_location()"
    replay = "pg_last_wal_replay_lsn()" if new else "pg_last_xlog_replay_location()"
    paused = ("pg_is_wal_replay_paused()" if new else "pg_is_xlog_replay_paused()"
              if pv.has("replay pause", version) else "false")
    since = ("coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp())"
             "::bigint::text, '')" if pv.has("pg_last_xact_replay_timestamp", version) else "''")
    # pg_is_*_replay_paused() errors outside recovery: only asked during it
    sql = (f"select pg_is_in_recovery(), case when pg_is_in_recovery() then {paused} end, "
           f"coalesce({receive}::text, ''), coalesce({replay}::text, ''), {since}, "
           f"{sender_sql(version)}")
    resume = "pg_wal_replay_resume()" if new else "pg_xlog_replay_resume()"
    hint = f"select {resume} resumes it"
    if pv.has("pauses on insufficient parameter settings", version):
        hint += ("; since 14 a standby pauses by itself when the primary raised one of "
                 + ", ".join(pv.HOT_STANDBY_FLOORS) + " above its own: see its log, raise "
                 "the setting and restart it")
    xact = ("coalesce(extract(epoch from pg_last_xact_replay_timestamp())::text, '')"
            if pv.has("pg_last_xact_replay_timestamp", version) else "''")
    status_sql = (f"select pg_is_in_recovery(), coalesce({receive}::text, ''), "
                  f"coalesce({replay}::text, ''), {xact}")
    return ReplayModel(
        hot_standby=c.standby.hot_standby, sql=sql, paused_hint=hint, status_sql=status_sql,
        log_bytes=(1 << 32) - (1 if pv.has("last segment of each log skipped", version) else 0),
        lag_warn_bytes=m.replay_lag_warn_mb << 20, lag_crit_bytes=m.replay_lag_crit_mb << 20,
        delay_warn_seconds=m.replay_delay_warn_minutes * 60,
        delay_crit_seconds=m.replay_delay_crit_minutes * 60)


def archive_helper(host: Host, c: ClusterSpec) -> ArchiveHelperModel:
    """Where the archive helper runs and what it writes into, for the cluster's method."""
    if c.archive_method == "standby":
        # local folders, written by the standby's own user: no mount, nothing to drop (the
        # slot keeps on the primary what the standby has not received)
        return ArchiveHelperModel(
            installed=cp.standby_archive_helper(c), runs_on="the backup host",
            mount=archive_dir(host, c.name), requires_mount=False, queue_max_bytes=0,
            dropped_file=f"{archive_dir(host, c.name)}/{c.name}-dropped-wal")
    return ArchiveHelperModel(
        installed=c.archive_helper, runs_on="its primary", mount=c.archive_mount,
        requires_mount=c.primary.archive_requires_mount,
        queue_max_bytes=(size_bytes(c.primary.archive_queue_max)
                         if c.primary.archive_queue_max else 0),
        dropped_file=f"{c.primary.archive_state_dir}/{c.name}-dropped-wal")


def derive_cluster(host: Host, cluster: Cluster) -> ClusterModel:
    c = cluster.spec
    version = c.postgres.version
    paths = cp.paths_of(host.spec, cluster)
    restore_parent = c.restore.dataset_parent or f"{host.spec.pool.name}/restore"
    snapshot_warn, snapshot_crit = snapshot_thresholds(c)
    return ClusterModel(
        cluster=cluster, paths=paths,
        configure_args=tuple(cp.configure_for_backup_host(list(c.postgres.configure),
                                                          paths.prefix)),
        recovery_file="recovery.conf" if pv.has("recovery.conf", version) else "standby.signal",
        standby_settings=cp.standby_settings(cluster, paths),
        recovery_settings=cp.recovery_settings(cluster, paths),
        archive_export=archive_dir(host, c.name),
        archive_dataset=archive_dataset(host, c.name),
        wal_dir=cp.wal_dir(version), receiver_title=cp.receiver_title(version),
        restore_port=cp.restore_port(c), restore_parent=restore_parent,
        restore_recovery_file=("recovery.conf" if pv.has("recovery.conf", version)
                               else "recovery.signal"),
        snapshot_installed=f"/usr/local/sbin/pitr-snapshot-{c.name}",
        retention_installed=f"/usr/local/sbin/pitr-wal-retention-{c.name}",
        cron_name=f"pitr-bundle-{c.name}",
        drill=_drill(host, c, restore_parent),
        snapshot_warn_seconds=snapshot_warn, snapshot_crit_seconds=snapshot_crit,
        replay=replay_model(c), follows_partner=cp.standby_follows_partner(cluster),
        archive_method=c.archive_method, archive_helper=archive_helper(host, c))


def derive(host: Host) -> HostModel:
    """The model of a validated host: computed once, then only read."""
    vdev_args, layout_lines = pool_layout(host)
    return HostModel(host=host, vdev_args=tuple(vdev_args), layout_lines=tuple(layout_lines),
                     datasets=datasets_of(host), vip_routes=vip_routes(host),
                     clusters=tuple(derive_cluster(host, c) for c in host.clusters),
                     retired=tuple(derive_cluster(host, c) for c in host.retired),
                     scrub=ScrubModel(
                         schedule=host.spec.scrub.schedule, time_zone=host.spec.scrub.time_zone,
                         install_cron=host.spec.scrub.install_cron, cron_file=SCRUB_CRON,
                         warn_seconds=scrub_warn_seconds(host.spec.scrub.schedule,
                                                         host.spec.scrub.time_zone)),
                     replica_of=replica_link(host) if host.source_host else None,
                     replicas=tuple(replica_link(r) for r in host.replicas))
