"""The PostgreSQL behaviour restore.sh's pause-then-promote rests on (pgversions' fact "promote
ends a recovery pause", from 13), on real servers either side of it: a recovery paused at its
target is promoted with pg_promote() and opens with an end-of-recovery record, its checkpoint
in the background (13); on 12 the promote leaves the pause alone, and the resume that opens
the server waits for the end-of-recovery checkpoint. Either way the target holds: the row
before it is there, the row after it is not. (restore.sh itself, on 11 and 16, with zfs-fuse:
tests/test_pitr_zfs_pg.py.)"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import backend_missing
from generator import pgversions as pv
from test_standby_real_pg import wait_for

pytestmark = pytest.mark.postgres

PORTS = {12: 31312, 13: 31313}  # primary; the restored copy on +50


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch))


def owned(path: Path, text: str) -> None:
    path.write_text(text)
    shutil.chown(path, pg.DEFAULT_OS_USER, pg.DEFAULT_OS_USER)


@pytest.mark.parametrize("major", [12, 13])
def test_promote_of_a_recovery_paused_at_its_target(major, tmp_path):
    if major not in pg.available_majors():
        backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
    tmp_path.chmod(0o755)
    pg.ensure_os_user()
    pg.grant_traverse(tmp_path)
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.chown(archive, pg.DEFAULT_OS_USER)
    primary = pg.PgServer(major, tmp_path / "primary", PORTS[major])
    restored = pg.PgServer(major, tmp_path / "restored", PORTS[major] + 50)
    try:
        primary.initdb()
        primary.configure({"archive_mode": "on", "archive_command": f"cp %p {archive}/%f"})
        primary.start()
        primary.psql("create table t (id int, note text)")
        primary.stop()
        # a cold copy is the base; the WAL after it comes from the archive
        subprocess.run(["cp", "-a", str(primary.data_dir), str(restored.data_dir)], check=True)
        primary.start()
        primary.psql("insert into t values (1, 'A')")
        time.sleep(1.2)
        target = utc(time.time())
        time.sleep(1.2)
        primary.psql("insert into t values (2, 'B')")
        primary.psql("select pg_switch_wal()")
        primary.stop()

        restored._owned_dir(restored.run_dir)
        restored.configure({"port": restored.port, "unix_socket_directories": str(restored.socket_dir or ""),
                            "log_checkpoints": "on", "hot_standby": "on"})
        with open(restored.conf_file, "a") as conf:
            conf.write(f"restore_command = 'cp {archive}/%f \"%p\"'\n"
                       f"recovery_target_time = '{target}'\nrecovery_target_action = 'pause'\n")
        owned(restored.data_dir / "recovery.signal", "")
        restored.start()
        wait_for("paused at the target", lambda: restored.psql("select pg_is_wal_replay_paused()") == "t")
        assert restored.psql("select pg_promote(false)") == "t"
        if pv.has("promote ends a recovery pause", str(major)):
            wait_for("open after the promote", lambda: restored.psql("select pg_is_in_recovery()") == "f")
            log = restored.log_file.read_text()
            assert "received promote request" in log
            assert "end-of-recovery immediate wait" not in log, log
        else:
            time.sleep(3)
            assert restored.psql("select pg_is_in_recovery()") == "t"  # still paused
            restored.psql("select pg_wal_replay_resume()")
            wait_for("open after the resume", lambda: restored.psql("select pg_is_in_recovery()") == "f")
            assert "checkpoint starting: end-of-recovery immediate wait" in restored.log_file.read_text()
        assert restored.psql("select string_agg(note, ',' order by id) from t") == "A"
    finally:
        restored.stop(mode="immediate", check=False)
        primary.stop(mode="immediate", check=False)
