"""The primary never hangs on a dead archive mount, for real: a PostgreSQL 17 primary archives
through the bundle's archive helper (the example specs derived by tests/derived_example.py:
cluster pg168121's primary moved onto this machine) into a zfs-fuse dataset mounted on the
archive mount. There is no NFS server here: a zfs-fuse daemon frozen with SIGSTOP blocks every
access to its mount as a dead `hard` NFS mount does, and its waits end on SIGKILL as NFS's do.

Beyond ports and folders the spec turns on what the test is about: archive_requires_mount
(the archive is a mount again), the queue limit (primary.archive_queue_max, off in the
example) with its state folder, and a 3 s bound (primary.archive_call_timeout, 8 s by
default) so that the test stays short (a fast stop waits up to 6 bounds + 4 s).

- Frozen: commits go on; each archive call fails within its bound (pg_stat_archiver's
  failed_count, "timed out" in the server log); past the queue limit the helper drops and
  counts on the primary's own disk; `pg_ctl stop -m fast` completes within 60 s.
- Thawed: the primary starts, the held segments are archived, the drop count appears beside the
  archive (where the backup host's monitor reads it) and the dropped segment is the gap.
- The failing twin: the same freeze with the bound lifted (an hour) holds the archiver in its
  call, and a fast stop does not complete within 8 s.

The daemon is always sent SIGCONT again (other tests share it, under the zfs_fuse fixture's
machine-wide lock).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import pg_backend as pg
from derived_example import CLUSTER
from test_standby_real_pg import wait_for
from test_sync_and_dropped_real_pg import archiving_primary, bundle, owned_folder
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

BOUND = 3  # primary.archive_call_timeout here (seconds)


def daemon_pid() -> int:
    found = subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True, text=True).stdout.split()
    assert len(found) == 1, f"one zfs-fuse daemon expected: {found}"
    return int(found[0])


def counts(server: pg.PgServer) -> tuple[int, int]:
    """pg_stat_archiver's archived_count and failed_count."""
    archived, failed = server.psql("select archived_count, failed_count from pg_stat_archiver").split("|")
    return int(archived), int(failed)


def switch(server: pg.PgServer, note: str) -> str:
    """A commit and a WAL switch, both timed: the segment switched from."""
    started = time.monotonic()
    server.psql(f"insert into t values ({note})")
    segment = server.psql("select pg_walfile_name(pg_current_wal_lsn())")
    server.psql("select pg_switch_wal()")
    took = time.monotonic() - started
    assert took < 5, f"a commit and a switch took {took:.1f} s: the primary waited on the archive"
    return segment


