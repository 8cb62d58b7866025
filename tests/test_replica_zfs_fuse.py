"""The second copy on real ZFS (zfs-fuse) through a real sshd: the example specs' source pitr1
and replica pitr2, derived (disks, addresses, ports, folders; send_privilege sudo, since
zfs-fuse lets no user but root run zfs). Both pools live in one zfs-fuse daemon; the source's
sshd listens on 127.0.0.1 at an unusual port; every step is a script of the two bundles, run
as an operator would: the source's datasets script, the replica's key script, the source's
sender setup with the key it printed, the replica's pull, its monitor.

What zfs-fuse cannot show (raw sends of encrypted datasets, resume tokens, bookmarks, `zfs
allow`) is the OpenZFS guest's part. The snapshots here are taken by hand with snapshot.sh's
names and properties: what travels is the point, not what a standby holds."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import pitr_bundle
from derived_example import CLUSTER, derived_replica, derived_specs
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = pytest.mark.zfs

SSH_PORT = 22977
PORTS = (27490, 27491, 27492)  # nothing of the cluster is started here
SEND_USER = "pitr-send"
# what the two bundles install outside the test's folder (names fixed by the bundle, not the
# spec): taken out again at the end
LEFTOVERS = ["/etc/pitr-bundle/replica/pitr1", "/usr/local/sbin/pitr-send-pitr2",
             "/etc/sudoers.d/pitr-send-pitr2", "/var/lib/pitr-bundle/send-pitr2",
             "/var/lib/pitr-bundle/replica-pitr1.state", "/var/lib/pitr-send",
             "/run/lock/pitr-replicate-pitr1.lock"]
PROPS = ("pitr-bundle:redo-wal", "pitr-bundle:system-id", "pitr-bundle:major",
         "pitr-bundle:timeline")


def zfs(*args: str, check: bool = True) -> str:
    result = subprocess.run(["zfs", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"zfs {' '.join(args)}: {result.stderr}")
    return result.stdout


def run(script: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(script), *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == expect, (
        f"{script.name} {' '.join(args)}: exit {result.returncode} (expected {expect})\n"
        f"{result.stdout}\n{result.stderr}")
    return result


def snapshot_like_snapshot_sh(dataset: str, archive: str, when: datetime, redo: str) -> str:
    """The cluster's and the archive's snapshot under snapshot.sh's name, with its properties."""
    name = "pitr-" + when.strftime("%Y%m%dT%H%M%SZ")
    for ds in (dataset, archive):
        zfs("snapshot", f"{ds}@{name}")
        for prop, value in zip(PROPS, (redo, "7301234567890123456", "17", "1")):
            zfs("set", f"{prop}={value}", f"{ds}@{name}")
    return name


def start_sshd(folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")],
                   check=True)
    (folder / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\n"
        f"PidFile {folder}/sshd.pid\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin no\nStrictModes yes\n"
        "AuthorizedKeysFile .ssh/authorized_keys\nLogLevel VERBOSE\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    daemon = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
                              stderr=open(folder / "sshd.log", "w"))
    for _ in range(50):
        if subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{SSH_PORT}"],
                          capture_output=True).returncode == 0:
            return daemon
        time.sleep(0.1)
    raise AssertionError(f"sshd did not listen:\n{(folder / 'sshd.log').read_text()}")


def clean_leftovers() -> None:
    subprocess.run(["userdel", SEND_USER], capture_output=True)
    for path in LEFTOVERS:
        p = Path(path)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    for folder in ("/etc/pitr-bundle/replica", "/etc/pitr-bundle"):
        try:
            Path(folder).rmdir()
        except OSError:
            pass


@pytest.fixture
def two_hosts(zfs_fuse, tmp_path):
    try:
        pwd.getpwnam(SEND_USER)
        pytest.fail(f"user {SEND_USER} exists before the test: a leftover, or this machine's own")
    except KeyError:
        pass
    if not Path("/usr/sbin/sshd").exists() or not shutil.which("sudo"):
        pytest.fail("openssh-server and sudo are needed (tests/run installs them)")
    source_pool, replica_pool = "rsrc" + secrets.token_hex(2), "rdst" + secrets.token_hex(2)
    disks = sparse_disks(tmp_path / "disks", 7)
    specs = derived_specs(tmp_path, source_pool, disks[:3], PORTS, major=None, replica=True)
    derived_replica(specs, tmp_path, replica_pool, disks[3:], SSH_PORT)
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    sshd = None
    try:
        sshd = start_sshd(tmp_path / "sshd")
        yield tmp_path, source_pool, replica_pool, tmp_path / "out/pitr1", tmp_path / "out/pitr2"
    finally:
        if sshd:
            sshd.send_signal(signal.SIGTERM)
            sshd.wait(10)
        destroy_pool(replica_pool)
        destroy_pool(source_pool)
        clean_leftovers()


