"""`pitr-bundle init`: a first set of specs for one's own clusters, from a few flags and each
primary's `pg_config` output (or its `SHOW server_version`), commented so that the next edit is
obvious. What it writes must validate: it is validated in a temporary folder first, and
nothing is written when it does not (or when a spec of that name is already there)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from generator import pgversions as pv
from generator.errors import SpecError, SpecProblem, UsageError
from generator.pgconfig import PgConfig, parse_pg_config
from generator.pgpackages import Packaged, import_section, recognise
from generator.schema import ClusterName, HostName, PoolName
from generator.validate import load_and_validate

# "16.4 (Debian 16.4-1.pgdg120+1)", "9.0.17", "17.2 (Ubuntu 17.2-1.pgdg22.04+1)"
_SERVER_VERSION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+){1,2})\s*(\(.*\))?\s*$")
# where packaged primaries keep their data, by the packages' family
_PACKAGED_DATA_DIR = {"/usr/lib/postgresql/{major}/bin": "/var/lib/postgresql/{major}/main",
                      "/usr/pgsql-{major}/bin": "/var/lib/pgsql/{major}/data"}


def q(value: str) -> str:
    """A YAML scalar that holds exactly `value` (a JSON string is YAML): a value with a newline
    or a `: ` cannot add keys; validate then judges the value itself."""
    return json.dumps(value)


def _name(kind, value: str, flag: str) -> str:
    """A name that becomes a file name: checked before anything is written, even in scratch."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        raise UsageError(f"{flag}: {value!r}: {exc.errors()[0]['msg']}") from None


@dataclass
class PrimaryAnswer:
    """One primary as the flags describe it."""
    name: str
    address: str
    port: int = 5432
    pg: PgConfig | None = None  # from pg_config output or SHOW server_version
    data_dir: str | None = None


def server_version(text: str) -> PgConfig:
    """`SHOW server_version`'s answer as a PgConfig without configure options: enough to tell
    a Debian or Ubuntu package (its suffix) and the release."""
    match = _SERVER_VERSION.match(text.strip().splitlines()[-1] if text.strip() else "")
    if not match:
        raise UsageError(f"not a server_version: {text.strip()[:80]!r} (e.g. '16.4 (Debian 16.4-1.pgdg120+1)')")
    return PgConfig((), match[1], "server_version", None, match[2] or "")


def _postgres_section(answer: PrimaryAnswer) -> tuple[str, str | None]:
    """The postgres: section and the data folder the packages use (None: not known)."""
    found = recognise(answer.pg)
    section = import_section(answer.pg)
    if isinstance(found, Packaged):
        return section, _PACKAGED_DATA_DIR.get(found.family.bin_folder, "").format(major=found.major) or None
    if not answer.pg.configure_args:
        raise UsageError(
            f"{answer.name}: {answer.pg.version} {answer.pg.version_suffix} does not say "
            "how PostgreSQL was installed: give the primary's pg_config output "
            f"(--pg-config {answer.name}=FILE) instead")
    return section, None


def host_yaml(name: str, address: str, pool: str, vdev: str, disks: list[str],
              log: list[str], spares: list[str]) -> str:
    lines = [
        "# yaml-language-server: $schema=../../schema/host.schema.json",
        f"# The backup host {name}, written by pitr-bundle init: check the disks (by-id paths,",
        "# `ls -l /dev/disk/by-id/` on the host), then pitr-bundle validate. Every field:",
        "# docs/spec-reference.md.",
        f"name: {name}",
        f"address: {q(address)}",
        "pool:",
        f"  name: {pool}",
        "  ashift: 12            # 4 KiB sectors; cannot change after zpool create",
        "  vdevs:",
        f"    - type: {vdev}",
        "      disks:",
        *[f"        - {q(d)}" for d in disks],
    ]
    if log:
        lines += ["  log:", f"    type: {'mirror' if len(log) > 1 else 'single'}", "    devices:",
                  *[f"      - {q(d)}" for d in log]]
    if spares:
        lines += ["  spares:", *[f"    - {q(d)}" for d in spares]]
    lines += [
        "  properties: {compression: lz4, atime: \"off\", canmount: \"off\", dedup: \"off\"}",
        "datasets:",
        f"  pg_home: {{name: {pool}/pg_home, mountpoint: /pg_home}}   # PostgreSQL builds",
        f"  pg_arch: {{name: {pool}/pg_arch, mountpoint: /pg_arch}}   # the WAL archives",
        f"  pg_log: {{name: {pool}/pg_log, mountpoint: /pg_log}}      # the standbys' logs",
    ]
    return "\n".join(lines) + "\n"


