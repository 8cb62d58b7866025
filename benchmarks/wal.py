"""WAL archive benchmarks (on demand: python benchmarks/run.py --parts wal, or this file alone).

1. Archive size over a simulated year, with and without the WAL retention: the example
   bundle's snapshot and wal-retention scripts run once a simulated day (a fake clock, the
   shipped fake zfs of the bats suites, a fake pg_controldata whose REDO point trails the
   newest segment by two), SEGMENTS_A_DAY 16 MB segments archived a day (sparse files: their
   logical size is what an uncompressed archive would hold).
2. The archive helper's time per WAL file (16 MB, copied, synced, linked) into an archive of
   1, 30 and 365 day folders of FILES_A_FOLDER files each: its look-up of an already archived
   copy globs every day folder.
Root only (the scripts refuse to run otherwise).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEGMENT = 16 * 1024 * 1024
SEGMENTS_A_DAY = 48
FILES_A_FOLDER = 96


def rebase(script: Path, target: Path, **constants: str) -> Path:
    """A copy of a bundle script whose readonly constants point elsewhere (as the bats
    suites' rebase does)."""
    text = script.read_text()
    for name, value in constants.items():
        text, count = re.subn(rf"(?<![A-Za-z0-9_]){name}=(?:'[^']*'|[^\s\\]+)",
                              lambda _m, n=name, v=value: f"{n}={shlex.quote(v)}", text, count=1)
        if not count:
            raise SystemExit(f"{script}: constant {name} not found")
    target.write_text(text)
    target.chmod(0o755)
    return target


def example_bundle(work: Path) -> Path:
    subprocess.run([sys.executable, "-m", "generator", "build", "specs", "-o", str(work / "out")],
                   cwd=REPO, check=True, capture_output=True)
    return work / "out/pitr1"


def segment_name(n: int) -> str:
    return f"00000001{n // 256:08X}{n % 256:08X}"


def archive_bytes(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.glob("*/*") if p.is_file())


def simulate_year(bundle: Path, work: Path, retention: bool) -> list[tuple[int, int, int]]:
    """(day, archived bytes, files) at the end of each 30th simulated day and the last one."""
    import json

    facts = json.loads((bundle / "MANIFEST.json").read_text())["facts"]
    cluster = facts["clusters"][1]
    name, dataset = cluster["name"], cluster["dataset"]
    root = work / ("with" if retention else "without")
    stubs, state, archive, pgdata = root / "bin", root / "zfs", root / "arch", root / "pgdata"
    for folder in (stubs, state, archive, pgdata / "global", root / "pghome/bin"):
        folder.mkdir(parents=True)
    (pgdata / "global/pg_control").touch()
    fake = REPO / "generator/suites/fake_zfs.bash"
    for command in ("zfs", "zpool"):
        (stubs / command).write_text(f'#!/usr/bin/env bash\nFAKE_CMD={command} exec bash {fake} "$@"\n')
        (stubs / command).chmod(0o755)
    (stubs / "runuser").write_text('#!/usr/bin/env bash\nwhile (($#)) && [[ $1 != -- ]]; do shift; done\n'
                                   'shift\nexec "$@"\n')
    (stubs / "date").write_text(f'#!/usr/bin/env bash\nfor a in "$@"; do case $a in -d* | --date*) '
                                f'exec /bin/date "$@" ;; esac; done\nexec /bin/date -d "@$(cat {root}/now)" "$@"\n')
    (stubs / "logger").write_text("#!/bin/sh\nexit 0\n")
    (root / "pghome/bin/pg_controldata").write_text(
        f'#!/usr/bin/env bash\nn=$(cat {root}/redo)\n'
        'printf "Latest checkpoint\'s REDO location:    %X/%X\\n" $((n / 256)) $(((n % 256) * 16777216 + 40))\n'
        'printf "Latest checkpoint\'s TimeLineID:       1\\nBytes per WAL segment:                16777216\\n"\n')
    for path in (stubs / "runuser", stubs / "date", stubs / "logger", root / "pghome/bin/pg_controldata"):
        path.chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", FAKE_ZFS_STATE=str(state),
               STUB_LOG=str(root / "calls.log"))
    pool = facts["pool"]["name"]
    subprocess.run(["zpool", "create", pool, "mirror", "/dev/a", "/dev/b"], env=env, check=True)
    subprocess.run(["zfs", "create", "-o", f"mountpoint={root}/live", dataset], env=env, check=True)
    snapshot = rebase(bundle / f"clusters/{name}/snapshot.sh", root / "snapshot.sh",
                      LOCK_FILE=str(root / "lock"), PGHOME=str(root / "pghome"), PGDATA=str(pgdata))
    prune = rebase(bundle / f"clusters/{name}/wal-retention.sh", root / "wal-retention.sh",
                   LOCK_FILE=str(root / "lock"), ARCHIVE=str(archive))
    now = int(time.mktime(time.strptime("2026-01-01 08:01", "%Y-%m-%d %H:%M"))) - time.timezone
    figures, n = [], 0
    for day in range(1, 366):
        folder = archive / time.strftime("%Y-%m-%d", time.gmtime(now))
        folder.mkdir(exist_ok=True)
        for _ in range(SEGMENTS_A_DAY):
            n += 1
            with open(folder / segment_name(n), "wb") as segment:
                segment.truncate(SEGMENT)
        (root / "now").write_text(str(now))
        (root / "redo").write_text(str(n - 2))
        (root / "calls.log").write_text("")
        subprocess.run([str(snapshot)], env=env, check=True, capture_output=True)
        if retention:
            subprocess.run([str(prune)], env=env, check=True, capture_output=True)
        if day % 30 == 0 or day == 365:
            files = sum(1 for _ in archive.glob("*/*"))
            figures.append((day, archive_bytes(archive), files))
        now += 86400
    shutil.rmtree(root)
    return figures