def test_pull_full_then_incremental_held_pruned_and_fenced(two_hosts):
    root, src, dst, source, replica = two_hosts
    dataset, archive = f"{src}/{CLUSTER}", f"{src}/pg_arch/{CLUSTER}"
    copy, archive_copy = f"{dst}/pitr1/{CLUSTER}", f"{dst}/pitr1/pg_arch/{CLUSTER}"

    # both hosts as their bundles make them
    run(source / "host/10-pool.sh", "--yes")
    run(source / "host/20-datasets.sh")
    run(replica / "host/10-pool.sh", "--yes")
    run(replica / "host/20-datasets.sh")
    mountpoint = Path(zfs("get", "-H", "-o", "value", "mountpoint", dataset).strip())
    archive_dir = Path(zfs("get", "-H", "-o", "value", "mountpoint", archive).strip())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    (mountpoint / "base").write_text("the standby's files\n")
    (archive_dir / "000000010000000000000001").write_bytes(os.urandom(4096))
    first = [snapshot_like_snapshot_sh(dataset, archive, now - timedelta(hours=h), f"00000001000000000000000{4 - h}")
             for h in (3, 2)]

    # the replica's key first: it refuses (exit 3) without the source's host key, then takes it
    key = run(replica / "host/25-replica-key.sh", expect=3)
    assert "no host key of pitr1 yet" in key.stderr
    run(replica / "host/replicate.sh", expect=3)  # no known host key: refused, nothing pulled
    key = run(replica / "host/25-replica-key.sh", "--source-host-key", str(root / "sshd/host_key.pub"))
    public = next(line for line in key.stdout.splitlines() if line.startswith("ssh-ed25519 "))
    (root / "replica.pub").write_text(public + "\n")

    # the source: without the key everything but the key (exit 3), with it done; twice is a no-op
    run(source / "host/26-replica-sender-pitr2.sh", expect=3)
    run(source / "host/26-replica-sender-pitr2.sh", "--public-key", str(root / "replica.pub"))
    again = run(source / "host/26-replica-sender-pitr2.sh")
    assert "run:" not in again.stderr, again.stderr

    # the first pull: the oldest in full, the rest incremental; properties travel
    run(replica / "host/replicate.sh")
    assert sorted(n.split("@")[1] for n in zfs("list", "-H", "-t", "snapshot", "-o", "name", "-r", copy).split()) == sorted(first)
    archived = zfs("list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", archive_copy).split()
    assert len(archived) == 3  # the two of snapshot.sh and the one the pull asked for
    for name in first:
        assert zfs("get", "-H", "-p", "-o", "value", "guid", f"{copy}@{name}") == zfs(
            "get", "-H", "-p", "-o", "value", "guid", f"{dataset}@{name}")
    assert zfs("get", "-H", "-o", "value", "pitr-bundle:redo-wal", f"{copy}@{first[1]}").strip() == "000000010000000000000002"
    assert zfs("get", "-H", "-o", "value", "readonly", copy).strip() == "on"
    assert zfs("get", "-H", "-o", "value", "mounted", copy).strip() == "no"
    # the newest sent snapshot of each dataset is held on the source, nothing else
    assert zfs("get", "-H", "-o", "value", "userrefs", f"{dataset}@{first[1]}").strip() == "1"
    assert zfs("get", "-H", "-o", "value", "userrefs", f"{dataset}@{first[0]}").strip() == "0"
    assert run(replica / "host/monitor.sh").stdout.startswith("PITR OK")

    # the source prunes the snapshot the last send used (snapshot.sh's deferred destroy): the
    # hold keeps it, the next incremental still works, and the release lets it go
    newer = snapshot_like_snapshot_sh(dataset, archive, now - timedelta(hours=1), "000000010000000000000004")
    zfs("destroy", "-d", f"{dataset}@{first[1]}")
    zfs("destroy", f"{dataset}@{first[0]}")
    assert zfs("list", "-H", "-o", "name", f"{dataset}@{first[1]}").strip()
    run(replica / "host/replicate.sh")
    assert zfs("list", "-H", "-o", "name", f"{copy}@{newer}").strip()
    assert zfs("list", "-H", "-o", "name", f"{dataset}@{first[1]}", check=False) == ""  # released, gone
    assert zfs("get", "-H", "-o", "value", "userrefs", f"{dataset}@{newer}").strip() == "1"
    # the replica keeps what the source pruned
    assert zfs("list", "-H", "-o", "name", f"{copy}@{first[0]}").strip()

    # the key can run the send command only, and only its requests
    ssh = ["ssh", "-i", "/etc/pitr-bundle/replica/pitr1/id_ed25519", "-p", str(SSH_PORT),
           "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/etc/pitr-bundle/replica/pitr1/known_hosts",
           "-o", "StrictHostKeyChecking=yes", "-l", SEND_USER]
    for request in (f"zfs destroy -r {src}", f"sh -c 'zfs destroy {dataset}@{newer}'",
                    f"send {src}/pg_home - x", f"snapshot {dataset}", "list zp1/../x"):
        tried = subprocess.run(ssh + ["127.0.0.1", request], capture_output=True, text=True)
        assert tried.returncode == 3, (request, tried.returncode, tried.stderr)
        assert "refused" in tried.stderr, (request, tried.stderr)
    assert zfs("list", "-H", "-o", "name", f"{dataset}@{newer}").strip()
    assert subprocess.run(ssh + ["-t", "127.0.0.1"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL).returncode != 0  # no shell
    # from another address (the spec's from=): no login at all
    other = subprocess.run(ssh + ["-b", "127.0.0.3", "127.0.0.1", f"list {dataset}"],
                           capture_output=True, text=True)
    assert other.returncode == 255 and "Permission denied" in other.stderr, other.stderr

    # the source stops answering: the pull fails (exit 1), the monitor is CRITICAL
    (root / "sshd/sshd_config").write_text((root / "sshd/sshd_config").read_text()
                                           + "DenyUsers pitr-send\n")
    os.kill(int((root / "sshd/sshd.pid").read_text()), signal.SIGHUP)
    time.sleep(1)
    failed = run(replica / "host/replicate.sh", expect=1)
    assert "not pulled" in failed.stderr
    monitor = run(replica / "host/monitor.sh", expect=2)
    assert monitor.stdout.startswith("PITR CRITICAL") and copy in monitor.stdout, monitor.stdout
