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
from generator.schema import DEFAULT_ARCHIVE_PROPERTIES, ClusterSpec
from generator.validate import Cluster, Host

VIP_UNIT = "pitr-bundle-vip.service"
DRILL_NAME = "drill"  # the restore name of every drill: a leftover clone is found and removed


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    mountpoint: str
    properties: list[str]  # "name=value", sorted (templates join it to a list of words)
    cluster: Optional[str] = None


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
class ClusterModel:
    cluster: Cluster  # the validated spec, its source, dataset and mountpoint
    paths: ClusterPaths
    configure_args: tuple[str, ...]  # the primary's configure options for this host's build
    recovery_file: str  # what makes the standby one: recovery.conf or standby.signal
    standby_settings: dict[str, str]
    recovery_settings: dict[str, str]
    archive_export: str  # the archive folder exported to the primary
    wal_dir: str  # pg_wal or pg_xlog
    receiver_title: str  # the WAL receiver's process title
    restore_port: int
    restore_parent: str  # the dataset restore clones go under
    restore_recovery_file: str  # recovery.conf or recovery.signal
    snapshot_installed: str
    retention_installed: str
    cron_name: str
    drill: DrillModel

    @property
    def spec(self) -> ClusterSpec:
        return self.cluster.spec

    @property
    def name(self) -> str:
        return self.cluster.spec.name


@dataclass(frozen=True)
class HostModel:
    host: Host  # the validated host spec and its clusters
    vdev_args: tuple[str, ...]  # zpool create's vdev arguments
    layout_lines: tuple[str, ...]  # the layout the pool script compares an existing pool with
    datasets: tuple[DatasetPlan, ...]
    vip_routes: tuple[VipRoute, ...]
    clusters: tuple[ClusterModel, ...]
    retired: tuple[ClusterModel, ...]  # clusters given up: only their retire scripts are built

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


def datasets_of(host: Host) -> tuple[DatasetPlan, ...]:
    shared = host.spec.datasets
    defaults = {"pg_arch": DEFAULT_ARCHIVE_PROPERTIES}
    plans = [DatasetPlan(d.name, d.mountpoint,
                         [f"{k}={v}" for k, v in sorted({**defaults.get(key, {}),
                                                         **d.properties}.items())])
             for key, d in (("pg_home", shared.pg_home), ("pg_arch", shared.pg_arch),
                            ("pg_log", shared.pg_log))]
    plans += [DatasetPlan(c.dataset, c.mountpoint,
                          [f"{k}={v}" for k, v in sorted(c.spec.properties.items())],
                          c.spec.name)
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


def derive_cluster(host: Host, cluster: Cluster) -> ClusterModel:
    c = cluster.spec
    version = c.postgres.version
    paths = cp.paths_of(host.spec, cluster)
    restore_parent = c.restore.dataset_parent or f"{host.spec.pool.name}/restore"
    return ClusterModel(
        cluster=cluster, paths=paths,
        configure_args=tuple(cp.configure_for_backup_host(list(c.postgres.configure),
                                                          paths.prefix)),
        recovery_file="recovery.conf" if pv.has("recovery.conf", version) else "standby.signal",
        standby_settings=cp.standby_settings(cluster, paths),
        recovery_settings=cp.recovery_settings(cluster, paths),
        archive_export=archive_dir(host, c.name),
        wal_dir=cp.wal_dir(version), receiver_title=cp.receiver_title(version),
        restore_port=cp.restore_port(c), restore_parent=restore_parent,
        restore_recovery_file=("recovery.conf" if pv.has("recovery.conf", version)
                               else "recovery.signal"),
        snapshot_installed=f"/usr/local/sbin/pitr-snapshot-{c.name}",
        retention_installed=f"/usr/local/sbin/pitr-wal-retention-{c.name}",
        cron_name=f"pitr-bundle-{c.name}",
        drill=_drill(host, c, restore_parent))


def derive(host: Host) -> HostModel:
    """The model of a validated host: computed once, then only read."""
    vdev_args, layout_lines = pool_layout(host)
    return HostModel(host=host, vdev_args=tuple(vdev_args), layout_lines=tuple(layout_lines),
                     datasets=datasets_of(host), vip_routes=vip_routes(host),
                     clusters=tuple(derive_cluster(host, c) for c in host.clusters),
                     retired=tuple(derive_cluster(host, c) for c in host.retired))
