"""Validate loaded specs: each against its schema, then the checks that span several specs."""

from __future__ import annotations

import difflib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from typing import Optional, get_args

from pydantic import BaseModel, ValidationError

from generator import pgversions as pv
from generator.errors import SpecError, SpecProblem
from generator.load import SpecFile, load_specs
from generator.retention import PERIODS, cover
from generator.schedule import longest_gap_minutes
from generator.schema import (DEFAULT_MAX_SLOT_WAL_KEEP_SIZE, MODELS, PATTERN_WORDS, ClusterSpec,
                              HostSpec)

@dataclass
class Cluster:
    spec: ClusterSpec
    source: SpecFile
    dataset: str
    mountpoint: str


@dataclass
class Host:
    spec: HostSpec
    source: SpecFile
    clusters: list[Cluster] = field(default_factory=list)  # the clusters backed up
    # clusters marked retired: only their retire scripts are built, and nothing else of the
    # bundle (datasets, exports, VIP routes, monitor) knows them any more
    retired: list[Cluster] = field(default_factory=list)
    # a replica host: the host whose clusters it copies (replica_of.host), and those clusters;
    # a source host: the replicas that copy it
    source_host: Optional["Host"] = None
    copied: list[Cluster] = field(default_factory=list)
    replicas: list["Host"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


def _schema_problems(source: SpecFile, exc: ValidationError) -> list[SpecProblem]:
    model = MODELS[source.kind]
    return [source.problem(tuple(error["loc"]), _in_words(error, model)) for error in exc.errors()]


# pydantic's error types, said as a DBA reads them (the value shown where it helps)
_WORDS = {
    "missing": "required key is missing",
    "greater_than_equal": "must be at least {ge}, not {shown}",
    "greater_than": "must be more than {gt}, not {shown}",
    "less_than_equal": "must be at most {le}, not {shown}",
    "less_than": "must be less than {lt}, not {shown}",
    "int_parsing": "must be a whole number, not {shown}",
    "int_type": "must be a whole number, not {shown}",
    "int_from_float": "must be a whole number, not {shown}",
    "float_parsing": "must be a number, not {shown}",
    "bool_parsing": "must be true or false, not {shown}",
    "bool_type": "must be true or false, not {shown}",
    "string_type": "must be text, not {shown}",
    "list_type": "must be a list (lines starting with '- ', or [a, b]), not {shown}",
    "dict_type": "must be a mapping of keys to values (key: value lines), not {shown}",
    "model_type": "must be a mapping of keys to values (key: value lines), not {shown}",
    "model_attributes_type": "must be a mapping of keys to values (key: value lines), not {shown}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "takes at most {max_length} item(s)",
    "string_too_short": "must be at least {min_length} character(s) long",
    "string_too_long": "must be at most {max_length} characters long ({shown} is longer)",
    "literal_error": "must be {expected}, not {shown}",
    "enum": "must be {expected}, not {shown}",
}


def _in_words(error: dict, model: type) -> str:
    """One pydantic error as a message: its type in plain words, a pattern as what it allows
    (schema.PATTERN_WORDS, never the regex), an unknown key with the nearest known one."""
    kind, ctx = error["type"], error.get("ctx") or {}
    shown = _shown(error.get("input"))
    if kind == "extra_forbidden":
        return _unknown_key(str(error["loc"][-1]), _keys_at(model, error["loc"][:-1]))
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(ctx.get("pattern"), "a value of another form")
        return f"{shown} is not allowed here: it must be {words}"
    if kind in _WORDS:
        return _WORDS[kind].format(shown=shown, **{k: v for k, v in ctx.items() if k != "shown"})
    message = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _keys_at(model: type, location: tuple) -> list[str]:
    """The keys the schema knows where `location` points (a model's fields), or none."""
    current = model
    for part in location:
        if isinstance(part, int):
            continue  # a list's item: the model the list holds
        field = current.model_fields.get(part)
        current = field and _model_in(field.annotation)
        if current is None:
            return []
    return list(current.model_fields)


def _model_in(annotation) -> type | None:
    """The model an annotation holds: itself, or inside Optional, Annotated, list or dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in get_args(annotation):
        found = _model_in(inner)
        if found is not None:
            return found
    return None


def _unknown_key(key: str, known: list[str]) -> str:
    return "unknown key" + _nearest(key, known, "known keys here")


def _nearest(given: str, known, what: str) -> str:
    """ (did you mean X?), or the known ones when none is near."""
    close = difflib.get_close_matches(given, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    if known:
        return f" ({what}: {', '.join(sorted(known))})"
    return ""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Registry:
    """Finds values claimed twice (ports, datasets, ...) and reports both places."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        self.claims: dict[tuple[str, str], tuple[SpecFile, tuple, str]] = {}

    def claim(self, what: str, value, source: SpecFile, at: tuple, implied: str = "") -> None:
        """`implied`: the claim comes from a default the spec does not spell out (it is named
        in the message, either side of the collision)."""
        key = (what, str(value))
        if key in self.claims:
            first_source, first_at, first_implied = self.claims[key]
            where = f"{first_source.display}:{first_source.line_of(first_at)}"
            message = f"{what} {value} is already used at {where}"
            if first_implied:
                message += f" ({first_implied} there)"
            if implied:
                message = f"{implied}: {message}"
            self.problems.append(source.problem(at, message))
        else:
            self.claims[key] = (source, at, implied)


def _check_host(host: Host, problems: list[SpecProblem]) -> None:
    spec, src = host.spec, host.source
    pool = spec.pool
    taken = _Registry(problems)
    device_places: list[tuple[str, tuple]] = []
    for v, vdev in enumerate(pool.vdevs):
        device_places += [(d, ("pool", "vdevs", v, "disks", i)) for i, d in enumerate(vdev.disks)]
    if pool.log:
        device_places += [(d, ("pool", "log", "devices", i)) for i, d in enumerate(pool.log.devices)]
    device_places += [(d, ("pool", "cache", i)) for i, d in enumerate(pool.cache)]
    device_places += [(d, ("pool", "spares", i)) for i, d in enumerate(pool.spares)]
    for device, at in device_places:
        taken.claim("device", device, src, at)
        if pool.device_paths == "by-id" and not device.startswith("/dev/disk/by-id/"):
            problems.append(src.problem(at, f"{device} is not a /dev/disk/by-id/ path (sdX names "
                                            "change between boots); set pool.device_paths: any "
                                            "only for test rigs"))
    for key in ("pg_home", "pg_arch", "pg_log"):
        dataset = getattr(spec.datasets, key)
        _check_in_pool(pool.name, dataset.name, src, ("datasets", key, "name"), problems)
        taken.claim("dataset", dataset.name, src, ("datasets", key, "name"))
        taken.claim("mountpoint", dataset.mountpoint, src, ("datasets", key, "mountpoint"))
    for cluster in host.retired:
        # what stays on the host until its retire script runs (and after it without
        # --destroy-data): the dataset, its mountpoint, the OS user owning them. Its ports
        # are free: the retire script stops the standby and no clone is made any more
        c, csrc = cluster.spec, cluster.source
        _check_in_pool(pool.name, cluster.dataset, csrc, ("dataset",), problems)
        taken.claim("dataset", cluster.dataset, csrc, ("dataset",),
                    implied=f"retired cluster {c.name}")
        taken.claim("mountpoint", cluster.mountpoint, csrc, ("mountpoint",),
                    implied=f"retired cluster {c.name}")
        taken.claim("OS user", c.user, csrc, ("os_user",), implied=f"retired cluster {c.name}")
        _claim_archive(taken, spec, cluster)
    for cluster in host.clusters:
        c, csrc = cluster.spec, cluster.source
        _check_in_pool(pool.name, cluster.dataset, csrc, ("dataset",), problems)
        taken.claim("dataset", cluster.dataset, csrc, ("dataset",))
        taken.claim("mountpoint", cluster.mountpoint, csrc, ("mountpoint",))
        taken.claim("port", c.port, csrc, ("port",))
        if c.restore.port is None:  # port + 1000 may be another cluster's port or restore port
            taken.claim("port", c.port + 1000, csrc, ("port",),
                        implied="the default restore port (port + 1000; set restore.port)")
        else:
            taken.claim("port", c.restore.port, csrc, ("restore", "port"))
        taken.claim("OS user", c.user, csrc, ("os_user",))
        _claim_archive(taken, spec, cluster)
        _check_cluster(cluster, problems)
        if spec.managed_vip:
            _check_routable(spec, cluster, problems)
    _check_textfile_dir(host, problems)
    _check_key_dir(host, problems)


def _check_key_dir(host: Host, problems: list[SpecProblem]) -> None:
    """The key files may not lie in a dataset of the pool: an encrypted one cannot hold the key
    that opens it, and none of them is mounted before the pool is imported."""
    enc = host.spec.encryption
    if enc is None or enc.key != "file":
        return
    datasets = host.spec.datasets
    places = [getattr(datasets, key).mountpoint for key in ("pg_home", "pg_arch", "pg_log")]
    places += [c.mountpoint for c in host.clusters]
    for mountpoint in places:
        if enc.key_dir == mountpoint or enc.key_dir.startswith(mountpoint.rstrip("/") + "/"):
            problems.append(host.source.problem(("encryption", "key_dir"), (
                f"{enc.key_dir} lies in {mountpoint}, a dataset of pool {host.spec.pool.name}: "
                "the keys must be on the host's own disk (default /etc/pitr-bundle/keys)")))
            return


def _check_textfile_dir(host: Host, problems: list[SpecProblem]) -> None:
    """monitor.prometheus_textfile_dir is node_exporter's folder: not inside a dataset of this
    host (the archive's continuity scan reads every file of its day folders, a cluster's
    mountpoint is its standby's, restores clone into theirs), where pitr-status would write
    its metrics among what the bundle's scripts own."""
    folder = host.spec.monitor.prometheus_textfile_dir
    if folder is None:
        return
    datasets = host.spec.datasets
    places = [(f"datasets.{key}", getattr(datasets, key).mountpoint)
              for key in ("pg_home", "pg_arch", "pg_log")]
    places += [(f"cluster {c.spec.name}'s mountpoint", c.mountpoint) for c in host.clusters]
    places += [(f"cluster {c.spec.name}'s restore.mountpoint_root", c.spec.restore.mountpoint_root)
               for c in host.clusters]
    for what, mountpoint in places:
        if folder == mountpoint or folder.startswith(mountpoint.rstrip("/") + "/"):
            problems.append(host.source.problem(
                ("monitor", "prometheus_textfile_dir"),
                f"{folder} lies in {mountpoint} ({what}): give node_exporter's own folder "
                "(Debian: /var/lib/prometheus/node-exporter)"))
            return


def _link_replica(replica: Host, hosts: dict[str, Host], problems: list[SpecProblem]) -> None:
    """A replica names its source; the source then knows it (its bundle installs the send
    command the replica's key is fixed to). A replica backs up no cluster of its own."""
    of, src = replica.spec.replica_of, replica.source
    for cluster in replica.clusters + replica.retired:
        problems.append(cluster.source.problem(("host",), (
            f"host {replica.name} is a replica of {of.host}: it backs up no cluster of its own "
            f"(name {of.host} here, and the replica copies the cluster from it)")))
    source = hosts.get(of.host)
    if source is None or source is replica:
        problems.append(src.problem(("replica_of", "host"), (
            f"no other host spec named {of.host}"
            + (_nearest(of.host, [h for h in hosts if h != replica.name], "hosts") or ""))))
        return
    if source.spec.replica_of:
        problems.append(src.problem(("replica_of", "host"), (
            f"{of.host} is itself a replica (of {source.spec.replica_of.host}): copy from the "
            "source host")))
        return
    active = {c.spec.name: c for c in source.clusters}
    for i, name in enumerate(of.clusters):
        if name not in active:
            problems.append(src.problem(("replica_of", "clusters", i), (
                f"{of.host} has no active cluster {name}"
                + (_nearest(name, active, "clusters") or ""))))
    root = of.root or f"{replica.spec.pool.name}/{of.host}"
    _check_in_pool(replica.spec.pool.name, root, src, ("replica_of", "root"), problems)
    for key in ("pg_home", "pg_arch", "pg_log"):
        shared = getattr(replica.spec.datasets, key).name
        if root == shared or root.startswith(shared + "/") or shared.startswith(root + "/"):
            problems.append(src.problem(("replica_of", "root"), (
                f"{root} and datasets.{key} ({shared}) would hold each other: the copies are "
                "received under a dataset of their own")))
    replica.source_host = source
    replica.copied = [c for c in source.clusters if not of.clusters or c.spec.name in of.clusters]
    source.replicas.append(replica)


def _claim_archive(taken: _Registry, spec, cluster: Cluster) -> None:
    """A cluster's WAL archive is a dataset of its own, <pg_arch dataset>/<name> mounted at
    <pg_arch mountpoint>/<name> (host/20-datasets.sh): no other dataset or mountpoint may be
    that one."""
    name, arch = cluster.spec.name, spec.datasets.pg_arch
    implied = f"the archive dataset of cluster {name} (<datasets.pg_arch>/{name})"
    taken.claim("dataset", f"{arch.name}/{name}", cluster.source, ("name",), implied=implied)
    taken.claim("mountpoint", f"{arch.mountpoint}/{name}", cluster.source, ("name",),
                implied=implied)


def _check_cluster(cluster: Cluster, problems: list[SpecProblem]) -> None:

    c, src = cluster.spec, cluster.source
    timeout = c.primary.archive_timeout
    if timeout and c.monitor.archive_warn_minutes * 60 <= timeout:
        problems.append(src.problem(("monitor", "archive_warn_minutes"), (
            f"{c.monitor.archive_warn_minutes} min is not above archive_timeout ({timeout} s): "
            "an idle primary archives only that often, and the alarm would ring between")))
    if c.drill.enabled and timeout and c.drill.target_lag_minutes * 60 <= timeout:
        problems.append(src.problem(("drill", "target_lag_minutes"), (
            f"{c.drill.target_lag_minutes} min is not above archive_timeout ({timeout} s): "
            "the drill's target may not be archived yet")))
    if not pv.known(c.postgres.version):
        problems.append(src.problem(("postgres", "version"), (
            f"PostgreSQL {c.postgres.version}: no known recovery rules for major "
            f"{c.postgres.major_text} (known majors: {', '.join(pv.KNOWN_MAJORS)})")))
    if c.replication.slot and pv.known(c.postgres.version) and not pv.has(
            "replication slots", c.postgres.version):
        problems.append(src.problem(("replication", "slot"), (
            f"PostgreSQL {c.postgres.version} has no replication slots (they exist from 9.4): "
            "remove replication.slot")))

    tls = c.replication.tls
    if tls and tls.mode != "require" and pv.known(c.postgres.version) and not pv.has(
            "sslmode verify-full", c.postgres.version):
        problems.append(src.problem(("replication", "tls", "mode"), (
            f"PostgreSQL {c.postgres.version}'s libpq has no sslmode {tls.mode} (from 8.4): "
            "say require")))

    _check_archive_method(cluster, problems)
    _check_postgres_install(cluster, problems)
    _check_rto(cluster, problems)
    _check_pitr_window(cluster, problems)
    if c.standby.hot_standby:
        for name in pv.HOT_STANDBY_FLOORS:
            ours, theirs = c.standby.settings.get(name), c.primary.settings.get(name)
            if ours and theirs and ours.isdigit() and theirs.isdigit() and int(ours) < int(theirs):
                problems.append(src.problem(("standby", "settings", name), (
                    f"{ours} is below the primary's {theirs}: a hot standby refuses to start "
                    "(raise it, or set standby.hot_standby: false)")))


def _check_rto(cluster: Cluster, problems: list[SpecProblem]) -> None:
    """A restore just before the next snapshot replays the WAL of the longest wait between two
    snapshots: at the stated WAL rate and a conservative replay rate, it must fit the RTO."""

    c, src = cluster.spec, cluster.source
    rto, rate = c.restore.rto_seconds, c.archive.wal_mb_per_hour
    if rto is None or rate is None:
        return
    gap = longest_gap_minutes(c.snapshots.schedule)
    wal_mb = rate * gap / 60
    replay = wal_mb / c.restore.replay_mb_per_second
    if replay > rto:
        fits = rto * c.restore.replay_mb_per_second / rate * 60
        problems.append(src.problem(("restore", "rto_seconds"), (
            f"{rto} s cannot be met: snapshots.schedule ({c.snapshots.schedule!r}) waits up to "
            f"{gap} min between snapshots, in which the primary writes {wal_mb:.0f} MB of WAL "
            f"(archive.wal_mb_per_hour: {rate}); replaying it at "
            f"{c.restore.replay_mb_per_second} MB/s (restore.replay_mb_per_second) takes "
            f"{replay:.0f} s before the restore's fixed costs. Take a snapshot at least every "
            f"{max(int(fits), 1)} min, or raise the RTO")))


def _days(minutes: int) -> str:
    return f"{minutes / 1440:.1f}".removesuffix(".0") + " days"


def _check_pitr_window(cluster: Cluster, problems: list[SpecProblem]) -> None:
    """A restore to any time of the last pitr_window_days needs a snapshot at least that old
    at every moment: the keep counts, at the schedule's pace, must keep one (the schedule's
    time zone taken as UTC, where the retention counts its periods)."""
    c, src = cluster.spec, cluster.source
    window, keep = c.archive.pitr_window_days, c.snapshots.keep
    counts = {p: getattr(keep, p) for p in PERIODS}
    found = cover(c.snapshots.schedule, counts, window)
    if found.minutes >= window * 1440:
        return
    kept = ", ".join(f"{n} {p}" for p, n in counts.items() if n) or "none"
    message = (f"a {window}-day window is more than the snapshots kept can serve: with "
               f"snapshots.schedule {c.snapshots.schedule!r} and snapshots.keep ({kept}), the "
               f"oldest snapshot kept is only {_days(found.minutes)} old just after some "
               "snapshots, and a restore needs a snapshot taken before its target. ")
    # the usual periods first; three choices are enough to pick from
    options = [f"{p} to {found.enough[p]}" for p in ("daily", "weekly", "monthly", "hourly", "yearly")
               if found.enough.get(p, 0) > counts[p]][:3]
    if options:
        message += (f"Raise snapshots.keep.{options[0]}" + "".join(f", or {o}" for o in options[1:])
                    + ", or lower archive.pitr_window_days")
    else:
        message += "No keep count can serve it at this schedule: lower archive.pitr_window_days"
    problems.append(src.problem(("archive", "pitr_window_days"), message))


def _check_primary_servers(clusters: list[Cluster], problems: list[SpecProblem]) -> None:
    """Clusters whose primaries share a server (a primary or HA partner address), on any
    backup host, must not share its archive helper or mount point: the second one would
    archive into the first one's folder. Nor can two specs back up one PostgreSQL server.
    A retired cluster keeps these claims: its primary-side removal script takes away the
    include, helper and mount it names, which another spec's primary step would have put."""
    taken = _Registry(problems)
    for cluster in clusters:
        c, src = cluster.spec, cluster.source
        for node in dict.fromkeys(c.primary.nodes):
            taken.claim("archive helper", f"{c.archive_helper} on {node}", src,
                        ("primary", "archive_script"))
            taken.claim("archive mount point", f"{c.archive_mount} on {node}", src,
                        ("primary", "archive_mount"))
            taken.claim("PostgreSQL server", f"{node}:{c.primary.port}", src,
                        ("primary", "port"))


def _check_postgres_install(cluster: Cluster, problems: list[SpecProblem]) -> None:
    """Either installed binaries (postgres.binaries) or a source build, never a mix."""
    pg, src = cluster.spec.postgres, cluster.source
    if pg.binaries is None:
        for i, ext in enumerate(pg.extensions):
            if ext.file is None or ext.sha256 is None:
                problems.append(src.problem(("postgres", "extensions", i), (
                    f"extension {ext.name}: file and sha256 of its source tarball are needed to "
                    "build it (or set postgres.binaries to use an installed PostgreSQL)")))
        return
    at = ("postgres", "binaries")
    if not pg.binaries.endswith("/bin"):
        problems.append(src.problem(at, (
            f"{pg.binaries}: give the bin folder of the installation (e.g. "
            "/usr/lib/postgresql/15/bin): its parent is the cluster's PGHOME")))
    for key, given in (("source", pg.source is not None), ("configure", bool(pg.configure))):
        if given:
            problems.append(src.problem(("postgres", key), (
                f"postgres.{key} is for a build from source, but postgres.binaries names "
                "installed binaries: remove one of them")))
    for i, ext in enumerate(pg.extensions):
        for key in ("file", "sha256", "make_args"):
            if getattr(ext, key):
                problems.append(src.problem(("postgres", "extensions", i, key), (
                    f"extension {ext.name}: {key} is for a build from source, but "
                    "postgres.binaries names installed binaries (give only the name)")))


def _check_routable(host: HostSpec, cluster: Cluster, problems: list[SpecProblem]) -> None:
    """host/15-vip.sh routes each primary and HA partner from the virtual IP: each must be an
    IPv4 address (a route names no host name) that is not the backup host's own."""
    vip = host.managed_vip
    for key in ("address", "ha_partner"):
        node = getattr(cluster.spec.primary, key)
        if node is None:
            continue
        at = ("primary", key)
        try:
            ipaddress.IPv4Address(node)
        except ValueError:
            problems.append(cluster.source.problem(at, (
                f"{node} must be an IPv4 address: the host's virtual_ip has an interface, so "
                "host/15-vip.sh routes it from the virtual IP (a route takes no host name)")))
            continue
        if node in (vip.address, host.address):
            problems.append(cluster.source.problem(at, (
                f"{node} is the backup host's own address: its connections cannot leave from "
                f"the virtual IP {vip.address}")))

# how long a fast shutdown of the primary may wait for its archiver with the backup host gone
# (primary.archive_call_timeout warns past it)
SHUTDOWN_WAIT_SECONDS = 60


def _check_archive_method(cluster: Cluster, problems: list[SpecProblem]) -> None:
    """archive.method standby needs a standby that can archive (9.5+) and a slot: without
    one, a standby that falls behind finds the WAL it missed gone from the primary, and no
    archive holds it."""
    c, src = cluster.spec, cluster.source
    if c.archive.method != "standby" or not pv.known(c.postgres.version):
        return
    if not pv.has("archive_mode always", c.postgres.version):
        problems.append(src.problem(("archive", "method"), (
            f"standby needs PostgreSQL 9.5 or later (archive_mode = always); "
            f"{c.postgres.version} archives over NFS: set archive.method: nfs")))
    elif not c.replication.slot:
        problems.append(src.problem(("archive", "method"), (
            "standby needs replication.slot: without one the primary may recycle WAL the "
            "standby has not received, and then no archive holds it; add replication.slot "
            f"(e.g. slot: pitr_{c.name})")))


def warnings_of(hosts: list[Host]) -> list[SpecProblem]:
    """What a valid spec should still change: printed, never failing a build."""

    found = []
    for host in hosts:
        for cluster in host.clusters:  # a retired cluster's settings no longer matter
            c, src = cluster.spec, cluster.source
            if (c.replication.slot and c.primary.max_slot_wal_keep_size is None
                    and pv.has("max_slot_wal_keep_size", c.postgres.version)):
                found.append(src.problem(("primary", "max_slot_wal_keep_size"), (
                    f"warning: not set: the primary gets {DEFAULT_MAX_SLOT_WAL_KEEP_SIZE}; set it "
                    f"below the free space of the primary's WAL disk (slot {c.replication.slot} "
                    "keeps WAL there while the standby is away)")))
            if (c.archive.method is None and not c.replication.slot
                    and pv.has("archive_mode always", c.postgres.version)):
                found.append(src.problem(("replication", "slot"), (
                    "warning: not set: WAL reaches the archive over NFS (the primary mounts the "
                    "backup host, its root writes there); with a slot (e.g. slot: "
                    f"pitr_{c.name}) the backup standby archives what it streams, the default "
                    "from 9.5 (archive.method, docs/wal-transport.md); archive.method: nfs "
                    "keeps NFS and silences this")))
            if c.primary.ha_partner and not pv.has("libpq multi-host", c.postgres.version):
                found.append(src.problem(("primary", "ha_partner"), single_host_warning(c)))
            bound = c.primary.archive_call_timeout
            if 6 * bound + 4 > SHUTDOWN_WAIT_SECONDS:
                found.append(src.problem(("primary", "archive_call_timeout"), (
                    f"warning: {bound} s: with the backup host gone, a fast shutdown of the "
                    f"primary may wait about {6 * bound + 4} s for the archiver (the 3 tries "
                    f"of its cycle under way, then 3 of its last cycle, 1 s apart); at most "
                    f"{(SHUTDOWN_WAIT_SECONDS - 4) // 6} s keeps it within "
                    f"{SHUTDOWN_WAIT_SECONDS} s")))
    return sorted(found, key=lambda p: (p.file, p.line or 0, p.field))


def single_host_warning(c) -> str:
    """Before 10 libpq takes one host: the standby cannot follow a failover by itself."""
    return (f"warning: PostgreSQL {c.postgres.major_text}'s libpq connects to one host: the "
            f"standby streams from primary.address {c.primary.address} only. After a failover to "
            f"{c.primary.ha_partner} it replays the archive alone until 60-standby.sh runs again "
            "with the partner as primary.address; a VIP or DNS name that follows the primary, as "
            "primary.address, avoids that")


def _check_in_pool(pool: str, dataset: str, src: SpecFile, at: tuple,
                   problems: list[SpecProblem]) -> None:
    if not dataset.startswith(pool + "/"):
        problems.append(src.problem(at, f"dataset {dataset} is not in pool {pool}"))


def validate(specs: list[SpecFile]) -> list[Host]:
    """All problems of all specs at once, as one SpecError; else the hosts with their clusters."""
    problems: list[SpecProblem] = []
    hosts: dict[str, Host] = {}
    clusters: list[Cluster] = []
    names = _Registry(problems)
    broken_hosts: set = set()  # hosts whose spec failed: their clusters need no second error
    for source in specs:
        try:
            model = MODELS[source.kind].model_validate(source.data)
        except ValidationError as exc:
            problems += _schema_problems(source, exc)
            if source.kind == "host":
                broken_hosts.add(source.data.get("name"))
            continue
        if isinstance(model, HostSpec):
            names.claim("host name", model.name, source, ("name",))
            hosts.setdefault(model.name, Host(model, source))
        else:
            names.claim("cluster name", model.name, source, ("name",))
            clusters.append(Cluster(model, source, dataset=model.dataset or "",
                                    mountpoint=model.mountpoint or f"/{model.name}"))
    by_host: dict[str, list[Cluster]] = defaultdict(list)
    for cluster in clusters:
        host = hosts.get(cluster.spec.host)
        if host is None and cluster.spec.host in broken_hosts:
            continue
        if host is None:
            backup_hosts = [name for name, h in hosts.items() if not h.spec.replica_of]
            problems.append(cluster.source.problem(("host",), (
                f"no host spec named {cluster.spec.host}"
                + (_nearest(cluster.spec.host, backup_hosts, "hosts") or " (hosts: none)"))))
            continue
        cluster.dataset = cluster.dataset or f"{host.spec.pool.name}/{cluster.spec.name}"
        by_host[host.name].append(cluster)
    for host in hosts.values():
        ordered = sorted(by_host[host.name], key=lambda c: c.spec.name)
        host.clusters = [c for c in ordered if not c.spec.retired]
        host.retired = [c for c in ordered if c.spec.retired]
        _check_host(host, problems)
    for host in hosts.values():
        # a source whose spec failed already has its error: its replica needs no second one
        if host.spec.replica_of and host.spec.replica_of.host not in broken_hosts:
            _link_replica(host, hosts, problems)
    _check_primary_servers(clusters, problems)
    if problems:
        raise SpecError(problems)
    return [hosts[name] for name in sorted(hosts)]


def load_and_validate(specs_dir: Path) -> list[Host]:
    problems: list[SpecProblem] = []
    if not specs_dir.is_dir():
        raise SpecError([SpecProblem(str(specs_dir), None, "", "no such folder")])
    specs = load_specs(specs_dir, problems)
    if not specs and not problems:
        problems.append(SpecProblem(str(specs_dir), None, "",
                                    "no specs found (expected hosts/*.yaml and clusters/*.yaml)"))
    try:
        hosts = validate(specs)
    except SpecError as exc:
        problems += exc.problems
        raise SpecError(problems) from None
    if problems:
        raise SpecError(problems)
    if not hosts:
        raise SpecError([SpecProblem(str(specs_dir), None, "", "no host spec in hosts/")])
    return hosts
