"""The generated per-cluster scripts against real PostgreSQL servers of majors 10 to 18, on the
example specs' bundle (cluster pg168121, with its replication slot) derived by
tests/derived_example.py: disks, addresses, ports, folders moved onto this machine and the
version set to each major's server (the only thing that moves per major). The pool and the
datasets are not made here (plain folders stand in for them, the host scripts are not run: they
are proven on zfs-fuse by test_host_zfs_fuse and the *_zfs_pg tests), so the derived disks are
never touched.

For each major: a primary on 127.0.0.1 configured with the bundle's archive settings, helper and
pg_hba lines; on the "backup host" side (the same machine, paths under the test's folder) the
bundle's user script creates a real OS user, the basebackup script takes the base backup with
that cluster's binaries, the standby script configures and starts the standby. Then: the archive
fills UTC day folders, the standby streams, a row written on the primary appears on the hot
standby, the .bash_profile alone makes pg_ctl and psql work, and with streaming cut the standby
keeps replaying from the archive.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs, drop_user

pytestmark = pytest.mark.postgres

MAJORS = [10, 11, 12, 13, 14, 15, 16, 17, 18]
PRIMARY_OS_USER = pg.DEFAULT_OS_USER
PASSWORD = "Tr0ub4dor-test-only"
SLOT = "pitr1_pg168121"  # the example's replication slot


def ports(major: int) -> tuple[int, int, int]:
    """standby, primary, restore (never started here) ports of one major."""
    return 28000 + major, 27000 + major, 27300 + major


def compose_pghome(folder: Path, major: int, client_bin: Path) -> Path:
    """A stand-in for the cluster's own build (tested for real in test_build_from_source):
    the npm server binaries of that major plus client tools."""
    native = pg.server_bin(major).parent
    home = folder / f"pghome{major}"
    (home / "bin").mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres"):
        (home / "bin" / name).symlink_to(native / "bin" / name)
    for name in ("lib", "share"):
        (home / name).symlink_to(native / name)
    for name in ("psql", "pg_basebackup"):
        wrapper = home / "bin" / name
        # the client's own libraries, not $PGHOME/lib (an older libpq than the client)
        wrapper.write_text(f'#!/bin/sh\nunset LD_LIBRARY_PATH\nexec {client_bin / name} "$@"\n')
        wrapper.chmod(0o755)
    subprocess.run(["chmod", "-R", "go+rX", str(home)], check=True)
    pg.grant_traverse(home)
    return home


def run(cmd, *, env=None, expect=0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == expect, f"{cmd}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def wait_for(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except pg.PgError as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def backup_host_user_and_archive(root: Path, cluster_dir: Path, archive: Path,
                                 primary_user: pwd.struct_passwd) -> None:
    """Plain folders where the derived datasets would mount, the bundle's user script, and
    the archive as the NFS script lays it out: the writer owns it (root through NFS there, the
    primary's user here), the cluster's group reads, setgid keeps day folders in it."""
    for folder in ("mnt", "mnt/pg_home", "mnt/pg_log", f"mnt/{CLUSTER}"):
        (root / folder).mkdir(exist_ok=True)
        (root / folder).chmod(0o755)
    run([cluster_dir / "30-user.sh"])
    archive.mkdir(parents=True)
    for folder in (archive.parent, archive):
        os.chown(folder, primary_user.pw_uid, pwd.getpwnam(CLUSTER).pw_gid)
        folder.chmod(0o2750)


@pytest.mark.parametrize("major", MAJORS)
def test_standby_from_generated_scripts(major, client_tools):
    if major not in pg.available_majors():
        backend_missing(f"PostgreSQL {major} binaries: run tests/backends/install-postgres.sh")
    # a short root: the standby's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="ps", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    cluster = CLUSTER
    standby_port, primary_port, restore_port = ports(major)
    drop_user(cluster)
    pg.ensure_os_user(PRIMARY_OS_USER)
    # never created: no pool here (see the module's docstring)
    specs = derived_specs(root, "pz" + str(major), [root / f"no-pool/disk{i}" for i in range(3)],
                          (standby_port, primary_port, restore_port), major=major)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"][0]
    assert facts["name"] == cluster
    paths = facts["paths"]

    # --- the primary, with the bundle's archive settings, helper and pg_hba lines
    primary_user = pwd.getpwnam(PRIMARY_OS_USER)
    (root / "primary/bin").mkdir(parents=True)
    shutil.copy(bundle / f"clusters/{cluster}/primary/pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
    (root / "primary/bin/pitr-archive-wal").chmod(0o755)
    archive = Path(paths["archive"])
    primary = pg.PgServer(major, root / "primary/data", primary_port)
    standby_pgctl = None
    try:
        primary.initdb()
        shutil.copy(bundle / f"clusters/{cluster}/primary/pitr-archive.conf", primary.data_dir)
        os.chown(primary.data_dir / "pitr-archive.conf", primary_user.pw_uid, primary_user.pw_gid)
        with open(primary.conf_file, "a") as conf:
            conf.write("\ninclude 'pitr-archive.conf'\n")
        hba_lines = (bundle / f"clusters/{cluster}/primary/pg_hba.conf.lines").read_text().splitlines()
        primary.hba([line for line in hba_lines if line and not line.startswith("#")])
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        primary.psql(f"select pg_create_physical_replication_slot('{SLOT}')")
        primary.psql("create table t (id int primary key, note text)")

        # --- the backup host side, with the generated scripts
        backup_host_user_and_archive(root, bundle / f"clusters/{cluster}", archive, primary_user)
        Path(paths["pghome"]).symlink_to(compose_pghome(root / "soft", major, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([bundle / f"clusters/{cluster}/50-basebackup.sh"], env=env)
        assert (Path(paths["pgdata"]) / "PG_VERSION").read_text().strip() == str(major)
        pgpass = Path(paths["os_home"]) / ".pgpass"
        assert oct(pgpass.stat().st_mode & 0o777) == "0o600"
        standby_pgctl = Path(paths["pghome"]) / "bin/pg_ctl"
        run([bundle / f"clusters/{cluster}/60-standby.sh"], env=env)
        signal = "recovery.conf" if major < 12 else "standby.signal"
        assert (Path(paths["pgdata"]) / signal).exists()
        other = "standby.signal" if major < 12 else "recovery.conf"
        assert not (Path(paths["pgdata"]) / other).exists()

        standby = pg.PgServer(major, Path(paths["pgdata"]), standby_port)

        # streaming, seen from both ends
        wait_for("pg_stat_replication on the primary", lambda: primary.psql(
            f"select state from pg_stat_replication where application_name = '{cluster}'") == "streaming")
        wait_for("pg_stat_wal_receiver on the standby",
                 lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        # through the example's slot
        assert primary.psql(f"select active from pg_replication_slots where slot_name = '{SLOT}'") == "t"

        # a row written on the primary appears on the hot standby
        primary.psql("insert into t values (1, 'streamed')")
        wait_for("row 1 on the standby", lambda: standby.psql("select note from t where id = 1") == "streamed")

        # the archive fills UTC day folders through the generated helper
        primary.psql("select pg_switch_wal()")
        day = time.strftime("%Y-%m-%d", time.gmtime())
        wait_for("an archived WAL file in today's folder",
                 lambda: any(len(p.name) == 24 for p in (archive / day).glob("*")) if (archive / day).is_dir() else False)

        # the .bash_profile alone makes pg_ctl and psql of the cluster work
        result = run(["runuser", "-u", cluster, "--", "env", "-i", "bash", "-c",
                      "source ~/.bash_profile && pg_ctl status >/dev/null && psql -Atc 'select pg_is_in_recovery()'"])
        assert result.stdout.strip() == "t"

        # streaming cut: the standby keeps replaying from the archive
        primary.hba(["host replication replicator 127.0.0.1/32 reject"])  # first match wins
        primary.psql(f"select pg_terminate_backend(pid) from pg_stat_replication where application_name = '{cluster}'")
        wait_for("the walsender to be gone", lambda: primary.psql(
            f"select count(*) from pg_stat_replication where application_name = '{cluster}'") == "0")
        primary.psql("insert into t values (2, 'from the archive')")
        primary.psql("select pg_switch_wal()")
        wait_for("row 2 replayed from the archive",
                 lambda: standby.psql("select note from t where id = 2") == "from the archive", timeout=90)
        assert primary.psql(f"select count(*) from pg_stat_replication where application_name = '{cluster}'") == "0"

        # the replication password reached .pgpass from the environment, never the bundle
        for path in [*bundle.rglob("*"), root / "out/pitr1.tar.gz"]:
            if path.is_file():
                assert PASSWORD.encode() not in path.read_bytes(), path

        # a second run of the standby script changes nothing
        again = run([bundle / f"clusters/{cluster}/60-standby.sh"], env=env)
        assert "the standby is already running" in again.stderr
        assert "run: install" not in again.stderr
    finally:
        if standby_pgctl and (Path(paths["pgdata"]) / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", cluster, "--", str(standby_pgctl), "-D", paths["pgdata"],
                            "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(cluster)
        shutil.rmtree(root, ignore_errors=True)
