"""The primary never waits on the backup host, and a gap the archive helper made is seen, on
a real PostgreSQL 16 primary on 127.0.0.1 (the example specs derived by tests/derived_example.py:
cluster pg168121's primary moved onto this machine; for the dropped-WAL test the queue limit,
off by default, is turned on: primary.archive_queue_max and primary.archive_state_dir).

- The primary step (45-apply-on-primary.sh) refuses a synchronous_standby_names of '*', and a
  FIRST list naming the standby's application_name in other case and quoted, exit 3 with the
  value to write, nothing changed; the failing twin: a list that does not name it is applied.
- check-primary.sh is CRITICAL while a real standby, connecting with the bundle's own
  primary_conninfo (its application_name), is `sync` (FIRST 1) or `quorum` (ANY 1), and OK
  when it is async.
- The real archive helper, its archive away, drops WAL past the queue limit: check-primary.sh
  turns CRITICAL (dropped after the newest base backup of the bundle), stays CRITICAL after
  another tool's base backup, and is OK after a new base backup with the bundle's label.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs
from test_primary_real_pg import rebase, stubs, tree_digest
from test_standby_real_pg import run, wait_for

pytestmark = pytest.mark.postgres

MAJOR = 16
PRIMARY_PORT, STANDBY_PORT = 28716, 28816
SLOT = "pitr1_pg168121"  # the example's slot
OS_USER = pg.DEFAULT_OS_USER  # derived_example's primary.os_user


def bundle(root: Path, extra: dict | None = None) -> Path:
    """The derived example's bundle; the cluster's primary/ folder."""
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    root.chmod(0o755)
    pg.grant_traverse(root)
    pg.ensure_os_user(OS_USER)
    specs = derived_specs(root, "nopool", [root / f"no-pool/disk{i}" for i in range(3)],
                          (STANDBY_PORT, PRIMARY_PORT, STANDBY_PORT + 100), major=MAJOR)
    path = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["primary"].update(extra or {})
    path.write_text(yaml.safe_dump(spec))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    return root / f"out/pitr1/clusters/{CLUSTER}/primary"


def owned_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, pwd.getpwnam(OS_USER).pw_uid, -1)
    return path


def archiving_primary(root: Path, primary_dir: Path, settings: dict | None = None) -> pg.PgServer:
    """A primary archiving through the bundle's helper and include (as the primary step leaves
    it), into the derived spec's archive folder."""
    helper = root / "primary/bin/pitr-archive-wal"  # the derived spec's archive_script
    helper.parent.mkdir(parents=True)
    shutil.copy(primary_dir / "pitr-archive-wal.sh", helper)
    helper.chmod(0o755)
    owned_folder(root / f"mnt/pg_arch/{CLUSTER}/arch")
    server = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    server.initdb()
    shutil.copy(primary_dir / "pitr-archive.conf", server.data_dir)
    os.chown(server.data_dir / "pitr-archive.conf", pwd.getpwnam(OS_USER).pw_uid, -1)
    server.configure(settings or {})
    with open(server.conf_file, "a") as conf:
        conf.write("\ninclude 'pitr-archive.conf'\n")
    server.start()
    server.psql("create role replicator with replication login")
    server.psql(f"select pg_create_physical_replication_slot('{SLOT}', true)")
    server.psql("create table t (id int)")
    return server


