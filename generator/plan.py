"""Decide which files a host's bundle holds and what each is rendered from (pure: no I/O)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Optional

from generator.load import SpecFile
from generator.validate import Host

SCRIPT_MODE = 0o750
CONFIG_MODE = 0o640


@dataclass
class PlannedFile:
    path: str  # relative to the bundle root
    role: str  # MANIFEST role; tools and reviewers rely on these names
    template: str
    summary: str  # one line for the bundle README and the script header
    sources: list[SpecFile]  # the specs this file is made from (provenance)
    cluster: Optional[str] = None
    mode: int = SCRIPT_MODE
    order: Optional[int] = None  # position in the run order; None: not run directly
    destructive: bool = False
    runs_on: str = "backup host"
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def takes_force(self) -> bool:
        return bool(self.context.get("takes_force"))


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


@dataclass
class DatasetPlan:
    name: str
    mountpoint: str
    properties: list[str]  # "name=value", sorted
    cluster: Optional[str] = None


def datasets_of(host: Host) -> list[DatasetPlan]:
    shared = host.spec.datasets
    plans = [DatasetPlan(d.name, d.mountpoint, [f"{k}={v}" for k, v in sorted(d.properties.items())])
             for d in (shared.pg_home, shared.pg_arch, shared.pg_log)]
    plans += [DatasetPlan(c.dataset, c.mountpoint,
                          [f"{k}={v}" for k, v in sorted(c.spec.properties.items())], c.spec.name)
              for c in host.clusters]
    return plans


def archive_dir(host: Host, cluster_name: str) -> str:
    return f"{host.spec.datasets.pg_arch.mountpoint}/{cluster_name}"


def plan_host(host: Host) -> list[PlannedFile]:
    all_sources = [host.source] + [c.source for c in host.clusters]
    vdev_args, layout_lines = pool_layout(host)
    datasets = datasets_of(host)
    exports = [{"path": archive_dir(host, c.spec.name), "group": c.spec.user,
                "cluster": c.spec.name,
                "clients": c.spec.archive_clients} for c in host.clusters]
    files = [
        PlannedFile("host/10-pool.sh", "pool", "host/pool.sh.j2",
                    f"create ZFS pool {host.spec.pool.name} and set its root properties",
                    [host.source], order=10, destructive=True,
                    context={"vdev_args": vdev_args, "layout_lines": layout_lines,
                             "takes_force": True}),
        PlannedFile("host/20-datasets.sh", "datasets", "host/datasets.sh.j2",
                    "create the shared and per-cluster ZFS datasets", all_sources, order=20,
                    context={"datasets": datasets,
                             "shared": [d for d in datasets if d.cluster is None]}),
        PlannedFile("host/40-nfs-exports.sh", "nfs-exports", "host/nfs-exports.sh.j2",
                    "export the WAL archive folders over NFS and pin the NFS ports",
                    all_sources, order=40, context={"exports": exports}),
    ]
    return files