def helper_times(bundle: Path, work: Path, folders: int, files: int = 20) -> float:
    """Median seconds of one archive helper call (a new 16 MB segment) into an archive that
    holds `folders` day folders of FILES_A_FOLDER files each."""
    root = work / f"helper{folders}"
    archive, pgdata = root / "arch", root / "pgdata"
    (pgdata / "pg_wal").mkdir(parents=True)
    archive.mkdir(parents=True)
    n = 0
    for day in range(folders):
        folder = archive / time.strftime("%Y-%m-%d", time.gmtime(86400 * (20000 + day)))
        folder.mkdir()
        for _ in range(FILES_A_FOLDER):
            n += 1
            (folder / segment_name(n)).touch()
    helper = rebase(bundle / "clusters/pg168121/primary/pitr-archive-wal.sh", root / "helper",
                    ARCHIVE=str(archive))
    helper.write_text(helper.read_text().replace("mountpoint -q", "true"))
    with open(pgdata / "pg_wal/data", "wb") as data:
        data.write(os.urandom(SEGMENT))
    times = []
    for i in range(files):
        name = segment_name(n + 1 + i)
        shutil.copy(pgdata / "pg_wal/data", pgdata / "pg_wal" / name)
        start = time.perf_counter()
        subprocess.run([str(helper), f"pg_wal/{name}", name], cwd=pgdata, check=True)
        times.append(time.perf_counter() - start)
        (pgdata / "pg_wal" / name).unlink()
    shutil.rmtree(root)
    return sorted(times)[len(times) // 2]


def bench_wal(rows: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="pitr-wal-bench-") as tmp:
        work = Path(tmp)
        bundle = example_bundle(work)
        rows.append("## WAL archive: a simulated year, with and without the WAL retention\n")
        rows.append(f"{SEGMENTS_A_DAY} segments of 16 MB a day, one snapshot run a day (the example "
                    "cluster pg168121: keep daily 7, weekly 4, monthly 6; pitr_window_days 7). "
                    "Logical sizes (before compression).\n")
        started = time.perf_counter()
        without = simulate_year(bundle, work, retention=False)
        kept = simulate_year(bundle, work, retention=True)
        rows.append("| day | archive without retention | with retention | files with |")
        rows.append("|---|---|---|---|")
        for (day, size_without, _), (_, size_with, files) in zip(without, kept):
            rows.append(f"| {day} | {size_without / 2**30:.1f} GiB | {size_with / 2**30:.1f} GiB | {files} |")
        rows.append(f"\n(both years simulated in {time.perf_counter() - started:.0f} s)\n")
        rows.append("## The archive helper's time per WAL file\n")
        rows.append(f"One 16 MB segment copied, synced and linked (median of 20), into an archive of "
                    f"day folders of {FILES_A_FOLDER} files each.\n")
        rows.append("| day folders | files in the archive | time per WAL file |")
        rows.append("|---|---|---|")
        for folders in (1, 30, 365):
            seconds = helper_times(bundle, work, folders)
            rows.append(f"| {folders} | {folders * FILES_A_FOLDER} | {seconds * 1000:.1f} ms |")
        rows.append("")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if os.geteuid() != 0:
        raise SystemExit("root only: the bundle's scripts refuse to run otherwise")
    rows: list[str] = []
    bench_wal(rows)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