def check(primary_dir: Path, root: Path, psql: Path, expect: int) -> str:
    """check-primary.sh, installed as a Nagios plugin, run as the server's OS user."""
    script = root / "plugins/check-pitr-primary"
    if not script.exists():
        script.parent.mkdir()
        shutil.copy(primary_dir / "check-primary.sh", script)
        script.chmod(0o755)
    result = subprocess.run(["runuser", "-u", OS_USER, "--", "env", "PGUSER=postgres", "bash",
                             str(script), "--psql", str(psql), "--host", "127.0.0.1"],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == expect, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout


def base_backup(server: pg.PgServer, client_tools: Path, target: Path, label: str) -> None:
    owned_folder(target.parent)
    subprocess.run(["runuser", "-u", OS_USER, "--", client_tools / "pg_basebackup", "-D", target,
                    "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-X", "stream",
                    "-c", "fast", "-l", label], check=True, capture_output=True,
                   env=pg.client_env(), timeout=120, cwd="/")


def test_primary_step_refuses_a_synchronous_standby_names_that_matches_the_standby(tmp_path, client_tools):
    root = tmp_path
    primary_dir = bundle(root)
    system = root / "system"
    step = rebase(primary_dir / "45-apply-on-primary.sh", root / "run/45-apply-on-primary.sh",
                  MOUNT_SCRIPT=f"{system}/sbin/pitr-archive-mount-{CLUSTER}",
                  UNIT_FILE=f"{system}/units/pitr-archive-mount-{CLUSTER}.service",
                  SUDOERS_FILE=f"{system}/sudoers.d/pitr-archive-{CLUSTER}",
                  RC_LOCAL=f"{system}/rc.local", STATE_DIR=f"{system}/state")
    server = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    # the step makes the replication role with this password once nothing else refuses
    env = dict(pg.client_env({"PGUSER": "postgres", "PITR_REPLICATION_PASSWORD": "test-only-password"}),
               PATH=f"{stubs(root / 'stubs')}:{os.environ['PATH']}")
    try:
        server.initdb()
        server.configure({"synchronous_standby_names": "*"})
        server.start()
        args = [step, "--no-mount", "--psql", client_tools / "psql", "--socket-dir", server.socket_dir]
        refusals = {
            "*": "'FIRST 1 (<the synchronous standby's application_name>)', or '' for none",
            f'FIRST 1 (s1, "{CLUSTER.upper()}")': "'FIRST 1 (s1)'",
            f"ANY 1 (s1, {CLUSTER})": "'ANY 1 (s1)'",
        }
        for value, instead in refusals.items():
            if value != "*":
                server.psql(f"alter system set synchronous_standby_names = '{value}'; select pg_reload_conf()")
                wait_for("the setting in effect", lambda: server.psql("show synchronous_standby_names") == value)
            before = tree_digest(server.data_dir)
            refused = run(args, env=env, expect=3)
            assert (f"REFUSED: synchronous_standby_names = '{value}' matches the backup standby's "
                    f"application_name {CLUSTER}") in refused.stderr, refused.stderr
            assert f"write synchronous_standby_names = {instead}, reload" in refused.stderr
            assert tree_digest(server.data_dir) == before
            assert not system.exists() or tree_digest(system) == {}
            assert not (root / "primary/bin/pitr-archive-wal").exists()
            assert server.psql("show archive_mode") == "off"
        # the failing twin: a list that cannot match the standby is applied
        value = f'FIRST 1 (s1, "{CLUSTER} ")'
        server.psql(f"alter system set synchronous_standby_names = '{value}'; select pg_reload_conf()")
        wait_for("the setting in effect", lambda: server.psql("show synchronous_standby_names") == value)
        applied = run(args, env=env)
        assert "REFUSED" not in applied.stderr
        assert (server.data_dir / "pitr-archive.conf").exists()
        assert (root / "primary/bin/pitr-archive-wal").exists()
        # the counter's folder, readable by the server's group (check-primary.sh runs as its user)
        assert (system / "state").stat().st_mode & 0o7777 == 0o2750
    finally:
        server.stop(mode="immediate", check=False)


def test_check_primary_critical_while_the_real_standby_is_synchronous(tmp_path, client_tools):
    root = tmp_path
    primary_dir = bundle(root)
    server = archiving_primary(root, primary_dir)
    # the standby connects with the bundle's own primary_conninfo (its application_name)
    standby_script = (primary_dir.parent / "60-standby.sh").read_text()
    conninfo = re.search(r"^primary_conninfo = '([^']*)'$", standby_script, re.M).group(1)
    assert f"application_name={CLUSTER}" in conninfo
    standby = pg.PgServer(MAJOR, root / "standby/data", STANDBY_PORT)
    try:
        base_backup(server, client_tools, standby.data_dir, "standby")
        standby._owned_dir(standby.run_dir)
        standby.configure({"port": STANDBY_PORT, "unix_socket_directories": str(standby.run_dir),
                           "primary_conninfo": conninfo, "primary_slot_name": SLOT,
                           "archive_mode": "off"})
        (standby.data_dir / "standby.signal").touch()
        os.chown(standby.data_dir / "standby.signal", pwd.getpwnam(OS_USER).pw_uid, -1)
        standby.start()
        state = f"select sync_state from pg_stat_replication where application_name = '{CLUSTER}'"
        wait_for("the standby streaming", lambda: server.psql(state) == "async")
        healthy = check(primary_dir, root, client_tools / "psql", 0)
        assert healthy.startswith(f"PITR-PRIMARY OK - {CLUSTER}:"), healthy

        for value, sync_state in ((f"FIRST 1 ({CLUSTER})", "sync"), (f"ANY 1 (s1, {CLUSTER})", "quorum")):
            server.psql(f"alter system set synchronous_standby_names = '{value}'; select pg_reload_conf()")
            wait_for(f"the standby {sync_state}", lambda: server.psql(state) == sync_state)
            critical = check(primary_dir, root, client_tools / "psql", 2)
            assert (f"the backup standby {CLUSTER} is " in critical
                    and f"(sync_state {sync_state})" in critical
                    and f"take it out of synchronous_standby_names ('{value}')" in critical), critical

        server.psql("alter system reset synchronous_standby_names; select pg_reload_conf()")
        wait_for("the standby async again", lambda: server.psql(state) == "async")
        assert check(primary_dir, root, client_tools / "psql", 0).startswith("PITR-PRIMARY OK")
    finally:
        standby.stop(mode="immediate", check=False)
        server.stop(mode="immediate", check=False)


def test_check_primary_critical_on_wal_dropped_since_the_newest_base_backup(tmp_path, client_tools):
    root = tmp_path
    state = owned_folder(root / "state")
    primary_dir = bundle(root, {"archive_queue_max": "32MB", "archive_state_dir": str(state)})
    label = re.search(r"^readonly BACKUP_LABEL=(.*)$", (primary_dir / "check-primary.sh").read_text(),
                      re.M).group(1).strip("'")
    server = archiving_primary(root, primary_dir)
    psql = client_tools / "psql"
    try:
        base_backup(server, client_tools, root / "backups/first", label)
        backups = list((server.data_dir / "pg_wal").glob("*.backup"))
        assert len(backups) == 1 and f"LABEL: {label}\n" in backups[0].read_text()
        healthy = check(primary_dir, root, psql, 0)
        assert "dropped_wal=0c" in healthy, healthy

        # the backup host away: copies fail, and past two waiting segments the helper drops
        archive = root / f"mnt/pg_arch/{CLUSTER}/arch"
        archive.rename(archive.with_name("arch.away"))
        for i in range(5):
            server.psql(f"insert into t values ({i}); select pg_switch_wal()")
        dropped = state / f"{CLUSTER}-dropped-wal"
        wait_for("dropped WAL counted", lambda: dropped.exists(), timeout=120)
        critical = check(primary_dir, root, psql, 2)
        assert ("the archive helper dropped" in critical
                and "after the start of the newest base backup" in critical
                and "take a new base backup" in critical), critical

        # back: another tool's base backup does not end it, a new one of the bundle does
        archive.with_name("arch.away").rename(archive)
        wait_for("the queue archived", lambda: not list(
            (server.data_dir / "pg_wal/archive_status").glob("*.ready")), timeout=120)
        base_backup(server, client_tools, root / "backups/other", "other tool")
        still = check(primary_dir, root, psql, 2)
        assert "the archive helper dropped" in still, still
        base_backup(server, client_tools, root / "backups/second", label)
        again = check(primary_dir, root, psql, 0)
        assert again.startswith("PITR-PRIMARY OK") and "dropped_wal=" in again, again
        assert "dropped_wal=0c" not in again
    finally:
        server.stop(mode="immediate", check=False)
