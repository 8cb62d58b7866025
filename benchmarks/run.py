"""Benchmarks (run on demand, not in the test suite): python benchmarks/run.py
Writes benchmarks/RESULTS.md with the machine's description and the figures of this run.

1. validate / build / check of synthetic hosts with 1, 10, 100, 1000 clusters: wall time and
   peak memory of each command (a subprocess, as a user runs it), per-cluster cost.
2. snapshot runs on zfs-fuse with 0, 500, 2000 existing snapshots: time of one run (take +
   prune) and the number of zfs invocations (counted by a shim on PATH).
"""

from __future__ import annotations

import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def timed(command: list[str], env=None) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds, peak RSS (MiB) of the child, and its result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return wall, max(peak, before) // 1024, result


def synthetic_specs(folder: Path, clusters: int) -> Path:
    (folder / "hosts").mkdir(parents=True)
    (folder / "clusters").mkdir()
    disks = ", ".join(f"/dev/disk/by-id/ata-DISK{n:02d}" for n in range(11))
    (folder / "hosts/fleet.yaml").write_text(textwrap.dedent(f"""\
        name: fleet
        address: 10.0.0.1
        pool:
          name: zp1
          vdevs: [{{type: raidz1, disks: [{disks}]}}]
          log: {{type: mirror, devices: [/dev/disk/by-id/nvme-LOG1, /dev/disk/by-id/nvme-LOG2]}}
          spares: [/dev/disk/by-id/ata-SPARE]
        datasets:
          pg_home: {{name: zp1/pg_home, mountpoint: /pg_home}}
          pg_arch: {{name: zp1/pg_arch, mountpoint: /pg_arch}}
          pg_log: {{name: zp1/pg_log, mountpoint: /pg_log}}
        """))
    for n in range(clusters):
        (folder / f"clusters/c{n:04d}.yaml").write_text(textwrap.dedent(f"""\
            name: c{n:04d}
            host: fleet
            port: {20000 + n}
            postgres:
              version: "{[10, 12, 15, 17][n % 4]}.{n % 9}"
              configure: [--prefix=/usr/local/pgsql, --with-openssl, 'CFLAGS=-O2 -g']
            primary: {{address: 10.1.{n // 250}.{n % 250 + 1}, ha_partner: 10.2.{n // 250}.{n % 250 + 1}}}
            """))
    return folder


def bench_build(rows: list[str]) -> None:
    rows.append("## 1. validate, build, check\n")
    rows.append("| clusters | validate s | build s | build MiB | build ms/cluster | files | "
                "shellcheck cold s | shellcheck warm s |")
    rows.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    py = [sys.executable, "-m", "generator"]
    for count in (1, 10, 100, 1000):
        work = Path(tempfile.mkdtemp(prefix="pitr-bench-"))
        specs = synthetic_specs(work / "specs", count)
        v_wall, _, _ = timed(py + ["validate", str(specs)])
        b_wall, b_mem, _ = timed(py + ["build", str(specs), "-o", str(work / "out")])
        files = sum(1 for p in (work / "out/fleet").rglob("*") if p.is_file())
        cold = warm = "-"
        if count <= 100:
            env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
            cold_s, _, _ = timed(py + ["check", str(work / "out/fleet"), "--no-bats"], env=env)
            warm_s, _, _ = timed(py + ["check", str(work / "out/fleet"), "--no-bats"], env=env)
            cold, warm = f"{cold_s:.1f}", f"{warm_s:.2f}"
        rows.append(f"| {count} | {v_wall:.2f} | {b_wall:.2f} | {b_mem} | {1000 * b_wall / count:.1f} | "
                    f"{files} | {cold} | {warm} |")
        print(rows[-1], flush=True)
        shutil.rmtree(work, ignore_errors=True)
    rows.append("\nTargets: build of 1,000 clusters < 5 s; build + shellcheck of 100 clusters < 10 s; "
                "a second check of an unchanged bundle < 1 s. The bats suites (`check` without "
                "`--no-bats`) run per cluster and are not in these figures.\n")


