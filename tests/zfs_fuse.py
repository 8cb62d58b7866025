"""Run Debian's zfs-fuse (real ZFS, pool version 23, in user space) for the tests.

See docs/testing.md: it needs root, a pid file that is not stale, and waits
until `zpool list` answers. Pools live on sparse files inside the test's own folder.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

DAEMON = "/sbin/zfs-fuse"


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "zfs-fuse needs root"
    if not Path(DAEMON).exists():
        return f"{DAEMON} missing: apt-get install zfs-fuse (tests/run installs it)"
    if not Path("/dev/fuse").exists():
        return "/dev/fuse missing"
    return None


def answering() -> bool:
    return subprocess.run(["zpool", "list"], capture_output=True).returncode == 0


class ZfsFuse:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.pid_file = state_dir / "zfs-fuse.pid"
        self.started_here = False

    def start(self) -> None:
        if answering():  # a daemon from an earlier run or the machine: use it
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)  # a stale pid file makes it exit 1 silently
        subprocess.run([DAEMON, "--pidfile", str(self.pid_file), "--no-kstat-mount"], check=True)
        self.started_here = True
        for _ in range(100):
            if answering():
                return
            time.sleep(0.1)
        raise RuntimeError("zfs-fuse started but zpool list never answered")

    def stop(self) -> None:
        if not self.started_here:
            return
        subprocess.run(["zfs", "umount", "-a"], capture_output=True)
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)


def destroy_pool(name: str) -> None:
    """Destroy a test pool; zfs-fuse sometimes says "busy" right after an unmount: retry."""
    for _ in range(30):
        if subprocess.run(["zpool", "list", name], capture_output=True).returncode != 0:
            return
        if subprocess.run(["zpool", "destroy", "-f", name], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"could not destroy test pool {name}")


def sparse_disks(folder: Path, count: int, size: str = "128M") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    disks = []
    for index in range(count):
        disk = folder / f"disk{index:02d}"
        subprocess.run(["truncate", "-s", size, str(disk)], check=True)
        disks.append(disk)
    return disks
