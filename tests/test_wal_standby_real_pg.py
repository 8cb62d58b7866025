"""archive.method standby for real: zfs-fuse + PostgreSQL 17, on the example specs' bundle derived
by tests/derived_example.py (disks, addresses, ports, folders; pg168104 dropped): pg168121
with the example's archive.method, unset, so standby (the default from 9.5 with a slot).

The primary starts as an existing host of the NFS path left it: the bundle of the same specs
with `archive: {method: nfs}` (as a bundle built before standby became the default) ran its
primary step (helper, mount unit and sudo rule under a
test folder, systemctl and visudo stubbed, no mount; archive_mode on with the helper's
archive_command, restarted), which also made the replication role (the password from
PITR_REPLICATION_PASSWORD) and the slot. The backup standby is then set up by the standby
bundle and streams through the slot; the standby bundle's primary step, run for real with
--restart, moves the primary off the NFS path (refused before the standby streams): the
include keeps only archive_timeout and the slot cap, archive_mode is off after the restart,
and the helper, unit and sudo rule are gone. So the primary has NO archive_command. The backup standby, set up by the bundle's user, base backup and standby steps,
archives what it receives (archive_mode = always) through the helper the standby step installs,
into the archive folders the NFS path uses. Then: a restore with restore.sh to a time T has row A
and not row B; the monitor's continuity check is OK; a row committed but never in a whole
segment (the primary crashes before it switches) is in no archive file, yet a snapshot of the
standby taken after the crash restores it (--latest: recovery reads the clone's pg_wal once
restore_command has nothing more); and the failing twin: a segment deleted from the archive is
named as a gap by the monitor."""

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
import yaml

import pg_backend as pg
from conftest import backend_missing, pitr_bundle
from derived_example import CLUSTER, derived_specs
from test_continuity_zfs_pg import missing_perfdata, segments
from test_pitr_zfs_pg import utc
from test_primary_real_pg import rebase, stubs
from test_standby_real_pg import PASSWORD, compose_pghome, drop_user, run, wait_for
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = [pytest.mark.zfs, pytest.mark.postgres]

MAJOR = 17
STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT = 28411, 28412, 28413


def standby_specs(root: Path) -> Path:
    """The derived specs (made before by derived_specs, on the NFS path) with pg168121's
    archive.method back to the example's: unset, so standby (9.5+ with a slot)."""
    specs = root / "specs"
    cluster_file = specs / f"clusters/{CLUSTER}.yaml"
    spec = yaml.safe_load(cluster_file.read_text())
    del spec["archive"]["method"]
    cluster_file.write_text(yaml.safe_dump(spec))
    return specs