def logged(server: pg.PgServer, what: str, check, timeout: float = 60) -> None:
    """wait_for, with the server log's tail when it times out."""
    try:
        wait_for(what, check, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{server.log_tail(60)}") from None


def timed_stop(server: pg.PgServer, wait: int) -> tuple[bool, float]:
    """pg_ctl stop -m fast, waiting at most `wait` s: (stopped, seconds taken)."""
    started = time.monotonic()
    result = server._run("pg_ctl", "-D", server.data_dir, "stop", "-m", "fast", "-w", "-t", str(wait),
                         check=False, timeout=wait + 30)
    return result.returncode == 0, time.monotonic() - started


def test_a_frozen_archive_mount_never_holds_the_primary(zfs_fuse, tmp_path):
    root = tmp_path
    state = owned_folder(root / "state")
    primary_dir = bundle(root, {"archive_requires_mount": True, "archive_queue_max": "32MB",
                                "archive_state_dir": str(state), "archive_call_timeout": BOUND})
    helper_text = (primary_dir / "pitr-archive-wal.sh").read_text()
    assert f"readonly CALL_TIMEOUT={BOUND}\n" in helper_text
    mount = root / f"mnt/pg_arch/{CLUSTER}"
    pool = "nb" + os.urandom(3).hex()
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-m", str(mount), pool,
                    str(sparse_disks(root / "disks", 1, "256M")[0])], check=True)
    frozen: list[int] = []

    def freeze() -> None:
        pid = daemon_pid()
        os.kill(pid, signal.SIGSTOP)
        frozen.append(pid)

    def thaw() -> None:
        while frozen:
            os.kill(frozen.pop(), signal.SIGCONT)

    server = None
    # a SIGTERM (a CI timeout) still runs the finally below: the daemon is never left frozen
    previous = signal.signal(signal.SIGTERM, lambda *_: (thaw(), pytest.exit("SIGTERM", 143)))
    try:
        assert subprocess.run(["mountpoint", "-q", str(mount)]).returncode == 0
        owned_folder(mount)  # the helper runs as the server's user here (no sudo): it writes dropped-wal
        server = archiving_primary(root, primary_dir)
        archive = mount / "arch"
        first = switch(server, "1")
        wait_for(f"{first} archived", lambda: any(archive.glob(f"*/{first}")))

        # --- frozen: commits go on, each call fails within its bound -------------------------
        freeze()
        _, failed_before = counts(server)
        frozen_at = time.monotonic()
        held = switch(server, "2")
        logged(server, "an archive call failed", lambda: counts(server)[1] > failed_before, timeout=BOUND + 20)
        took = time.monotonic() - frozen_at
        assert took < BOUND + 5, f"the first failure took {took:.1f} s (bound {BOUND} s)"
        log = server.log_file.read_text(errors="replace")
        assert re.search(rf"timed out: .* did not end within \d+ s \(primary.archive_call_timeout {BOUND} s\): "
                         rf"the archive mount {re.escape(str(mount))} does not answer", log), server.log_tail()
        assert server.psql("select last_failed_wal from pg_stat_archiver") == held

        # past the queue limit (two segments): the oldest waiting file is dropped and counted
        # on the primary's disk, without a wait on the mount
        for note in ("3", "4"):
            switch(server, note)
        dropped = state / f"{CLUSTER}-dropped-wal"
        logged(server, "a dropped file counted", dropped.exists, timeout=4 * BOUND + 20)
        files, _, last, _ = dropped.read_text().split()
        assert files == "1" and last == held, dropped.read_text()
        assert "DROPPED " + held in server.log_file.read_text(errors="replace")

        # a fast stop, the archiver failing on the two segments left under the limit
        stopped, took = timed_stop(server, 60)
        assert stopped, f"the fast stop did not complete within 60 s\n{server.log_tail()}"
        assert took < 6 * BOUND + 4 + 10, f"the fast stop took {took:.1f} s"
        print(f"fast stop with the archive frozen: {took:.1f} s")

        # --- thawed: archiving resumes, the drop count reaches the archive, the gap stays ----
        thaw()
        server.start()
        ready = server.data_dir / "pg_wal/archive_status"
        logged(server, "the held segments archived", lambda: not list(ready.glob("*.ready")))
        after = switch(server, "5")
        logged(server, f"{after} archived", lambda: any(archive.glob(f"*/{after}")))
        logged(server, "the drop count beside the archive", lambda: (mount / "dropped-wal").exists())
        assert (mount / "dropped-wal").read_text() == dropped.read_text()
        assert not any(archive.glob(f"*/{held}")), f"{held} was dropped, yet archived"
        following = f"{held[:16]}{int(held[16:], 16) + 1:08X}"
        assert any(archive.glob(f"*/{following}")), f"{following}, held while frozen, not archived"

        # --- the failing twin: the bound lifted, the same freeze holds the archiver ----------
        installed = root / "primary/bin/pitr-archive-wal"
        installed.write_text(helper_text.replace(f"readonly CALL_TIMEOUT={BOUND}\n",
                                                 "readonly CALL_TIMEOUT=3600\n"))
        _, failed_before = counts(server)
        freeze()
        switch(server, "6")
        time.sleep(BOUND + 1)
        assert counts(server)[1] == failed_before, "a call failed with the bound lifted"
        stopped, took = timed_stop(server, 8)
        assert not stopped, f"the fast stop completed in {took:.1f} s with the archiver's call unbounded"
    finally:
        thaw()
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.stop(mode="immediate", check=False)
        release_pool(pool, mount)


def release_pool(pool: str, mount: Path) -> None:
    """Destroy the test pool once the frozen calls are gone: the unbounded twin's call (and
    its `timeout` parent) outlive the server's immediate stop until the thawed daemon answers
    them, and the pool stays busy until then (a CI run leaked it with a 3 s retry alone)."""
    subprocess.run(["pkill", "-KILL", "-f", str(mount)], capture_output=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            destroy_pool(pool)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
