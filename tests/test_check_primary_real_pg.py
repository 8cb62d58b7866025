"""The primary's own check (clusters/<c>/primary/check-primary.sh) against real primaries:
OK when healthy, CRITICAL when archive_command fails, WARNING then CRITICAL while the
replication slot keeps WAL for a standby that is away, a slot that lost its WAL past
max_slot_wal_keep_size (wal_status, 13+), and the PostgreSQL 10 path (no wal_status). The bundle is the example specs' with cluster pg168121's primary moved to this
machine (address, port, data folder) and small thresholds, so a few MB of WAL cross them."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import EXAMPLE_SPECS, backend_missing, pitr_bundle

pytestmark = pytest.mark.postgres

SLOT = "pitr1_pg168121"  # the example spec's slot


def derived_bundle(root: Path, major: int, port: int, data_dir: Path) -> Path:
    specs = root / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    path = specs / "clusters/pg168121.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["postgres"]["version"] = pg.server_version(major)
    spec["primary"].update({"address": "127.0.0.1", "port": port, "data_dir": str(data_dir)})
    spec["replication"].pop("tls", None)  # no standby here: TLS is tests/test_tls_real_pg.py's
    # the NFS path's check (the archiver's failures, .ready files); with the example's own
    # method (standby) the check asks the slot, which a primary without standby leaves inactive
    spec["archive"] = {"method": "nfs"}
    spec["monitor"] = {"slot_retained_warn_mb": 40, "slot_retained_crit_mb": 100,
                       "primary_wal_warn_mb": 1000, "primary_wal_crit_mb": 2000}
    path.write_text(yaml.safe_dump(spec))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    return root / "out/pitr1/clusters/pg168121/primary/check-primary.sh"


def check(script: Path, server: pg.PgServer, expect: int, psql: Path) -> str:
    """Runs the check as the server's OS user with psql copied where that user can run it
    (the wheel's own copy may sit under root's private home)."""
    result = subprocess.run(
        ["runuser", "-u", server.os_user, "--", "env", "PGUSER=postgres", "bash", str(script),
         "--psql", str(psql), "--host", "127.0.0.1"],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == expect, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    assert len(result.stdout.splitlines()) == 1 and " | " in result.stdout, result.stdout
    return result.stdout


def write_wal(server: pg.PgServer, megabytes: int) -> None:
    """About `megabytes` of WAL, in whole segments."""
    switch = "pg_switch_wal" if server.major >= 10 else "pg_switch_xlog"
    for _ in range(megabytes // 16):
        server.psql(f"insert into filler select g, repeat('x', 200) from generate_series(1, 60000) g; "
                    f"select {switch}()")


@pytest.mark.parametrize("major", [10, 17])
def test_primary_check_on_a_real_primary(major, tmp_path, client_tools):
    if major not in pg.available_majors():
        backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
    psql = client_tools / "psql"
    root = tmp_path
    root.chmod(0o755)
    pg.grant_traverse(root)
    port = 29400 + major
    server = pg.PgServer(major, root / "primary/data", port)
    # installed on the primary as a Nagios plugin would be
    script = root / "plugins/check-pitr-primary"
    script.parent.mkdir()
    shutil.copy(derived_bundle(root, major, port, server.data_dir), script)
    script.chmod(0o755)
    pg.ensure_os_user(server.os_user)
    archive = root / "arch"
    archive.mkdir()
    shutil.chown(archive, server.os_user)
    try:
        server.initdb()
        server.configure({"wal_level": "replica", "archive_mode": "on",
                          "archive_command": f"cp %p {archive}/%f", "max_wal_size": "1GB"})
        server.start()
        server.psql("create table filler (id int, pad text)")
        server.psql(f"select pg_create_physical_replication_slot('{SLOT}', true)")

        healthy = check(script, server, 0, psql)
        assert healthy.startswith("PITR-PRIMARY OK - pg168121:"), healthy
        assert "slot_retained=" in healthy and "wal_dir=" in healthy

        # the standby is away: its slot keeps every segment written since
        write_wal(server, 64)
        warned = check(script, server, 1, psql)
        assert f"slot {SLOT} (inactive) keeps" in warned, warned
        write_wal(server, 80)
        critical = check(script, server, 2, psql)
        assert f"slot {SLOT} (inactive) keeps" in critical, critical
        server.psql(f"select pg_drop_replication_slot('{SLOT}')")
        missing = check(script, server, 2, psql)
        assert f"replication slot {SLOT} missing" in missing

        # archive_command fails: CRITICAL, with the failing WAL named
        # (a new slot reserves WAL from the last checkpoint's REDO point)
        server.psql("checkpoint")
        server.psql(f"select pg_create_physical_replication_slot('{SLOT}', true)")
        server.psql("alter system set archive_command = 'false'; select pg_reload_conf()")
        time.sleep(0.5)
        server.psql("insert into filler values (1, 'x'); select pg_switch_wal()")
        deadline = time.monotonic() + 30
        while server.psql("select failed_count from pg_stat_archiver") == "0":
            assert time.monotonic() < deadline, "archiver never failed"
            time.sleep(0.2)
        failing = check(script, server, 2, psql)
        assert "archive_command fails since" in failing, failing
        assert "wait for archiving" not in failing  # the .ready file is minutes young

        # archiving works again: OK
        server.psql(f"alter system set archive_command = 'cp %p {archive}/%f'; select pg_reload_conf()")
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run(
                ["runuser", "-u", server.os_user, "--", "env", "PGUSER=postgres", "bash", str(script),
                 "--psql", str(psql), "--host", "127.0.0.1"],
                capture_output=True, text=True, timeout=60, cwd="/")
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, result.stdout
            time.sleep(0.5)
        assert result.stdout.startswith("PITR-PRIMARY OK")

        if major >= 13:
            # max_slot_wal_keep_size caps the slot: past it, a checkpoint takes the WAL away
            server.psql("alter system set max_slot_wal_keep_size = '32MB'; select pg_reload_conf()")
            write_wal(server, 64)
            server.psql("checkpoint")
            lost = check(script, server, 2, psql)
            assert f"slot {SLOT} (inactive) lost WAL it needed (wal_status lost)" in lost, lost
    finally:
        server.stop(mode="immediate", check=False)
