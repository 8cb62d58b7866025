"""The real-OpenZFS tier: the generated host bundle, unmodified, inside a Debian 12 qemu guest
with the OpenZFS 2.x kernel module (Debian's zfs-dkms) and Debian's PostgreSQL 15.

tests/qemu/build-image.sh builds the guest image once (cached, ~15 min on a fresh machine);
each run boots it with 13 virtual disks whose /dev/disk/by-id names the spec uses, runs
tests/qemu/bundle-run.sh against the bundle, and brings back the console log, the scripts'
outputs and the exit status. Run alone: python -m pytest -m qemu -s
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, backend_missing, pitr_bundle
from test_system_guest import debian_pg_version, guest_image

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

DISK = "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_zdisk{:02d}"


def guest_specs(folder: Path, pg_version: str) -> Path:
    (folder / "hosts").mkdir(parents=True)
    (folder / "clusters").mkdir()
    disks = "\n".join(f"        - {DISK.format(n)}" for n in range(1, 12))
    (folder / "hosts/guest.yaml").write_text(textwrap.dedent("""\
        name: guest
        address: 127.0.0.1
        pool:
          name: zp1
          ashift: 12
          vdevs:
            - type: raidz1
              disks:
        {disks}
          log: {{type: single, devices: [{log}]}}
          spares: [{spare}]
          properties: {{compression: lz4, atime: "off", canmount: "off", dedup: "off"}}
        # native encryption of the cluster's datasets (a key file per cluster, placed by
        # run.sh before 20-datasets.sh): every step below runs on encrypted datasets
        encryption: {{key: file}}
        datasets:
          pg_home: {{name: zp1/pg_home, mountpoint: /pg_home}}
          pg_arch: {{name: zp1/pg_arch, mountpoint: /pg_arch}}
          pg_log: {{name: zp1/pg_log, mountpoint: /pg_log}}
        """).format(disks=textwrap.indent(disks, "    ").replace("            -", "        -"),
                    log=DISK.format(12), spare=DISK.format(13)))
    (folder / "clusters/pgq.yaml").write_text(textwrap.dedent("""\
        name: pgq
        host: guest
        dataset: zp1/pgq
        mountpoint: /pgq
        port: 19299
        postgres: {version: "PG_VERSION"}
        primary:
          address: 127.0.0.1
          port: 5499
          data_dir: /var/tmp/primary
          archive_mount: /pg_arch/pgq
          archive_script: /usr/local/bin/pitr-archive-wal
          archive_via_sudo: false
          archive_requires_mount: false
        standby:
          hot_standby: true
          settings: {shared_buffers: 32MB, max_connections: 100}
        snapshots:
          keep: {hourly: 0, daily: 2, weekly: 0, monthly: 0, yearly: 0}
        archive: {pitr_window_days: 1}  # what daily 2 keeps at a daily schedule (validate's check)
        """).replace("PG_VERSION", pg_version))
    return folder


def test_bundle_in_openzfs_guest(tmp_path):
    if os.geteuid() != 0:
        backend_missing("the qemu tier needs root (image build, loop mounts)")
    specs = guest_specs(tmp_path / "specs", debian_pg_version(guest_image()))  # the guest's 15.x
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    share = tmp_path / "share"
    share.mkdir()
    shutil.copytree(tmp_path / "out/guest", share / "bundle")
    shutil.copy(REPO / "tests/qemu/bundle-run.sh", share / "run.sh")
    result = subprocess.run(["bash", str(REPO / "tests/qemu/run-guest.sh"), str(share)],
                            capture_output=True, text=True, timeout=3600,
                            env=dict(os.environ, PITR_QEMU_TIMEOUT=os.environ.get("PITR_QEMU_TIMEOUT", "1500")))
    guest_log = (share / "guest.log").read_text(errors="replace") if (share / "guest.log").exists() else ""
    print(result.stderr[-3000:])
    print(guest_log)
    assert result.returncode == 0, (
        f"guest run exit {result.returncode}\n{guest_log[-6000:]}\n"
        f"console tail:\n{(share / 'console.log').read_text(errors='replace')[-3000:] if (share / 'console.log').exists() else ''}")
    assert "PASS raidz1 of 11 by-id disks" in guest_log
    assert "PASS restored to T: A and not B" in guest_log
    # the cluster's dataset and its archive's snapshotted in one zfs call (kernel OpenZFS)
    assert "PASS OpenZFS: one zfs snapshot call for both" in guest_log
    # encryption: refused without its key, then aes-256-gcm with the key loaded, and the
    # restore above ran from an encrypted snapshot
    assert "PASS encryption: refused without the key file, nothing created" in guest_log
    assert "PASS encryption: zp1/pgq aes-256-gcm, key available" in guest_log
    assert "PASS encryption: zp1/pg_arch/pgq aes-256-gcm, key available" in guest_log