def cluster_yaml(answer: PrimaryAnswer, host: str, pool: str, port: int) -> str:
    section, packaged_dir = _postgres_section(answer)
    data_dir = answer.data_dir or packaged_dir
    if not data_dir:
        raise UsageError(f"{answer.name}: give the primary's data folder: --data-dir {answer.name}=PATH "
                         "(SHOW data_directory on the primary)")
    if pv.has("replication slots", answer.pg.version):
        replication = [
            "  # the slot keeps on the primary the WAL the standby has not received yet, and lets the",
            "  # standby archive it (no NFS mount on the primary; docs/wal-transport.md)",
            f"  slot: {host.replace('-', '_')}_{answer.name}"]
        slot_size = ["  # the most WAL the slot may keep on the primary while the standby is away: set it",
                     "  # below the free space of the primary's WAL disk (validate warns until it is set)",
                     "  # max_slot_wal_keep_size: 20GB"]
    else:
        replication = [f"  # PostgreSQL {answer.pg.version} has no replication slots: the primary archives WAL into",
                       "  # the backup host's archive over NFS (docs/wal-transport.md)"]
        slot_size = []
    return "\n".join([
        "# yaml-language-server: $schema=../../schema/cluster.schema.json",
        f"# Cluster {answer.name}: its primary at {answer.address}, backed up on {host} by a streaming",
        "# standby, written by pitr-bundle init. Review the standby's settings below, then",
        "# pitr-bundle validate. Every field: docs/spec-reference.md.",
        f"name: {answer.name}",
        f"host: {host}",
        f"port: {port}                 # the backup standby's port on {host}",
        section.rstrip("\n"),
        "primary:",
        f"  address: {q(answer.address)}",
        f"  port: {answer.port}",
        f"  data_dir: {q(data_dir)}",
        *slot_size,
        "replication:",
        "  user: replicator     # created by the primary step (45-apply-on-primary.sh) if missing",
        *replication,
        "standby:",
        "  hot_standby: true    # read-only queries: then these must be >= the primary's",
        "  settings: {shared_buffers: 512MB, max_connections: 200}",
        "snapshots:",
        "  schedule: \"1 * * * *\" # hourly at :01 (UTC)",
        "  keep: {hourly: 24, daily: 7, weekly: 4, monthly: 6}",
    ]) + "\n"


def _parse_pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise UsageError(f"{what}: NAME=VALUE expected, got {value!r}")
        pairs[name] = rest
    return pairs


def answers(args) -> list[PrimaryAnswer]:
    """The primaries the flags name, each with what says how its PostgreSQL was installed."""
    clusters = _parse_pairs(args.cluster, "--cluster")
    configs = _parse_pairs(args.pg_config, "--pg-config")
    versions = _parse_pairs(args.server_version, "--server-version")
    data_dirs = _parse_pairs(args.data_dir, "--data-dir")
    for flag, names in (("--pg-config", configs), ("--server-version", versions), ("--data-dir", data_dirs)):
        unknown = set(names) - set(clusters)
        if unknown:
            raise UsageError(f"{flag} names {', '.join(sorted(unknown))}, which no --cluster gives")
    result = []
    for name, where in clusters.items():
        _name(ClusterName, name, "--cluster")
        address, _, port = where.partition(":")
        if port and not port.isdigit():
            raise UsageError(f"--cluster {name}: ADDRESS[:PORT] expected, got {where!r}")
        answer = PrimaryAnswer(name, address, int(port or 5432), data_dir=data_dirs.get(name))
        if name in configs:
            path = Path(configs[name])
            if not path.is_file():
                raise UsageError(f"--pg-config {name}: no such file {path}")
            answer.pg = parse_pg_config(path.read_text(encoding="utf-8", errors="replace"))
        elif name in versions:
            answer.pg = server_version(versions[name])
        else:
            raise UsageError(f"{name}: give its pg_config output (--pg-config {name}=FILE) or its "
                             f"SHOW server_version (--server-version {name}='16.4 (Debian ...)')")
        result.append(answer)
    if not result:
        raise UsageError("name at least one primary: --cluster NAME=ADDRESS[:PORT]")
    return result


def write_specs(args) -> list[Path]:
    """Validate the new specs in a temporary folder, then move them into args.folder."""
    target = Path(args.folder)
    _name(HostName, args.host, "--host")
    _name(PoolName, args.pool, "--pool")
    disks = [d for d in args.disks.split(",") if d]
    files = {f"hosts/{args.host}.yaml": host_yaml(
        args.host, args.address, args.pool, args.vdev, disks,
        [d for d in (args.log or "").split(",") if d], [d for d in (args.spare or "").split(",") if d])}
    for index, answer in enumerate(answers(args)):
        files[f"clusters/{answer.name}.yaml"] = cluster_yaml(answer, args.host, args.pool,
                                                             args.first_port + index)
    there = [name for name in files if (target / name).exists()]
    if there:
        raise UsageError(f"{target}: already has {', '.join(there)}: nothing written")
    with tempfile.TemporaryDirectory() as scratch:
        # beside the specs already there: a port or dataset the new ones would take is refused
        for kind in ("hosts", "clusters"):
            if (target / kind).is_dir():
                shutil.copytree(target / kind, Path(scratch) / kind)
        for name, text in files.items():
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / name).write_text(text)
        try:
            load_and_validate(Path(scratch))
        except SpecError as exc:  # named as the files will be, and nothing written
            raise SpecError([SpecProblem(p.file.replace(scratch, str(target), 1), p.line, p.field,
                                         p.message) for p in exc.problems]) from None
        written = []
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(scratch) / name, target / name)
            written.append(target / name)
    return written
