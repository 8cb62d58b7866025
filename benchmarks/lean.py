"""Section 4 of the benchmarks: the bundle's lines per cluster, before the installers stopped
carrying copies of what they install (commit 6bb4b9e: 70-install-snapshot-cron.sh held
snapshot.sh and wal-retention.sh, 75-install-drill-cron.sh drill.sh and restore.sh,
80-install-monitor.sh monitor.sh) and now (they install the bundle's own files, checked
against SHA256SUMS). "Before" is built by that revision's own generator, exported with
`git archive` when this clone has it; else the figures measured when the change was made."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "6bb4b9e"
# measured on 2026-11-30 with BEFORE's generator: (bundle lines, lines per cluster folder)
RECORDED_BEFORE = {"example (2 clusters)": (16846, 6887), "synthetic, 10 clusters": (74273, 6879)}
CLUSTER_COUNT = 10


def _lines(bundle: Path) -> tuple[int, int, int]:
    """Lines of every file of the bundle; the clusters; lines of the cluster folders per cluster."""
    total = sum(len(p.read_bytes().splitlines()) for p in bundle.rglob("*") if p.is_file())
    clusters = [p for p in (bundle / "clusters").iterdir() if p.is_dir()]
    in_clusters = sum(len(p.read_bytes().splitlines())
                      for c in clusters for p in c.rglob("*") if p.is_file())
    return total, len(clusters), in_clusters // len(clusters)


def _build(generator_root: Path, specs: Path, out: Path) -> Path:
    """Build with the generator found in generator_root (python -m runs the one in its cwd)."""
    subprocess.run([sys.executable, "-m", "generator", "build", str(specs), "-o", str(out)],
                   cwd=generator_root, check=True, capture_output=True)
    return next(p for p in out.iterdir() if p.is_dir())


def _export_before(target: Path) -> bool:
    """BEFORE's tree in target, from this clone's git history; False when it is not there."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", BEFORE],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return True


def bench_lines(rows: list[str], synthetic_specs) -> None:
    rows.append("## 4. Bundle lines per cluster, before and after the lean installers\n")
    with tempfile.TemporaryDirectory(prefix="pitr-bench-lines-") as temp:
        work = Path(temp)
        before_root = work / "before"
        have_before = _export_before(before_root)
        cases = {"example (2 clusters)": REPO / "specs",
                 f"synthetic, {CLUSTER_COUNT} clusters": synthetic_specs(work / "synthetic",
                                                                         CLUSTER_COUNT)}
        rows.append(f"Before: the bundle of commit {BEFORE} ("
                    + ("built by its own generator in this run" if have_before
                       else "figures recorded when the change was made: no such commit here")
                    + "); after: this checkout's.\n")
        rows.append("| specs | lines before | lines after | per cluster folder before "
                    "| per cluster folder after | change |")
        rows.append("|---|---:|---:|---:|---:|---:|")
        for n, (name, specs) in enumerate(cases.items()):
            after_total, _, after_per = _lines(_build(REPO, specs, work / f"after{n}"))
            if have_before:
                before_total, _, before_per = _lines(_build(before_root, specs, work / f"before{n}"))
            else:
                before_total, before_per = RECORDED_BEFORE[name]
            rows.append(f"| {name} | {before_total} | {after_total} | {before_per} | {after_per} "
                        f"| {100 * (after_total - before_total) / before_total:+.0f} % |")
    rows.append("")
