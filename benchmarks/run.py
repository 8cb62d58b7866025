"""Benchmarks (run on demand, not in the test suite): python benchmarks/run.py
Writes benchmarks/RESULTS.md with the machine's description and the figures of this run.

1. validate / build / shellcheck of synthetic hosts with 1, 10, 100, 1000 clusters: wall time
   and peak memory of each command (a subprocess, as a user runs it), per-cluster cost;
1b. `check` (shellcheck + bats) of 1, 10, 50 clusters: cold, warm and --deep, wall and CPU.
2. snapshot runs on zfs-fuse with 0, 500, 2000 existing snapshots: time of one run (take +
   prune) and the number of zfs invocations (counted by a shim on PATH).
3. restore on zfs-fuse + PostgreSQL 16, ~100 MB and ~2 GB: restore.sh (clone) split into
   clone / config / replay, beside a copy-based restore of the same base (benchmarks/restore.py).
4. the bundle's lines per cluster before and after the lean installers (benchmarks/lean.py).
Root only. `--parts build,check,snapshots,restore,lines` runs some of them (printed, RESULTS.md
untouched).
On demand only (`--parts wal`, never in the default run): the WAL archive over a simulated year
with and without the WAL retention, and the archive helper's time per file (benchmarks/wal.py).
On demand only (`--parts pgbackrest`, ~30-40 min at 2 GB, needs `apt-get install -y pgbackrest`):
5. restore to an open server, pgBackRest against restore.sh (benchmarks/pgbackrest.py, its
   options: --bundle LABEL=COMMAND, --scale, --tps, --repeats, --full-hours-before); its section replaces section 5
   of RESULTS.md and leaves the rest as it is.
"""

from __future__ import annotations

import argparse
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


MAJORS = (10, 12, 15, 17)  # the synthetic clusters' PostgreSQL majors, in turn


