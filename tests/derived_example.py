"""The example specs (specs/) derived for the zfs-fuse + real PostgreSQL tests: only disks,
addresses, ports, folders and the version moved onto this machine (shared by the drill,
retire, WAL retention and snapshot/restore tests), and replication.tls left out unless
keep_tls (the wheel's client tools have no TLS; tests/test_tls_real_pg.py keeps it).

archive.method: the example's pg168121 archives through its backup standby (the default from
9.5 with a slot). The tests of what reads the archive (restore, drill, continuity, retention,
generations) and of the NFS path's helper run pg168121 with `archive_method="nfs"`, the path
of the example's pg168104 (9.0: no binaries of it here) and of every pre-9.5 cluster: the
primary's archive_command writes the archive. `archive_method=None` keeps the example's
default; tests/test_wal_standby_real_pg.py and the system guest prove that path."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

import pg_backend as pg
from conftest import EXAMPLE_SPECS
from zfs_fuse import destroy_pool

CLUSTER = "pg168121"


def derived_specs(root: Path, pool: str, disks: list[Path], ports: tuple[int, int, int],
                  other_port: int | None = None, major: int | None = 17,
                  log: Path | None = None, spare: Path | None = None,
                  keep_tls: bool = False, archive_method: str | None = "nfs",
                  replica: bool = False) -> Path:
    """The example specs with disks, addresses, ports and folders moved into root; pg168121 on
    a real primary of `major` at 127.0.0.1. pg168104 is dropped, or kept (its dataset moved, on
    other_port) for tests that need a neighbour. The example's log device and spare are dropped,
    or kept with `log` and `spare` as their disks for tests of the pool's layout. major None
    keeps the example's version, for tests that start no server (no binaries needed). The
    example's replica host pitr2 is dropped (its disks are not here) unless `replica`: then
    derived_replica moves it onto this machine."""
    standby_port, primary_port, restore_port = ports
    specs = root / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    mnt = root / "mnt"
    if not replica:
        (specs / "hosts/pitr2.yaml").unlink()
    other_file = specs / "clusters/pg168104.yaml"
    if other_port is None:
        other_file.unlink()
    else:
        other = yaml.safe_load(other_file.read_text())
        other.update({"dataset": f"{pool}/pg168104", "mountpoint": f"{mnt}/pg168104", "port": other_port})
        other_file.write_text(yaml.safe_dump(other))
    host_file = specs / "hosts/pitr1.yaml"
    host = yaml.safe_load(host_file.read_text())
    host["address"], host["virtual_ip"] = "127.0.0.1", "127.0.0.1"
    host["pool"].update({"name": pool, "device_paths": "any", "mountpoint": f"{mnt}/{pool}",
                         "pool_options": {"cachefile": "none"},
                         "vdevs": [{"type": "raidz1", "disks": [str(d) for d in disks]}]})
    if log is None or spare is None:
        del host["pool"]["log"], host["pool"]["spares"]
    else:
        host["pool"]["log"]["devices"] = [str(log)]
        host["pool"]["spares"] = [str(spare)]
    host["pool"]["properties"]["compression"] = "lzjb"  # zfs-fuse has no lz4
    for key in ("pg_home", "pg_arch", "pg_log"):
        host["datasets"][key] = {"name": f"{pool}/{key}", "mountpoint": f"{mnt}/{key}"}
    host["nfs"].update({"exports_file": f"{root}/etc/exports",
                        "ports_file": f"{root}/etc/nfs.conf.d/pitr-bundle.conf"})
    host_file.write_text(yaml.safe_dump(host))
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    c = yaml.safe_load(cluster_file.read_text())
    c.update({"dataset": f"{pool}/{CLUSTER}", "mountpoint": f"{mnt}/{CLUSTER}", "port": standby_port})
    if major is not None:
        c["postgres"]["version"] = pg.server_version(major)
    c["primary"].update({
        "address": "127.0.0.1", "port": primary_port, "ha_partner": None,
        "data_dir": str(root / "primary/data"), "os_user": pg.DEFAULT_OS_USER,
        "archive_mount": f"{mnt}/pg_arch/{CLUSTER}",
        "archive_script": str(root / "primary/bin/pitr-archive-wal"),
        "archive_via_sudo": False, "archive_requires_mount": False})
    c["primary"] = {k: v for k, v in c["primary"].items() if v is not None}
    # TLS left out: the client tools here (the PyPI wheel's) have no TLS; tests/test_tls_real_pg.py
    # proves the example's replication.tls, and keeps it
    if not keep_tls:
        c["replication"].pop("tls", None)
    if archive_method is not None:
        c["archive"] = {**c.get("archive", {}), "method": archive_method}
    c["standby"]["settings"] = {"shared_buffers": "32MB", "max_connections": 200}
    c["restore"] = {"port": restore_port, "mountpoint_root": f"{mnt}/restore", "timeout_seconds": 120}
    c["drill"] = {"state_dir": str(root / "state")}
    cluster_file.write_text(yaml.safe_dump(c))
    return specs


def drop_user(name: str) -> None:
    subprocess.run(["pkill", "-u", name], capture_output=True)
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


def real_root(prefix: str) -> tuple[Path, str]:
    """A real test's folder and pool name (the prefix and 6 hex digits): the folder short (a
    clone's unix socket lives in its data folder: at most 107 bytes) and traversable by the
    servers' users; the cluster's OS user of an earlier run gone, the primary's there."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    return root, prefix + os.urandom(3).hex()


