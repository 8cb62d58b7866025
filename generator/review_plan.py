"""`pitr-bundle plan BUNDLE`: every script of the backup host, in run order, with --dry-run
against a simulated fresh host, so that a reviewer reads the literal commands (zpool create,
zfs create, useradd ...) without the host. The simulated host is root (an `id` stand-in)
with an empty ZFS (the stateful fake zpool/zfs that the bats suites ship); everything else
the scripts read is this machine's, and nothing is changed: every script runs with
--dry-run, which prints its changing commands instead of running them. A temporary file in a
command reads as what it holds (`<temp: the bundle's host/scrub.cron>`: make_temp's WHAT in
templates/lib/preamble.sh.j2), not as its random path: the same bundle gives the same plan."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.audit import suites_dir

DRY_RUN_LINE = re.compile(r"^[^:\n]+: dry-run: would run: (.*)$")
WARNING_LINE = re.compile(r"^[^:\n]+: WARNING: (.*)$")
ERROR_LINE = re.compile(r"^[^:\n]+: ERROR: (.*)$")
TIMEOUT_SECONDS = 120


@dataclass
class PlannedStep:
    path: str
    role: str
    destructive: bool
    lines: list[tuple[str, str]]  # ("$", command) or ("!", warning), in the script's order
    exit_code: int
    errors: list[str]

    @property
    def commands(self) -> list[str]:
        return [text for kind, text in self.lines if kind == "$"]


def run_order(manifest: dict) -> list[dict]:
    """The scripts the bundle README lists for the backup host, in run order."""
    steps = [f for f in manifest["files"] if f["order"] is not None and f["role"] != "verify"
             and f["runs_on"] == "backup host"]
    return sorted(steps, key=lambda f: (f["order"], f["path"]))


def _simulated_host(folder: Path) -> dict[str, str]:
    """PATH with the fake zpool/zfs first and an `id` that says root; the fakes' state."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    fake = suites_dir() / "fake_zfs.bash"
    for name in ("zpool", "zfs"):
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/usr/bin/env bash\nFAKE_CMD={name} exec bash "{fake}" "$@"\n')
        wrapper.chmod(0o755)
    (bin_dir / "id").write_text('#!/usr/bin/env bash\n[[ "$*" == "-u" ]] && { echo 0; exit 0; }\n'
                                'exec /usr/bin/id "$@"\n')
    (bin_dir / "id").chmod(0o755)
    (folder / "zfs-state").mkdir()
    return dict(os.environ, PATH=f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                FAKE_ZFS_STATE=str(folder / "zfs-state"), STUB_LOG=str(folder / "calls.log"))


def _shown(lines: list[str]) -> list[tuple[str, str]]:
    shown = []
    for line in lines:
        for kind, pattern in (("$", DRY_RUN_LINE), ("!", WARNING_LINE)):
            match = pattern.match(line)
            if match:
                shown.append((kind, match.group(1)))
    return shown


def plan_bundle(bundle_dir: Path) -> list[PlannedStep]:
    manifest = json.loads((bundle_dir / "MANIFEST.json").read_text())
    planned = []
    with tempfile.TemporaryDirectory(prefix="pitr-bundle-plan-") as temp:
        env = _simulated_host(Path(temp))
        for entry in run_order(manifest):
            try:
                result = subprocess.run([str(bundle_dir / entry["path"]), "--dry-run"],
                                        capture_output=True, text=True, env=env,
                                        stdin=subprocess.DEVNULL, timeout=TIMEOUT_SECONDS)
                lines, code = result.stderr.splitlines(), result.returncode
            except subprocess.TimeoutExpired:
                lines, code = [f"x: ERROR: no answer within {TIMEOUT_SECONDS} s"], 124
            planned.append(PlannedStep(
                entry["path"], entry["role"], entry["destructive"], _shown(lines),
                code, [m.group(1) for m in map(ERROR_LINE.match, lines) if m]))
    return planned


def plan_text(steps: list[PlannedStep]) -> str:
    out = []
    for step in steps:
        flags = f"{step.role}{', DESTRUCTIVE' if step.destructive else ''}"
        out.append(f"== {step.path} ({flags})")
        out += [f"   {kind} {text}" for kind, text in step.lines]
        if step.exit_code != 0:
            reason = step.errors[-1] if step.errors else "no reason given"
            out.append(f"   STOPPED (exit {step.exit_code}): {reason}")
        elif not step.commands:
            out.append("   (nothing to change)")
    stopped = sum(1 for s in steps if s.exit_code != 0)
    out.append(f"{len(steps)} script(s), {sum(len(s.commands) for s in steps)} command(s) "
               f"shown, {stopped} stopped before the end")
    return "\n".join(out) + "\n"
