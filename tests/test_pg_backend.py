"""The real-PostgreSQL test backend itself (tests/pg_backend.py): every pinned major initdbs,
starts on loopback, answers psql and stops; servers never outlive the process that started them.

Missing binaries FAIL these tests (they do not skip): run `bash tests/backends/install-postgres.sh`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pg_backend import (
    INSTALL_SCRIPT,
    MAJORS,
    BackendMissing,
    PgServer,
    available_majors,
    client_bin,
    client_env,
    ensure_os_user,
    server_bin,
)

pytestmark = pytest.mark.postgres

PORT_BASE = 26000


def require_server(major: int) -> Path:
    """The server bin dir; a missing install fails the test (CI installs them), never skips it."""
    try:
        return server_bin(major)
    except BackendMissing as missing:
        message = str(missing)
    pytest.fail(message, pytrace=False)


def require_client() -> Path:
    try:
        return client_bin()
    except BackendMissing as missing:
        message = str(missing)
    pytest.fail(message, pytrace=False)


def test_client_tools_run():
    bin_dir = require_client()
    for tool in ("psql", "pg_basebackup", "pg_config"):
        result = subprocess.run([bin_dir / tool, "--version"], capture_output=True, text=True,
                                env=client_env())
        assert result.returncode == 0, f"{tool}: {result.stderr}"
        assert " 18." in result.stdout and "PostgreSQL" in result.stdout, result.stdout


@pytest.mark.parametrize("major", MAJORS)
def test_server_initdb_start_query_stop(major: int, tmp_path: Path):
    require_server(major)
    require_client()
    user = ensure_os_user()
    server = PgServer(major, tmp_path / f"pg{major}", PORT_BASE + major, user)
    try:
        server.initdb()
        server.start()
        assert server.running
        version = server.psql("select version()")
        assert version.startswith(f"PostgreSQL {major}."), version
        assert server.psql("select current_setting('server_version_num')::int / 10000") == str(major)
        assert Path(server.psql("show data_directory")) == tmp_path / f"pg{major}"
        assert server.psql("show listen_addresses") == "127.0.0.1"
        socket_dir = server.psql("show unix_socket_directories")
        assert Path(socket_dir).is_relative_to(tmp_path), socket_dir
        # several statements, one line each; errors raise with psql's stderr
        assert server.psql("create table t(i int); insert into t values (1),(2); "
                           "select count(*) from t; select 'x'") == "2\nx"
        with pytest.raises(RuntimeError, match="no_such_table"):
            server.psql("select * from no_such_table")
        postmaster_owner = (server.data_dir / "postmaster.pid").stat().st_uid
        assert postmaster_owner != 0
    finally:
        server.stop()
    assert not server.running
    server.stop()  # a second stop is a no-op


def test_servers_do_not_outlive_a_killed_process(tmp_path: Path):
    """A test process killed with SIGKILL (no atexit, no finally) still gets its server stopped."""
    major = max(MAJORS)
    require_server(major)
    require_client()
    data_dir = tmp_path / "orphan"
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pg_backend import PgServer, ensure_os_user
        server = PgServer({major}, {str(data_dir)!r}, {PORT_BASE + 99}, ensure_os_user())
        server.initdb()
        server.start()
        print(server.psql("select 1"), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert result.stdout.strip() == "1"
    pid_file = data_dir / "postmaster.pid"
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_file.exists():  # do not leave it running whatever happens
        PgServer(major, data_dir, PORT_BASE + 99).stop(mode="immediate", check=False)
        pytest.fail("the server outlived the killed process that started it")


def test_missing_binaries_name_the_install_script(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PITR_PG_CACHE", str(tmp_path / "empty"))
    with pytest.raises(BackendMissing, match=INSTALL_SCRIPT):
        server_bin(18)
    assert available_majors() == []