def tear_down(root: Path, pool: str, pghome_bin: Path, data_dirs: list[Path],
              servers: list["pg.PgServer"], installed: list[Path]) -> None:
    """After a real test (in its finally): the cluster's servers on data_dirs stopped as its
    user, the test's own servers, the files it installed outside root, the cluster's OS user,
    the pool, the folder."""
    for data in data_dirs:
        if (data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(pghome_bin / "pg_ctl"), "-D", str(data),
                            "-m", "immediate", "stop"], capture_output=True)
    for server in servers:
        server.stop(mode="immediate", check=False)
    for path in installed:
        path.unlink(missing_ok=True)
    drop_user(CLUSTER)
    time.sleep(0.5)
    destroy_pool(pool)
    shutil.rmtree(root, ignore_errors=True)


def example_primary(root: Path, scripts: Path, archive: Path, server: "pg.PgServer",
                    password: str, initdb_args: tuple[str, ...] = ()) -> None:
    """A real primary as the primary step leaves it: include and pg_hba lines, the replication
    role, started. On the NFS path also the bundle's archive helper (at the derived spec's
    archive_script) and the archive folder the primary's user writes and the cluster's group
    reads (as over NFS); with archive.method standby the standby's 60-standby.sh makes the
    folders its own."""
    primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
    if (scripts / "primary/pitr-archive-wal.sh").exists():
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(CLUSTER).pw_gid)
            folder.chmod(0o2750)
        (root / "primary/bin").mkdir(parents=True)
        shutil.copy(scripts / "primary/pitr-archive-wal.sh", root / "primary/bin/pitr-archive-wal")
        (root / "primary/bin/pitr-archive-wal").chmod(0o755)
    server.initdb(*initdb_args)
    shutil.copy(scripts / "primary/pitr-archive.conf", server.data_dir)
    os.chown(server.data_dir / "pitr-archive.conf", primary_user.pw_uid, primary_user.pw_gid)
    with open(server.conf_file, "a") as conf:
        conf.write("\ninclude 'pitr-archive.conf'\n")
    lines = (scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
    server.hba([line for line in lines if line and not line.startswith("#")])
    server.start()
    server.psql(f"create role replicator with replication login password '{password}'")


def derived_replica(specs: Path, root: Path, pool: str, disks: list[Path], ssh_port: int) -> None:
    """The example's replica pitr2 moved onto this machine: its pool on `disks` (a raidz2 of
    them, no spare), its folders under root, address 127.0.0.1, the source's sshd on ssh_port,
    compression lzjb; and send_privilege sudo, since zfs-fuse lets no user but root run zfs
    (the delegation of the default is proven on OpenZFS in the guest)."""
    host_file = specs / "hosts/pitr2.yaml"
    host = yaml.safe_load(host_file.read_text())
    mnt = root / "mnt2"
    host["address"] = "127.0.0.1"
    host["pool"].update({"name": pool, "device_paths": "any", "mountpoint": f"{mnt}/{pool}",
                         "pool_options": {"cachefile": "none"},
                         "vdevs": [{"type": "raidz2", "disks": [str(d) for d in disks]}]})
    host["pool"].pop("spares", None)
    host["pool"]["properties"]["compression"] = "lzjb"
    for key in ("pg_home", "pg_arch", "pg_log"):
        host["datasets"][key] = {"name": f"{pool}/{key}", "mountpoint": f"{mnt}/{key}"}
    host["nfs"] = {"exports_file": f"{root}/etc2/exports",
                   "ports_file": f"{root}/etc2/nfs.conf.d/pitr-bundle.conf"}
    host["replica_of"].update({"ssh_port": ssh_port, "send_privilege": "sudo"})
    host_file.write_text(yaml.safe_dump(host))