def synthetic_specs(folder: Path, clusters: int, majors: tuple[int, ...] = MAJORS) -> Path:
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
              version: "{majors[n % len(majors)]}.{n % 9}"
              configure: [--prefix=/usr/local/pgsql, --with-openssl, 'CFLAGS=-O2 -g']
            primary: {{address: 10.1.{n // 250}.{n % 250 + 1}, ha_partner: 10.2.{n // 250}.{n % 250 + 1}}}
            """))
    return folder


COUNTS = (1, 10, 100, 1000)
SHELLCHECK_UP_TO = 100  # a cold shellcheck costs ~1 s per cluster and core: 1,000 is ~17 min
RUNS = 3  # validate and build: the median of 3 runs


def bench_build(rows: list[str]) -> dict[str, dict[int, float]]:
    """Section 1; returns the wall times by step and cluster count."""
    rows.append("## 1. validate, build, check\n")
    rows.append("| clusters | files | validate s | validate MiB | build s | build CPU s | build MiB "
                "| shellcheck cold s | shellcheck MiB | check again s |")
    rows.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    py = [sys.executable, "-m", "generator"]
    # Nothing is deleted before the end: this disk's ext4 has no journal, and then it skips
    # every inode freed in the last minutes one by one when it creates a file, which made a
    # build after a deleted tree up to 10x slower in the kernel (see the notes below).
    base = Path(tempfile.mkdtemp(prefix="pitr-bench-"))
    walls: dict[str, dict[int, float]] = {"validate": {}, "build": {}, "shellcheck": {}, "warm": {}}
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
            cold = warm = sc_mem = "-"
            env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
            if count <= SHELLCHECK_UP_TO:
                cold_s, sc_mem, _, _ = timed(py + ["check", str(bundle), "--no-bats"], env=env)
                warm_s, _, _, _ = timed(py + ["check", str(bundle), "--no-bats"], env=env)
                walls["shellcheck"][count], walls["warm"][count] = cold_s, warm_s
                cold, warm = f"{cold_s:.1f}", f"{warm_s:.2f}"
            rows.append(f"| {count} | {files} | {v_wall:.2f} | {v_mem} | {b_wall:.2f} | {b_cpu:.2f} | "
                        f"{b_mem} | {cold} | {sc_mem} | {warm} |")
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
                "the same, a second time (every file found in the cache). The load average when "
                "part 1 ended: "
                f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
    rows.append("Targets: build of 1,000 clusters < 5 s (issue 14: < 10 s with the tarball from "
                "tarfile); build + shellcheck of 100 clusters < 10 s; cold shellcheck of 100 "
                "clusters < 15 s; a second check of an unchanged bundle < 1 s.\n")
    return walls


CHECK_HOSTS = ((1, MAJORS), (10, MAJORS), (10, MAJORS[-1:]), (50, MAJORS))
COLD_RUNS = 3  # the 10-cluster hosts (the target's): a cold check varies by +-10 % run to run


def bench_check(rows: list[str], deep_up_to: int) -> dict[str, dict[int, float]]:
    """Section 1b: `pitr-bundle check` (shellcheck + the bats suites) as a reviewer runs it;
    returns the wall times by kind and cluster count."""
    rows.append("## 1b. check (shellcheck + bats)\n")
    rows.append("| clusters | cluster suite runs | check cold s | cold CPU s | check warm s | "
                "warm CPU s | check --deep s | deep CPU s | load before |")
    rows.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    py = [sys.executable, "-m", "generator"]
    base = Path(tempfile.mkdtemp(prefix="pitr-bench-check-"))
    walls: dict[str, dict[int, float]] = {"cold": {}, "warm": {}, "deep": {}, "cold one major": {}}
    sys.path.insert(0, str(REPO))
    from generator.audit import read_manifest, suites_dir, suites_text
    from generator.shapes import suite_runs
    from generator.views import declared_view

    try:
        for count, majors in CHECK_HOSTS:
            work = base / f"{count}-{len(majors)}"
            specs = synthetic_specs(work / "specs", count, majors)
            subprocess.run(py + ["build", str(specs), "-o", str(work / "out")], check=True,
                           capture_output=True)
            bundle = work / "out/fleet"
            views = {p.name: declared_view(p) for p in sorted(suites_dir().glob("cluster-*.bats"))
                     if "file_tags=deep" not in p.read_text()}  # check leaves those out
            runs = suite_runs(bundle, read_manifest(bundle).data, views, suites_text())
            suite_count = sum(len(groups) for groups in runs.values())
            load = f"{os.getloadavg()[0]:.1f}"
            # cold: each run with an empty shellcheck cache; the target host, the median of 3
            colds = []
            for attempt in range(COLD_RUNS if count == 10 else 1):
                env = dict(os.environ, XDG_CACHE_HOME=str(work / f"cache{attempt}"))
                colds.append(timed(py + ["check", str(bundle)], env=env, ok=(0, 1)))
            colds.sort(key=lambda result: result[0])
            cold, _, cold_cpu, code = colds[len(colds) // 2]
            spread = (f" ({colds[0][0]:.0f}–{colds[-1][0]:.0f})" if len(colds) > 1 else "")
            warm, _, warm_cpu, code2 = timed(py + ["check", str(bundle)], env=env, ok=(0, 1))
            failed = " (failures)" if code or code2 else ""
            deep = deep_cpu = "-"
            # the targets read the four-major hosts; one major is a second figure for 10
            four_majors = majors == MAJORS
            if four_majors:
                walls["cold"][count], walls["warm"][count] = cold, warm
            else:
                walls["cold one major"][count] = cold
            if four_majors and count <= deep_up_to:
                deep_s, _, deep_c, code3 = timed(py + ["check", "--deep", str(bundle)], env=env,
                                                 ok=(0, 1))
                walls["deep"][count] = deep_s
                deep, deep_cpu = f"{deep_s:.0f}" + (" (failures)" if code3 else ""), f"{deep_c:.0f}"
            label = str(count) if four_majors else f"{count}, one major"
            rows.append(f"| {label} | {suite_count} | {cold:.1f}{spread}{failed} | {cold_cpu:.0f} | {warm:.1f} | "
                        f"{warm_cpu:.0f} | {deep} | {deep_cpu} | {load} |")
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows.append("\ncold: `check` with an empty shellcheck cache; warm: the same again (shellcheck "
                "cached, the bats suites run again); --deep: with the exhaustive tests (every fault "
                "position, the simulated year), shellcheck cached. Each cluster suite runs once per "
                "distinct view of a cluster: what the suite declares it reads, up to names, ports and "
                "addresses (generator/views.py); cluster suite runs: how many that makes, without "
                f"--deep. The 10-cluster rows: the median of {COLD_RUNS} cold runs (the range in "
                "brackets). CPU s: user + system of the command and "
                "its children. load before: the 1-minute load average when the row started (the "
                f"machine has {os.cpu_count()} cores). The synthetic clusters run PostgreSQL "
                f"{', '.join(map(str, MAJORS))} in turn: the suites that see a script or fact that "
                "differs by major (restore.sh, the primary-side script, the standby's) run once per "
                "major; the row 'one major' is a host "
                f"of the same size on {MAJORS[-1]} alone. --deep measured up to {deep_up_to} clusters "
                "(four majors). "
                f"The load average when part 1b ended: "
                f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
    rows.append("Target: `check` of a 10-cluster bundle, cold, < 60 s.\n")
    return walls


def bench_snapshots(rows: list[str]) -> dict[int, int]:
    """Section 2; returns the zfs calls of one run by the number of existing snapshots."""
    from zfs_fuse import ZfsFuse, destroy_pool, sparse_disks, unavailable_reason

    rows.append("## 2. snapshot runs on zfs-fuse\n")
    reason = unavailable_reason()
    if reason:
        rows.append(f"Not measured: {reason}.\n")
        return {}
    work = Path(tempfile.mkdtemp(prefix="pitr-bench-zfs-"))
    calls_by_size: dict[int, int] = {}
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
        postgres: {{version: "17.6"}}
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
            calls_by_size[target] = calls
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
    return calls_by_size


def against_targets(walls: dict[str, dict[int, float]], snapshot_calls: dict[int, int],
                    checks: dict[str, dict[int, float]]) -> list[str]:
    """The verdicts of this run's figures, with what is known of the causes of a miss."""
    def verdict(value: float | None, limit: float) -> str:
        if value is None:
            return "not measured"
        return "**met**" if value < limit else f"**missed by {value / limit:.1f}x**"

    build_1000 = walls["build"].get(1000)
    build_100, cold_100 = walls["build"].get(100), walls["shellcheck"].get(100)
    both_100 = build_100 + cold_100 if build_100 is not None and cold_100 is not None else None
    warm_100 = walls["warm"].get(100)
    calls = sorted(set(snapshot_calls.values()))
    return [
        "## Against the targets",
        f"- build of 1,000 clusters: {build_1000:.1f} s, target < 5 s: {verdict(build_1000, 5)}. "
        "What is left: rendering (about 2.3 s), writing 20,000 files (about 6 s of mostly kernel "
        "time, beside the tarball), the gzip at level 4 of the 204 MiB tar stream (about 3 s on "
        "the other core; level 6 took 6 s for a tarball 5 % smaller) and PyYAML's pure-Python "
        "parser (about 1 s). Not done, because each changes more than speed: gzip level 1 (about "
        "-1 s, a third more bytes), libyaml's parser (its errors are worded differently)."
        if build_1000 is not None else "- build of 1,000 clusters: not measured",
        f"- build of 1,000 clusters with the tarball from tarfile: {build_1000:.1f} s, issue 14's "
        f"limit 10 s: {verdict(build_1000, 10)}." if build_1000 is not None else
        "- build of 1,000 clusters (issue 14, < 10 s): not measured",
        f"- cold shellcheck of 100 clusters: {cold_100:.1f} s, target < 15 s: "
        f"{verdict(cold_100, 15)}." if cold_100 is not None else
        "- cold shellcheck of 100 clusters: not measured",
        f"- cold `check` (shellcheck + bats) of 10 clusters: {checks['cold'][10]:.1f} s, target "
        f"< 60 s: {verdict(checks['cold'][10], 60)} on four PostgreSQL majors (section 1b: wall "
        "and CPU, and the load); "
        + (f"on one major: {checks['cold one major'][10]:.1f} s, "
           f"{verdict(checks['cold one major'][10], 60)}. " if 10 in checks["cold one major"] else "")
        + "Each cluster suite runs once per distinct view (what it declares it reads: "
        "generator/views.py), so only the suites that see what differs by major (restore.sh, "
        "the primary-side script, the standby's, the primary's check) run once per major; the "
        "suites keep their files on a memory file system (generator/audit.py: scratch_root)."
        if 10 in checks.get("cold", {}) else "- cold `check` of 10 clusters: not measured",
        f"- build + shellcheck of 100 clusters: {build_100:.1f} s + {cold_100:.0f} s cold, target "
        f"< 10 s: {verdict(both_100, 10)}. shellcheck runs once per distinct script body "
        "up to inert places (generator/inert.py), at every severity: for the synthetic clusters "
        "about one body per script role and PostgreSQL major, several of 1,000 lines or more. "
        + ("" if both_100 < 10 else "Meeting the target would need fewer bodies checked or a "
           "shallower analysis, both excluded. ")
        + "The cache makes every later check fast (next line)."
        if both_100 is not None else "- build + shellcheck of 100 clusters: not measured",
        f"- a second `check` of an unchanged 100-cluster bundle: {warm_100:.2f} s, target < 1 s: "
        f"{verdict(warm_100, 1)}." if warm_100 is not None else "- second check: not measured",
        f"- zfs calls of one snapshot run with {', '.join(map(str, sorted(snapshot_calls)))} "
        f"existing snapshots: {' / '.join(str(snapshot_calls[k]) for k in sorted(snapshot_calls))}: "
        + ("**constant**." if len(calls) == 1 else "**not constant**.")
        if snapshot_calls else "- snapshot runs: not measured",
        "- restore: see section 3 (clone against copy, the ratio, and the clone time at both sizes).",
        "",
    ]


PARTS = ("build", "check", "snapshots", "restore", "lines")
ON_DEMAND = ("wal", "pgbackrest")
RESULTS = REPO / "benchmarks/RESULTS.md"
SECTION_PGBACKREST = "## 5. "


def splice_section(text: str, section: str) -> str:
    """RESULTS.md with section 5 (pgBackRest) replaced by `section` (or put before "## Against the
    targets")."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SECTION_PGBACKREST)), None)
    if start is None:
        start = end = next((i for i, line in enumerate(lines) if line.startswith("## Against")), len(lines))
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section.rstrip("\n").splitlines() + [""] + lines[end:]) + "\n"


def pgbackrest_section(text: str) -> str | None:
    """Section 4 of a RESULTS.md (an on-demand part's figures, kept when the default run rewrites
    the file), or None."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SECTION_PGBACKREST)), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks, write benchmarks/RESULTS.md.")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="which parts, comma separated (default: %(default)s); RESULTS.md is "
                             "written only when all run; --parts pgbackrest writes its section 5 "
                             "and adds options: --parts pgbackrest --help")
    parser.add_argument("--deep-up-to", type=int, default=50,
                        help="run `check --deep` up to this many clusters (default: %(default)s; "
                             "minutes per distinct view of a cluster)")
    first = argparse.ArgumentParser(add_help=False)  # which parts, before --help lists the options
    first.add_argument("--parts", default="")
    if "pgbackrest" in first.parse_known_args()[0].parts:
        from pgbackrest import add_arguments  # pytest, PyYAML, the PostgreSQL helpers: only when asked

        add_arguments(parser)
    args = parser.parse_args()
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS) - set(ON_DEMAND))
    if unknown:
        parser.error(f"unknown parts: {', '.join(unknown)}")
    rows = ["# Benchmark results\n",
            f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB, "
            f"Python {platform.python_version()}. Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
            "(`python benchmarks/run.py`, all parts in one run).\n"]
    walls = bench_build(rows) if "build" in parts else {"build": {}, "shellcheck": {}, "warm": {}}
    checks = bench_check(rows, args.deep_up_to) if "check" in parts else {}
    snapshot_calls = bench_snapshots(rows) if "snapshots" in parts else {}
    if "restore" in parts:
        from restore import bench_restore

        bench_restore(rows)
    if "lines" in parts:
        from lean import bench_lines

        bench_lines(rows, synthetic_specs)
    if "wal" in parts:
        from wal import bench_wal

        bench_wal(rows)
    if "pgbackrest" in parts:
        from pgbackrest import bench_pgbackrest, parse_bundles, section_from_log

        section: list[str] = []
        if args.report_from:  # the figures of an earlier run, the text of this checkout
            section = section_from_log(args.report_from)
        elif os.geteuid() != 0:
            raise SystemExit("--parts pgbackrest needs root (zfs-fuse, OS users, runuser, drop_caches)")
        else:
            bench_pgbackrest(section, parse_bundles(args.bundle), args.scale, args.tps, args.repeats,
                             args.mb_per_minute, args.full_hours_before)
        rows += section
        RESULTS.write_text(splice_section(RESULTS.read_text(), "\n".join(section)))
        print(f"wrote section 5 of {RESULTS}")
    rows += against_targets(walls, snapshot_calls, checks)
    text = "\n".join(rows) + "\n"
    if set(parts) == set(PARTS):
        kept = pgbackrest_section(RESULTS.read_text()) if RESULTS.exists() and "pgbackrest" not in parts else None
        RESULTS.write_text(splice_section(text, kept) if kept else text)
        print(f"wrote {RESULTS}")
    else:
        print(text)


if __name__ == "__main__":
    main()
