"""The primary is never at risk, on real PostgreSQL: the generated archive settings carry
archive_timeout and, on 13+ with a slot, max_slot_wal_keep_size (absent before 13, where the
server would refuse it); with a queue limit the generated archive helper drops WAL past it,
reports success, says so in the server log and counts it, so pg_wal stops growing while the
archive is away. The bundle is the example specs' with cluster pg168121's primary moved onto
this machine (address, port, data folder, helper path, version); the settings under test are
the example's own (its slot, max_slot_wal_keep_size 20GB, the default archive_timeout of 60 s),
and for the queue limit, off by default, the test turns it on."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs
from test_standby_real_pg import PRIMARY_OS_USER, wait_for

pytestmark = pytest.mark.postgres

PORTS = {12: 28312, 16: 28316}


def primary_with_bundle_settings(root: Path, major: int, extra: dict | None = None) -> tuple[pg.PgServer, Path]:
    """A real primary whose postgresql.conf includes the bundle's pitr-archive.conf, built from
    the example specs (pg168121's primary moved here), with `extra` fields under primary:."""
    if major not in pg.available_majors():
        backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
    root.chmod(0o755)
    pg.grant_traverse(root)
    pg.ensure_os_user(PRIMARY_OS_USER)
    specs = derived_specs(root, "nopool", [root / f"no-pool/disk{i}" for i in range(3)],
                          (PORTS[major] + 100, PORTS[major], PORTS[major] + 200), major=major)
    path = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(path.read_text())
    assert spec["replication"]["slot"] and "archive_timeout" not in spec["primary"]
    spec["primary"].update(extra or {})
    path.write_text(yaml.safe_dump(spec))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / f"out/pitr1/clusters/{CLUSTER}/primary"
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
    primary, conf = primary_with_bundle_settings(tmp_path, major)
    try:
        primary.start()
        assert primary.psql("show archive_timeout") == "1min"  # the default, 60 s
        if major >= 13:
            assert primary.psql("show max_slot_wal_keep_size") == "20GB"  # the example's
        else:
            assert "max_slot_wal_keep_size" not in conf.read_text()
    finally:
        primary.stop(mode="immediate", check=False)


def test_queue_limit_drops_wal_loudly_instead_of_filling_the_primary(tmp_path):
    state = tmp_path / "state"
    primary, _ = primary_with_bundle_settings(
        tmp_path, 16, {"archive_queue_max": "32MB", "archive_state_dir": str(state)})
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
        dropped = state / f"{CLUSTER}-dropped-wal"
        wait_for("dropped WAL counted", lambda: dropped.exists() and int(dropped.read_text().split()[0]) >= 1,
                 timeout=120)
        wait_for("the queue back under the limit", lambda: len(list(
            (primary.data_dir / "pg_wal/archive_status").glob("*.ready"))) <= 2, timeout=120)
        files, size, last, _ = dropped.read_text().split()
        assert int(size) == int(files) * 16 * 1024 * 1024 and len(last) == 24
        assert int(primary.psql("select archived_count from pg_stat_archiver")) >= int(files)
        assert not (tmp_path / "mnt/pg_arch").joinpath(f"{CLUSTER}/arch").exists()
        log = "".join(p.read_text(errors="replace") for p in (primary.data_dir / "log").glob("*")) \
            if (primary.data_dir / "log").is_dir() else primary.log_tail(400)
        assert "DROPPED " in log and "over the queue limit of 33554432 bytes" in log
    finally:
        primary.stop(mode="immediate", check=False)
