"""Retiring a cluster for real: zfs-fuse + PostgreSQL 17, the example specs with only disks,
addresses, ports and folders moved onto this machine (cluster pg168121 retired; pg168104 stays,
its dataset only: no 9.0 binaries here). The cluster runs as the bundle sets it up (standby
streaming through its slot, snapshots, installed cron files and scripts, the monitor), then
the spec says `retired: true`: the primary-side removal takes the archive settings and the
replication lines out, restarts the primary and drops the slot; the retire script refuses
while WAL is fresh in the archive, then stops the standby, removes the cron files, installed
scripts and monitor lines, keeps dataset and archive; `--destroy-data --yes` destroys them
(the archive a dataset of its own, docs/archive-datasets.md: that dataset with its snapshot),
and pg168104's dataset is untouched. The system paths the scripts write (/etc/cron.d,
/usr/local/sbin, /etc/sudoers.d) are moved into the test's folder, as in
test_primary_real_pg.py."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import derived_specs as drill_specs
from test_primary_real_pg import rebase
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for  # noqa: F401
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 17
CLUSTER, OTHER = "pg168121", "pg168104"
SLOT = "pitr1_pg168121"
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT, OTHER_PORT = 31001, 31002, 31003, 31011


def derived_specs(root: Path, pool: str, disks: list[Path]) -> Path:
    """The drill test's derivation of the example specs, with pg168104 kept as the neighbour
    that must stay untouched."""
    return drill_specs(root, pool, disks, (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), OTHER_PORT, major=MAJOR)


def zfs_exists(name: str) -> bool:
    return subprocess.run(["zfs", "list", "-H", "-o", "name", name], capture_output=True).returncode == 0


def test_retire_a_cluster_then_destroy_its_data(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    # a short root: unix sockets live in data folders (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pr", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    drop_user(CLUSTER)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "pr" + os.urandom(3).hex()
    specs = derived_specs(root, pool, sparse_disks(root / "disks", 3, "256M"))
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    scripts = bundle / f"clusters/{CLUSTER}"
    mnt = root / "mnt"
    pgdata = mnt / CLUSTER / "pg_root"
    archive = mnt / "pg_arch" / CLUSTER / "arch"
    system = root / "system"  # stands for /etc/cron.d, /usr/local/sbin, /etc/sudoers.d
    installed = {"SNAPSHOT_CRON": system / f"cron.d/pitr-bundle-{CLUSTER}",
                 "DRILL_CRON": system / f"cron.d/pitr-bundle-{CLUSTER}-drill",
                 "SNAPSHOT_SCRIPT": system / f"sbin/pitr-snapshot-{CLUSTER}",
                 "RETENTION_SCRIPT": system / f"sbin/pitr-wal-retention-{CLUSTER}",
                 "DRILL_SCRIPT": system / f"sbin/pitr-drill-{CLUSTER}",
                 "RESTORE_SCRIPT": system / f"sbin/pitr-restore-{CLUSTER}"}
    check = system / "sbin/pitr-check"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    pghome = mnt / "pg_home" / CLUSTER / "pgsql"
    standby = pg.PgServer(MAJOR, pgdata, STANDBY_PORT)
    try:
        # --- the cluster as the bundle sets it up ------------------------------------------
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        assert zfs_exists(f"{pool}/{OTHER}")
        run([scripts / "30-user.sh"])
        primary_user = pwd.getpwnam(pg.DEFAULT_OS_USER)
        archive.mkdir(parents=True)
        for folder in (archive.parent, archive):
            os.chown(folder, primary_user.pw_uid, pwd.getpwnam(CLUSTER).pw_gid)
            folder.chmod(0o2750)
        (root / "primary/bin").mkdir(parents=True)
        helper = root / "primary/bin/pitr-archive-wal"
        shutil.copy(scripts / "primary/pitr-archive-wal.sh", helper)
        helper.chmod(0o755)
        primary.initdb()
        shutil.copy(scripts / "primary/pitr-archive.conf", primary.data_dir)
        os.chown(primary.data_dir / "pitr-archive.conf", primary_user.pw_uid, primary_user.pw_gid)
        with open(primary.conf_file, "a") as conf:  # as 45-apply-on-primary.sh writes it
            conf.write(f"\n# added by pitr-bundle: archiving of {CLUSTER} to the backup host "
                       "(last: it must win)\ninclude 'pitr-archive.conf'\n")
        lines = (scripts / "primary/pg_hba.conf.lines").read_text().splitlines()
        # only the bundle's block allows replication: once it is gone the standby cannot return
        primary.hba(["local all all trust", "host all all 127.0.0.1/32 trust",
                     f"# BEGIN pitr-bundle {CLUSTER}",
                     *[line for line in lines if line and not line.startswith("#")],
                     f"# END pitr-bundle {CLUSTER}"], replace=True)
        primary.start()
        primary.psql(f"create role replicator with replication login password '{PASSWORD}'")
        # the primary-side scripts ask the server as its OS user over the local socket
        primary.psql(f'create role "{pg.DEFAULT_OS_USER}" superuser login')
        primary.psql(f"select pg_create_physical_replication_slot('{SLOT}')")
        primary.psql("create table t (id int primary key, note text)")
        pghome.symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        primary.psql("insert into t values (1, 'A')")
        segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("select pg_switch_wal()")
        wait_for("archived", lambda: any(archive.glob(f"*/{segment}")))
        took = run([scripts / "snapshot.sh"])
        assert "no dataset yet" not in took.stderr, took.stderr
        snapshot = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", f"{pool}/{CLUSTER}"],
                                  capture_output=True, text=True).stdout.split()[0].split("@")[1]
        # installers install the bundle's own files: INSTALLER_PATH says where their bundle is
        run([rebase(scripts / "70-install-snapshot-cron.sh", root / "run/70.sh",
                    INSTALLER_PATH=str(scripts / "70-install-snapshot-cron.sh"),
                    CRON_FILE=str(installed["SNAPSHOT_CRON"]),
                    SNAPSHOT_SCRIPT=str(installed["SNAPSHOT_SCRIPT"]),
                    RETENTION_SCRIPT=str(installed["RETENTION_SCRIPT"]))])
        run([rebase(scripts / "75-install-drill-cron.sh", root / "run/75.sh",
                    INSTALLER_PATH=str(scripts / "75-install-drill-cron.sh"),
                    CRON_FILE=str(installed["DRILL_CRON"]), DRILL_SCRIPT=str(installed["DRILL_SCRIPT"]),
                    RESTORE_SCRIPT=str(installed["RESTORE_SCRIPT"]))])
        assert all(path.is_file() for path in installed.values())
        shutil.copy(bundle / "host/monitor.sh", check)  # what 80-install-monitor.sh installs
        assert re.search(rf"^\s*check_cluster {CLUSTER} ", check.read_text(), re.M)

        # --- the spec says retired: true ----------------------------------------------------
        cluster_file = specs / f"clusters/{CLUSTER}.yaml"
        cluster_file.write_text("retired: true\n" + cluster_file.read_text())
        built = pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
        assert f"removed    {scripts}/60-standby.sh  (cluster {CLUSTER} is retired)" in built.stdout
        assert f"retired    {CLUSTER}: removed" in built.stdout

        # the primary side first: the include, its line and the hba block out, restart, slot
        remove = rebase(scripts / "primary/45-remove-from-primary.sh", root / "run/a/b/45-remove.sh",
                        MOUNT_SCRIPT=str(system / f"sbin/pitr-archive-mount-{CLUSTER}"),
                        UNIT_FILE=str(system / f"units/pitr-archive-mount-{CLUSTER}.service"),
                        SUDOERS_FILE=str(system / f"sudoers.d/pitr-archive-{CLUSTER}"),
                        RC_LOCAL=str(system / "rc.local"),
                        # the primary's NFS mount of the archive: the derived spec puts it at the
                        # backup host's archive path, now a dataset's mount (the removal's
                        # umount would take the dataset away)
                        ARCHIVE_MOUNT=str(root / "pgarch"))
        remove_args = [remove, "--psql", client_tools / "psql", "--socket-dir", primary.socket_dir]
        started = primary.psql("select pg_postmaster_start_time()")
        removed = run([*remove_args, "--restart", "--yes"], env=pg.client_env())
        assert primary.psql("select pg_postmaster_start_time()") != started, removed.stderr
        assert primary.psql("show archive_mode") == "off"
        assert primary.psql("show archive_command") in ("", "(disabled)")
        assert primary.psql(f"select count(*) from pg_replication_slots where slot_name = '{SLOT}'") == "0"
        conf = primary.conf_file.read_text()
        assert "pitr-archive.conf" not in conf and "added by pitr-bundle" not in conf
        assert not (primary.data_dir / "pitr-archive.conf").exists()
        assert f"pitr-bundle {CLUSTER}" not in primary.hba_file.read_text()
        assert "host all all 127.0.0.1/32 trust" in primary.hba_file.read_text()
        assert not helper.exists()
        again = run([*remove_args, "--restart", "--yes"], env=pg.client_env())
        assert "run:" not in again.stderr, again.stderr
        assert f"replication slot {SLOT}: already dropped" in again.stderr

        # the backup host: refused while the archive's WAL is fresh
        retire = rebase(scripts / "90-retire.sh", root / "run/a/90-retire.sh",
                        INSTALLER_PATH=str(scripts / "90-retire.sh"),
                        MONITOR_CHECK=str(check), EXPORTS_FILE=str(system / "exports"),
                        **{name: str(path) for name, path in installed.items()})
        refused = run([retire], expect=3)
        assert "WAL still arrives" in refused.stderr and "45-remove-from-primary.sh" in refused.stderr
        assert (pgdata / "postmaster.pid").exists() and all(p.exists() for p in installed.values())
        # an hour later nothing new has come
        hour_ago = time.time() - 3600
        for path in archive.rglob("*"):
            os.utime(path, (hour_ago, hour_ago))
        done = run([retire])
        assert f"done: cluster {CLUSTER} retired" in done.stderr, done.stderr
        assert not (pgdata / "postmaster.pid").exists() and standby.port_free()
        assert not any(path.exists() for path in installed.values())
        assert not re.search(rf"check_cluster {CLUSTER} ", check.read_text())
        assert check.read_bytes() == (bundle / "host/monitor.sh").read_bytes()
        assert zfs_exists(f"{pool}/{CLUSTER}")
        assert subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", f"{pool}/{CLUSTER}"],
                              capture_output=True, text=True).stdout.count("@pitr-") == 1
        assert (pgdata / "PG_VERSION").exists() and any(archive.glob(f"*/{segment}"))
        assert f"kept: dataset {pool}/{CLUSTER} (1 snapshot(s))" in done.stderr
        # the archive, a dataset of its own since 20-datasets.sh made it (docs/archive-datasets.md),
        # snapshotted with the cluster's
        archive_ds = f"{pool}/pg_arch/{CLUSTER}"
        assert (f"kept: WAL archive {mnt}/pg_arch/{CLUSTER}, dataset {archive_ds} (1 snapshot(s))"
                in done.stderr), done.stderr
        assert f"cluster {CLUSTER}: already retired" in run([retire]).stderr

        # destroy the data: only with --yes
        run([retire, "--destroy-data"], expect=4)
        assert zfs_exists(f"{pool}/{CLUSTER}")
        dry = run([retire, "--destroy-data", "--dry-run"])
        assert f"would run: zfs destroy -R {archive_ds}" in dry.stderr, dry.stderr
        assert zfs_exists(archive_ds) and any(archive.glob(f"*/{segment}"))
        destroyed = run([retire, "--destroy-data", "--yes"])
        assert f"run: zfs unmount {pool}/{CLUSTER}" in destroyed.stderr
        assert f"run: zfs destroy -R {pool}/{CLUSTER}" in destroyed.stderr
        assert not zfs_exists(f"{pool}/{CLUSTER}")
        # the archive's dataset and its snapshot, and its mountpoint folder
        assert f"run: zfs unmount {archive_ds}" in destroyed.stderr
        assert f"run: zfs destroy -R {archive_ds}" in destroyed.stderr
        assert not zfs_exists(archive_ds)
        assert not zfs_exists(f"{archive_ds}@{snapshot}")
        assert not (mnt / "pg_arch" / CLUSTER).exists()
        # the other cluster and the shared datasets untouched
        assert zfs_exists(f"{pool}/{OTHER}") and zfs_exists(f"{pool}/pg_arch")
        assert f"cluster {CLUSTER}: already retired" in run([retire, "--destroy-data", "--yes"]).stderr
    finally:
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", CLUSTER, "--", str(pghome / "bin/pg_ctl"), "-D", str(pgdata),
                            "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        drop_user(CLUSTER)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
