"""The primary is never at risk, on real PostgreSQL: the generated archive settings carry
archive_timeout and, on 13+ with a slot, max_slot_wal_keep_size (absent before 13, where the
server would refuse it); with a queue limit the generated archive helper drops WAL past it,
reports success, says so in the server log and counts it, so pg_wal stops growing while the
archive is away."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from test_standby_real_pg import PRIMARY_OS_USER, wait_for, write_specs

pytestmark = pytest.mark.postgres

PORTS = {12: 28312, 16: 28316}


def primary_with_bundle_settings(root: Path, major: int, extra: str) -> tuple[pg.PgServer, Path]:
    """A real primary whose postgresql.conf includes the bundle's pitr-archive.conf, built from
    a spec with a slot and `extra` lines under primary:."""
    if major not in pg.available_majors():
        backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
    root.chmod(0o755)
    pg.grant_traverse(root)
    pg.ensure_os_user(PRIMARY_OS_USER)
    specs = write_specs(root, major)
    cluster = specs / f"clusters/pgt{major}.yaml"
    text = cluster.read_text()
    text = text.replace(f"port: {27000 + major}", f"port: {PORTS[major]}")
    text = text.replace(f"port: {28000 + major}", f"port: {PORTS[major] + 100}")
    text = text.replace("replication: {user: replicator}", "replication: {user: replicator, slot: pitr_s1}")
    text = text.replace("  archive_requires_mount: false  # no NFS between two folders of one machine\n",
                        "  archive_requires_mount: false\n" + extra)
    cluster.write_text(text)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / f"out/test/clusters/pgt{major}/primary"
    user = pwd.getpwnam(PRIMARY_OS_USER)
    (root / "primary/bin").mkdir(parents=True)
    shutil.copy(bundle / "pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
    (root / "primary/bin/pitr-archive-wal").chmod(0o755)
    primary = pg.PgServer(major, root / "primary/data", PORTS[major])
    primary.initdb()
    shutil.copy(bundle / "pitr-archive.conf", primary.data_dir)
    os.chown(primary.data_dir / "pitr-archive.conf", user.pw_uid, user.pw_gid)
    with open(primary.conf_file, "a") as conf:
        conf.write("\ninclude 'pitr-archive.conf'\n")
    return primary, bundle / "pitr-archive.conf"


@pytest.mark.parametrize("major", [12, 16])
def test_archive_timeout_and_max_slot_wal_keep_size_reach_the_primary(major, tmp_path):
    primary, conf = primary_with_bundle_settings(
        tmp_path, major, "  archive_timeout: 45\n  max_slot_wal_keep_size: 3GB\n")
    try:
        primary.start()
        assert primary.psql("show archive_timeout") == "45s"
        if major >= 13:
            assert primary.psql("show max_slot_wal_keep_size") == "3GB"
        else:
            assert "max_slot_wal_keep_size" not in conf.read_text()
    finally:
        primary.stop(mode="immediate", check=False)


def test_queue_limit_drops_wal_loudly_instead_of_filling_the_primary(tmp_path):
    state = tmp_path / "state"
    primary, _ = primary_with_bundle_settings(
        tmp_path, 16, f"  archive_queue_max: 32MB\n  archive_state_dir: {state}\n")
    state.mkdir()
    os.chown(state, pwd.getpwnam(PRIMARY_OS_USER).pw_uid, -1)
    # the archive folder does not exist: every copy fails, as with the backup host away
    try:
        primary.start()
        primary.psql("create table t (id int)")
        for i in range(5):
            primary.psql(f"insert into t values ({i})")
            primary.psql("select pg_switch_wal()")
        wait_for("a failed archive attempt", lambda: int(primary.psql(
            "select failed_count from pg_stat_archiver")) > 0)
        # past two waiting segments the helper reports success and drops them
        dropped = state / "pgt16-dropped-wal"
        wait_for("dropped WAL counted", lambda: dropped.exists() and int(dropped.read_text().split()[0]) >= 1,
                 timeout=120)
        wait_for("the queue back under the limit", lambda: len(list(
            (primary.data_dir / "pg_wal/archive_status").glob("*.ready"))) <= 2, timeout=120)
        files, size, last, _ = dropped.read_text().split()
        assert int(size) == int(files) * 16 * 1024 * 1024 and len(last) == 24
        assert int(primary.psql("select archived_count from pg_stat_archiver")) >= int(files)
        assert not (tmp_path / "pg_arch").joinpath("pgt16/arch").exists()
        log = "".join(p.read_text(errors="replace") for p in (primary.data_dir / "log").glob("*")) \
            if (primary.data_dir / "log").is_dir() else primary.log_tail(400)
        assert "DROPPED " in log and "over the queue limit of 33554432 bytes" in log
    finally:
        primary.stop(mode="immediate", check=False)
