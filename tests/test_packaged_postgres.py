"""A cluster on packaged PostgreSQL (postgres.binaries): Debian's PostgreSQL 15 installed on this
machine in /usr/lib/postgresql/15/bin stands in for a build from source.

The specs are the example's: pg168121 with `version:` the installed 15.x, `binaries:` that folder
and two extensions by name instead of the source build's configure line; addresses, ports and
folders moved onto this machine (as test_standby_real_pg does, the primary's archive is a local
folder, no NFS); the OS user renamed so that no other test's account is touched. Then:
35-check-binaries.sh passes; an installed minor older than the primary's is warned about, a
newer one accepted; another major or a missing extension library makes it refuse (exit 3); and the user, basebackup and standby scripts bring up a streaming standby with those
binaries against a real PostgreSQL 15 primary (tests/pg_backend.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import EXAMPLE_SPECS, backend_missing, pitr_bundle

pytestmark = pytest.mark.postgres

BINARIES = Path("/usr/lib/postgresql/15/bin")
CLUSTER, OS_USER = "pg168121", "pgpkg15"
PRIMARY_PORT, STANDBY_PORT = 27115, 27215
PASSWORD = "Tr0ub4dor-test-only"
EXTENSIONS = ["pg_stat_statements", "pgcrypto"]


def installed_version() -> str:
    if not os.access(BINARIES / "postgres", os.X_OK):
        backend_missing(f"Debian's PostgreSQL 15 in {BINARIES}: apt-get install postgresql-15")
    line = subprocess.run([BINARIES / "postgres", "--version"], capture_output=True,
                          text=True, check=True).stdout
    return re.search(r"\) (15\.\d+)", line).group(1)


def derived_specs(root: Path, version: str, extensions: list[str] = EXTENSIONS) -> Path:
    """specs/ with pg168121 on the installed binaries and moved onto this machine."""
    specs = root / "specs"
    shutil.rmtree(specs, ignore_errors=True)
    shutil.copytree(EXAMPLE_SPECS, specs)
    (specs / "clusters/pg168104.yaml").unlink()  # only the cluster under test
    host = yaml.safe_load((specs / "hosts/pitr1.yaml").read_text())
    host["address"] = "127.0.0.1"
    del host["virtual_ip"]  # the primary is this machine: no address to route from a VIP
    host["pool"]["device_paths"] = "any"
    for key in ("pg_home", "pg_arch", "pg_log"):
        host["datasets"][key]["mountpoint"] = f"{root}/{key}"
    (specs / "hosts/pitr1.yaml").write_text(yaml.safe_dump(host, sort_keys=False))
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    cluster = yaml.safe_load(cluster_file.read_text())
    cluster["os_user"] = OS_USER
    cluster["mountpoint"] = f"{root}/data"
    cluster["port"] = STANDBY_PORT
    cluster["postgres"] = {"version": version, "binaries": str(BINARIES),
                           "extensions": [{"name": name} for name in extensions]}
    cluster["primary"] = {
        "address": "127.0.0.1", "port": PRIMARY_PORT, "data_dir": f"{root}/primary/data",
        "os_user": pg.DEFAULT_OS_USER, "archive_mount": f"{root}/pg_arch/{CLUSTER}",
        "archive_script": f"{root}/primary/bin/pitr-archive-wal",
        "archive_via_sudo": False, "archive_requires_mount": False}
    cluster["standby"]["settings"] = {"shared_buffers": "32MB", "max_connections": 100}
    cluster["replication"].pop("tls", None)  # no certificates here: tests/test_tls_real_pg.py
    cluster["archive"] = {"method": "nfs"}  # the primary's helper writes the local archive
    cluster_file.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return specs


def build(root: Path, specs: Path) -> Path:
    shutil.rmtree(root / "out", ignore_errors=True)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    return root / "out/pitr1"


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


def drop_user(name: str) -> None:
    subprocess.run(["pkill", "-u", name], capture_output=True)
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


def test_the_check_accepts_a_newer_minor_warns_of_an_older_refuses_another_major(tmp_path):
    version = installed_version()
    check = f"clusters/{CLUSTER}/35-check-binaries.sh"
    bundle = build(tmp_path, derived_specs(tmp_path, version))
    assert not (bundle / f"clusters/{CLUSTER}/35-build.sh").exists()
    ok = run([bundle / check])
    assert f"postgres: PostgreSQL {version}, the primary's" in ok.stderr
    assert f"extension pg_stat_statements: " in ok.stderr

    # the primary on a newer minor: the installed one is older, warned about, not refused
    minor = int(version.split('.')[1])
    newer = f"15.{minor + 1}"
    bundle = build(tmp_path, derived_specs(tmp_path, newer))
    warned = run([bundle / check])
    assert (f"WARNING: postgres: PostgreSQL {version} is an older minor release than the "
            f"primary's {newer}: update it") in warned.stderr
    # the primary on an older minor: the installed newer one is what PostgreSQL advises
    older = f"15.{minor - 1}"
    bundle = build(tmp_path, derived_specs(tmp_path, older))
    fine = run([bundle / check])
    assert f"postgres: PostgreSQL {version}, a newer minor release than the primary's {older}: fine" \
        in fine.stderr and "WARNING" not in fine.stderr
    # another major: refused
    bundle = build(tmp_path, derived_specs(tmp_path, f"16.{minor}"))
    refused = run([bundle / check], expect=3)
    assert f"{BINARIES}/postgres reports {version}" in refused.stderr
    assert f"the primary runs 16.{minor}" in refused.stderr

    bundle = build(tmp_path, derived_specs(tmp_path, version, EXTENSIONS + ["pgfincore"]))
    refused = run([bundle / check], expect=3)
    assert "extension pgfincore of the primary: neither /usr/lib/postgresql/15/lib/pgfincore.so" \
        in refused.stderr
    assert "1 problem(s)" in refused.stderr


def test_standby_on_the_installed_binaries(tmp_path):
    version = installed_version()
    if 15 not in pg.available_majors():
        backend_missing("PostgreSQL 15 server binaries: run tests/backends/install-postgres.sh")
    root = tmp_path
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(OS_USER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    bundle = build(root, derived_specs(root, version))
    facts = json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"][0]
    paths = facts["paths"]
    assert paths["pghome"] == str(BINARIES.parent)
    scripts = bundle / f"clusters/{CLUSTER}"
    # no script of the cluster names the source build's folder
    for path in scripts.rglob("*"):
        if path.is_file():
            assert f"/pg_home/{CLUSTER}/pgsql" not in path.read_text(), path
            assert f"{root}/pg_home/{CLUSTER}/pgsql" not in path.read_text(), path

    primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
    (root / "primary/bin").mkdir(parents=True)
    shutil.copy(scripts / "primary/pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
    (root / "primary/bin/pitr-archive-wal").chmod(0o755)
    archive = Path(paths["archive"])
    primary = pg.PgServer(15, root / "primary/data", PRIMARY_PORT)
    standby_started = False
    try:
        primary.initdb()
        shutil.copy(scripts / "primary/pitr-archive.conf", primary.data_dir)
        os.chown(primary.data_dir / "pitr-archive.conf", primary_user.pw_uid, primary_user.pw_gid)
        with open(primary.conf_file, "a") as conf:
            conf.write("\ninclude 'pitr-archive.conf'\n")
        hba = (scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
        primary.hba([line for line in hba if line and not line.startswith("#")])
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        primary.psql("create table t (id int primary key, note text)")
        slot = yaml.safe_load((EXAMPLE_SPECS / f"clusters/{CLUSTER}.yaml").read_text())["replication"]["slot"]
        primary.psql(f"select pg_create_physical_replication_slot('{slot}') where not exists "
                     f"(select 1 from pg_replication_slots where slot_name = '{slot}')")

        for folder in ("pg_home", "pg_log", "data"):
            (root / folder).mkdir(exist_ok=True)
            (root / folder).chmod(0o755)
        run([scripts / "30-user.sh"])
        run([scripts / "35-check-binaries.sh"])
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(OS_USER).pw_gid)
            folder.chmod(0o2750)
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        backup = run([scripts / "50-basebackup.sh"], env=env)
        assert f"{BINARIES}/pg_basebackup" in backup.stderr
        standby_started = True
        started = run([scripts / "60-standby.sh"], env=env)
        assert f"{BINARIES}/pg_ctl" in started.stderr

        standby = pg.PgServer(15, Path(paths["pgdata"]), STANDBY_PORT)
        wait_for("streaming through the slot", lambda: primary.psql(
            f"select active from pg_replication_slots where slot_name = '{slot}'") == "t")
        primary.psql("insert into t values (1, 'streamed')")
        wait_for("row 1 on the standby", lambda: standby.psql("select note from t where id = 1") == "streamed")
        # the standby's server is the installed one, not the test's npm build
        pid = (Path(paths["pgdata"]) / "postmaster.pid").read_text().split()[0]
        assert os.readlink(f"/proc/{pid}/exe") == str(BINARIES / "postgres")
        assert standby.psql("select version()").startswith(f"PostgreSQL {version} (Debian")

        # the .bash_profile alone finds the installed pg_ctl and psql
        result = run(["runuser", "-u", OS_USER, "--", "env", "-i", "bash", "-c",
                      "source ~/.bash_profile && command -v pg_ctl && "
                      "psql -Atc 'select pg_is_in_recovery()'"])
        assert result.stdout.split() == [str(BINARIES / "pg_ctl"), "t"]
    finally:
        if standby_started and (Path(paths["pgdata"]) / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", OS_USER, "--", str(BINARIES / "pg_ctl"), "-D",
                            paths["pgdata"], "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(OS_USER)
