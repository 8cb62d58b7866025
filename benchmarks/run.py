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


def timed(command: list[str], env=None, ok=(0,)) -> tuple[float, int, float, int]:
    """Wall seconds, peak RSS in MiB (the largest process of the command's tree: wait4 gives
    the command's own figure, not the running maximum of every child so far), CPU seconds
    (user + system, the command and the children it waited for) and the exit status."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in ok:
            out.seek(0)
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({code}):\n{out.read().decode()[-4000:]}\n"
                             f"{err.read().decode()[-4000:]}")
    return wall, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime, code


def median_of(runs: int, command_for) -> tuple[float, int, float, int]:
    """The run of median wall time among `runs` (command_for(i) gives the i-th command)."""
    results = sorted((timed(command_for(i)) for i in range(runs)), key=lambda r: r[0])
    return results[len(results) // 2]


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


COUNTS = (1, 10, 100, 1000)
SHELLCHECK_UP_TO = 100  # a cold shellcheck costs ~1 s per cluster and core: 1,000 is ~17 min
BATS_UP_TO = 1  # the bats suites cost minutes per cluster (the fault suites run every script)
RUNS = 3  # validate and build: the median of 3 runs


def bench_build(rows: list[str]) -> None:
    rows.append("## 1. validate, build, check\n")
    rows.append("| clusters | files | validate s | validate MiB | build s | build CPU s | build MiB "
                "| shellcheck cold s | shellcheck MiB | check again s | check with bats s |")
    rows.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    py = [sys.executable, "-m", "generator"]
    # Nothing is deleted before the end: this disk's ext4 has no journal, and then it skips
    # every inode freed in the last minutes one by one when it creates a file, which made a
    # build after a deleted tree up to 10x slower in the kernel (see the notes below).
    base = Path(tempfile.mkdtemp(prefix="pitr-bench-"))
    walls: dict[str, dict[int, float]] = {"validate": {}, "build": {}, "shellcheck": {}}
    try:
        for count in COUNTS:
            work = base / str(count)
            specs = synthetic_specs(work / "specs", count)
            v_wall, v_mem, _, _ = median_of(RUNS, lambda i: py + ["validate", str(specs)])
            b_wall, b_mem, b_cpu, _ = median_of(
                RUNS, lambda i: py + ["build", str(specs), "-o", str(work / f"out{i}")])
            bundle = work / "out0/fleet"
            files = sum(1 for p in bundle.rglob("*") if p.is_file())
            walls["validate"][count], walls["build"][count] = v_wall, b_wall
            cold = warm = sc_mem = with_bats = "-"
            env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
            if count <= SHELLCHECK_UP_TO:
                cold_s, sc_mem, _, _ = timed(py + ["check", str(bundle), "--no-bats"], env=env)
                warm_s, _, _, _ = timed(py + ["check", str(bundle), "--no-bats"], env=env)
                walls["shellcheck"][count] = cold_s
                cold, warm = f"{cold_s:.1f}", f"{warm_s:.2f}"
            if count <= BATS_UP_TO:  # shellcheck is cached by now: this is the bats suites
                bats_s, _, _, code = timed(py + ["check", str(bundle)], env=env, ok=(0, 1))
                with_bats = f"{bats_s:.0f}" + (" (failures)" if code else "")
            rows.append(f"| {count} | {files} | {v_wall:.2f} | {v_mem} | {b_wall:.2f} | {b_cpu:.2f} | "
                        f"{b_mem} | {cold} | {sc_mem} | {warm} | {with_bats} |")
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows.append("\nPer added cluster (the difference between consecutive rows, divided by the "
                "clusters added): linear growth shows as a steady figure.\n")
    rows.append("| clusters | validate ms | build ms | shellcheck cold ms |")
    rows.append("|---:|---:|---:|---:|")
    for low, high in zip(COUNTS, COUNTS[1:]):
        cells = []
        for step in ("validate", "build", "shellcheck"):
            got = walls[step]
            cells.append(f"{1000 * (got[high] - got[low]) / (high - low):.1f}"
                         if low in got and high in got else "-")
        rows.append(f"| {low} → {high} | " + " | ".join(cells) + " |")
    rows.append(f"\nEach command is a subprocess, as a user runs it; validate and build are the median "
                f"of {RUNS} runs, each build into a new folder (every file `new`). MiB: peak resident "
                "memory of the largest process of the command (shellcheck runs one process per "
                "core). build CPU s: user + system time of the build, over its threads and "
                "processes. shellcheck cold: `check --no-bats` with an empty cache; check again: "
                "the same, a second time (every file found in the cache). check with bats: `check` "
                "of the whole bundle with shellcheck already cached, i.e. the bats suites, host "
                f"suites once and cluster suites once per cluster; measured up to {BATS_UP_TO} "
                f"cluster(s). The load average when part 1 ended: "
                f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
    rows.append("Targets: build of 1,000 clusters < 5 s; build + shellcheck of 100 clusters < 10 s; "
                "a second check of an unchanged bundle < 1 s.\n")


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