def bench_snapshots(rows: list[str]) -> None:
    from zfs_fuse import ZfsFuse, destroy_pool, sparse_disks, unavailable_reason

    rows.append("## 2. snapshot runs on zfs-fuse\n")
    reason = unavailable_reason()
    if reason:
        rows.append(f"Not measured: {reason}.\n")
        return
    work = Path(tempfile.mkdtemp(prefix="pitr-bench-zfs-"))
    daemon = ZfsFuse(work / "daemon")
    daemon.start()
    pool = "pb" + secrets.token_hex(3)
    disk = sparse_disks(work / "disks", 1, "512M")[0]
    specs = work / "specs"
    (specs / "hosts").mkdir(parents=True)
    (specs / "clusters").mkdir()
    (specs / "hosts/h.yaml").write_text(textwrap.dedent(f"""\
        name: h
        address: 127.0.0.1
        pool:
          name: {pool}
          device_paths: any
          pool_options: {{cachefile: none}}
          mountpoint: {work}/mnt/{pool}
          vdevs: [{{type: mirror, disks: [{disk}, {disk}-b]}}]
          properties: {{compression: lzjb}}
        datasets:
          pg_home: {{name: {pool}/pg_home, mountpoint: {work}/mnt/pg_home}}
          pg_arch: {{name: {pool}/pg_arch, mountpoint: {work}/mnt/pg_arch}}
          pg_log: {{name: {pool}/pg_log, mountpoint: {work}/mnt/pg_log}}
        """))
    (specs / "clusters/c.yaml").write_text(textwrap.dedent(f"""\
        name: c
        host: h
        mountpoint: {work}/mnt/c
        port: 25432
        postgres: {{version: "17"}}
        primary: {{address: 127.0.0.1}}
        snapshots: {{keep: {{hourly: 100000, daily: 7, weekly: 4, monthly: 6}}}}
        """))
    subprocess.run([sys.executable, "-m", "generator", "build", str(specs), "-o", str(work / "out")],
                   check=True, capture_output=True)
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-m", "none", pool, str(disk)], check=True)
    subprocess.run(["zfs", "create", "-o", f"mountpoint={work}/mnt/c", f"{pool}/c"], check=True)
    shim = work / "shim"
    shim.mkdir()
    real_zfs = shutil.which("zfs")
    (shim / "zfs").write_text(f'#!/bin/sh\necho x >>"{work}/zfs-calls"\nexec {real_zfs} "$@"\n')
    (shim / "zfs").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")
    rows.append("| existing snapshots | run s | zfs calls | pruned |")
    rows.append("|---:|---:|---:|---:|")
    existing = 0
    try:
        for target in (0, 500, 2000):
            while existing < target:  # old hourly-named snapshots, all kept (hourly: 100000)
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1262304000 + existing * 3600))
                subprocess.run(["zfs", "snapshot", f"{pool}/c@pitr-{stamp}"], check=True)
                existing += 1
            (work / "zfs-calls").unlink(missing_ok=True)
            start = time.perf_counter()
            result = subprocess.run([str(work / "out/h/clusters/c/snapshot.sh")], env=env,
                                    capture_output=True, text=True)
            wall = time.perf_counter() - start
            assert result.returncode == 0, result.stderr
            calls = len((work / "zfs-calls").read_text().splitlines())
            pruned = result.stderr.rsplit("pruned ", 1)[-1].strip()
            rows.append(f"| {target} | {wall:.2f} | {calls} | {pruned} |")
            print(rows[-1], flush=True)
    finally:
        destroy_pool(pool)
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows.append("\nThe retention keeps these snapshots (hourly: 100000), so each run takes one and prunes "
                "none: the count of zfs calls does not grow with the number of snapshots. When a run "
                "prunes many, zfs-fuse (no comma-list destroy) needs one destroy per pruned snapshot; "
                "OpenZFS one batched destroy (shown by the bats suite and the qemu tier).\n")


def main() -> None:
    rows = ["# Benchmark results\n",
            f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB, "
            f"Python {platform.python_version()}. Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"]
    bench_build(rows)
    bench_snapshots(rows)
    (REPO / "benchmarks/RESULTS.md").write_text("\n".join(rows) + "\n")
    print(f"wrote {REPO / 'benchmarks/RESULTS.md'}")


if __name__ == "__main__":
    main()