def test_standby_archives_without_nfs(zfs_fuse, client_tools):
    if MAJOR not in pg.available_majors():
        backend_missing(f"PostgreSQL {MAJOR} binaries: run tests/backends/install-postgres.sh")
    # a short root: the clone's unix socket lives in its data folder (at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="pw", dir="/tmp"))
    root.chmod(0o755)
    pg.grant_traverse(root)
    cluster = CLUSTER
    drop_user(cluster)
    pg.ensure_os_user(pg.DEFAULT_OS_USER)
    pool = "pw" + os.urandom(3).hex()
    disks = sparse_disks(root / "disks", 3, "256M")
    specs = derived_specs(root, pool, disks, (STANDBY_PORT, PRIMARY_PORT, RESTORE_PORT), major=MAJOR)
    pitr_bundle("build", str(specs), "-o", str(root / "out-nfs"), check=True)  # what ran before
    specs = standby_specs(root)
    pitr_bundle("build", str(specs), "-o", str(root / "out"), check=True)
    bundle = root / "out/pitr1"
    facts = next(c for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]
                 if c["name"] == cluster)
    paths = facts["paths"]
    scripts = bundle / f"clusters/{cluster}"
    # the primary's footprint: no NFS export, mount, sudo rule or helper in the bundle
    assert "no cluster archives over NFS" in (bundle / "host/40-nfs-exports.sh").read_text()
    assert sorted(p.name for p in (scripts / "primary").iterdir()) == [
        "45-apply-on-primary.sh", "check-primary.sh", "pg_hba.conf.lines", "pitr-archive.conf"]
    check = bundle / "host/monitor.sh"
    primary = pg.PgServer(MAJOR, root / "primary/data", PRIMARY_PORT)
    pghome_bin = Path(paths["pghome"]) / "bin"
    helper = Path(f"/usr/local/sbin/pitr-archive-wal-{cluster}")
    archive = Path(paths["archive"])
    started = time.monotonic()
    try:
        run([bundle / "host/10-pool.sh", "--yes"])
        run([bundle / "host/20-datasets.sh"])
        run([scripts / "30-user.sh"])

        # --- the primary as the NFS path left it: the nfs bundle's step, run for real ---------
        primary.initdb("--wal-segsize=1")
        primary.start()
        # the primary step asks the server as its OS user over the socket (peer, as postgres on
        # Debian and RHEL): that user's role here
        primary.psql(f'create role "{pg.DEFAULT_OS_USER}" superuser login')
        system = root / "system"  # the NFS path's /usr/local/sbin, units, sudoers.d, rc.local
        (system / "sudoers.d").mkdir(parents=True)
        old_helper = system / f"sbin/pitr-archive-wal-{cluster}"
        pieces = dict(HELPER=str(old_helper), MOUNT_SCRIPT=f"{system}/sbin/pitr-archive-mount-{cluster}",
                      UNIT_FILE=f"{system}/units/pitr-archive-mount-{cluster}.service",
                      SUDOERS_FILE=f"{system}/sudoers.d/pitr-archive-{cluster}", RC_LOCAL=f"{system}/rc.local")
        nfs_step = rebase(root / f"out-nfs/pitr1/clusters/{cluster}/primary/45-apply-on-primary.sh",
                          root / "run/nfs/45-apply-on-primary.sh", **pieces, STATE_DIR=f"{system}/state",
                          ARCHIVE_COMMAND=f'{old_helper} "%p" "%f"')
        stub_bin = stubs(root / "stubs")
        step_env = pg.client_env({"PITR_REPLICATION_PASSWORD": PASSWORD,
                                  "PATH": f"{stub_bin}:{os.environ['PATH']}"})
        old = run([nfs_step, "--psql", client_tools / "psql", "--socket-dir", primary.socket_dir,
                   "--no-mount", "--restart"], env=step_env)
        # the role the step made, with the password given
        assert "create role replicator (LOGIN REPLICATION, with the password given): done" in old.stderr
        assert primary.psql("show archive_mode") == "on"
        assert str(old_helper) in primary.psql("show archive_command")
        # (the derived spec archives without sudo: no sudo rule)
        for piece in ("HELPER", "MOUNT_SCRIPT", "UNIT_FILE"):
            assert Path(pieces[piece]).exists(), piece

        # the standby bundle's step, before the backup standby streams: refused, nothing changed
        step_args = [rebase(scripts / "primary/45-apply-on-primary.sh", root / "run/standby/45-apply-on-primary.sh",
                            **pieces, ARCHIVE_MOUNT=f"{root}/pgarch"),
                     "--psql", client_tools / "psql", "--socket-dir", primary.socket_dir, "--restart"]
        early = run(step_args, env=step_env, expect=3)
        assert "the backup standby does not stream through slot" in early.stderr, early.stderr
        assert primary.psql("show archive_mode") == "on" and old_helper.exists()
        primary.psql("create table t (id int primary key, note text)")

        # --- the backup standby archives what it receives -------------------------------------
        Path(paths["pghome"]).symlink_to(compose_pghome(root / "soft", MAJOR, client_tools))
        env = dict(os.environ, PITR_REPLICATION_PASSWORD=PASSWORD)
        run([scripts / "50-basebackup.sh"], env=env)
        run([scripts / "60-standby.sh"], env=env)
        assert helper.read_bytes() == (scripts / "pitr-archive-wal.sh").read_bytes()
        owner = pwd.getpwnam(cluster)
        assert (archive.stat().st_uid, oct(archive.stat().st_mode & 0o7777)) == (owner.pw_uid, "0o2750")
        standby = pg.PgServer(MAJOR, Path(paths["pgdata"]), STANDBY_PORT)
        wait_for("streaming", lambda: standby.psql("select status from pg_stat_wal_receiver") == "streaming")
        assert standby.psql("show archive_mode") == "always"
        slot = yaml.safe_load((specs / f"clusters/{cluster}.yaml").read_text())["replication"]["slot"]
        assert primary.psql(f"select active from pg_replication_slots where slot_name = '{slot}'") == "t"

        # --- the primary moved off the NFS path by the standby bundle's step ------------------
        step = run(step_args, env=step_env)
        assert "this run moves pg168121 off it" in step.stderr, step.stderr
        include = [line for line in (primary.data_dir / "pitr-archive.conf").read_text().splitlines()
                   if not line.startswith("#")]
        assert include == ["archive_timeout = '60'", "max_slot_wal_keep_size = '20480'"], step.stderr
        assert primary.psql("show archive_mode") == "off"
        # no configuration file sets either ('(disabled)' is all archive_command shows while off)
        assert primary.psql("select count(*) from pg_file_settings "
                            "where name in ('archive_mode', 'archive_command')") == "0"
        assert primary.psql("show archive_timeout") == "1min"
        assert primary.psql(f"select slot_type from pg_replication_slots where slot_name = '{slot}'") == "physical"
        for piece in ("HELPER", "MOUNT_SCRIPT", "UNIT_FILE", "SUDOERS_FILE"):
            assert not Path(pieces[piece]).exists(), piece
        assert "no longer archives over NFS from this node" in step.stderr
        wait_for("streaming again after the restart", lambda: primary.psql(
            f"select active from pg_replication_slots where slot_name = '{slot}'") == "t")
        again = run(step_args, env=step_env)
        assert "NFS path of an earlier bundle" not in again.stderr, again.stderr

        def write_and_switch(note: str, switches: int) -> str:
            for _ in range(switches):
                primary.psql(f"insert into t values ((select coalesce(max(id), 0) + 1 from t), '{note}')")
                segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
                primary.psql("select pg_switch_wal()")
                wait_for(f"{segment} archived by the standby", lambda s=segment: any(archive.glob(f"*/{s}")))
            return segment

        first = write_and_switch("A", 2)
        (archived,) = archive.glob(f"*/{first}")
        assert archived.stat().st_uid == owner.pw_uid and archived.stat().st_size == 1 << 20
        lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("replayed", lambda: standby.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == "t")
        standby.psql("checkpoint")
        assert "took " in run([scripts / "snapshot.sh"]).stderr
        time.sleep(1.1)
        target = utc(time.time())
        time.sleep(1.1)
        write_and_switch("B", 3)

        # --- restore to T: A, not B -----------------------------------------------------------
        restored = run([scripts / "restore.sh", "--target-time", target, "--name", "t1", "--yes"])
        assert "is open" in restored.stderr
        clone = pg.PgServer(MAJOR, root / f"mnt/restore/{cluster}-t1/pg_root", RESTORE_PORT)
        assert clone.psql("select string_agg(distinct note, ',') from t") == "A"
        # the clone never archives (restore.sh forces archive_mode off over the standby's always)
        assert clone.psql("show archive_mode") == "off"
        run([scripts / "restore.sh", "--cleanup", "t1", "--yes"])

        # --- continuity: OK ---------------------------------------------------------------------
        ok = subprocess.run([str(check), "--cluster", cluster], capture_output=True, text=True)
        assert "archive gap" not in ok.stdout and "not checked" not in ok.stdout, ok.stdout
        assert missing_perfdata(ok.stdout) == "0", ok.stdout

        # --- RPO: a row the primary committed, streamed but never in a whole segment ----------
        primary.psql("insert into t values (1000, 'C')")
        open_segment = primary.psql("select pg_walfile_name(pg_current_wal_lsn())")
        c_lsn = primary.psql("select pg_current_wal_lsn()")
        wait_for("C received", lambda: standby.psql(f"select pg_last_wal_receive_lsn() >= '{c_lsn}'") == "t")
        primary.stop(mode="immediate")
        assert not any(archive.glob(f"*/{open_segment}")), "the open segment is not archived"
        standby.psql("checkpoint")
        assert "took " in run([scripts / "snapshot.sh"]).stderr
        latest = run([scripts / "restore.sh", "--latest", "--name", "t2", "--yes"])
        assert "is open" in latest.stderr
        clone = pg.PgServer(MAJOR, root / f"mnt/restore/{cluster}-t2/pg_root", RESTORE_PORT)
        assert clone.psql("select note from t where id = 1000") == "C", latest.stderr
        run([scripts / "restore.sh", "--cleanup", "t2", "--yes"])

        # --- the failing twin: a segment missing from the archive is named ----------------------
        after = segments(archive)
        gone = after[-3]
        gone.unlink()
        gap = subprocess.run([str(check), "--cluster", cluster], capture_output=True, text=True)
        assert gap.returncode == 2, gap.stdout
        assert f"{cluster}: archive gap: {gone.name} missing; restorable up to {after[-4].name}" in gap.stdout, \
            gap.stdout
        assert missing_perfdata(gap.stdout) == "1"
        print(f"wal standby test body: {time.monotonic() - started:.1f} s")
    finally:
        for data in (root / f"mnt/restore/{cluster}-t1/pg_root", root / f"mnt/restore/{cluster}-t2/pg_root",
                     Path(paths["pgdata"])):
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", cluster, "--", str(pghome_bin / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "stop"], capture_output=True)
        primary.stop(mode="immediate", check=False)
        helper.unlink(missing_ok=True)
        drop_user(cluster)
        time.sleep(0.5)
        destroy_pool(pool)
        shutil.rmtree(root, ignore_errors=True)
