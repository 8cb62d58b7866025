"""What changed between two bundles, as a reviewer reads it: per file its status, MANIFEST
role and cluster, whether the script is destructive, a mode change, and a unified diff."""

from __future__ import annotations

import difflib
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from generator.contents import entries, is_signature


@dataclass(frozen=True)
class Side:
    """One bundle's files (path -> bytes, mode) and its MANIFEST entries by path."""
    files: dict[str, tuple[bytes, int]]
    roles: dict[str, dict]


def manifest_entries(manifest_bytes: Optional[bytes]) -> dict[str, dict]:
    try:
        return {entry["path"]: entry for entry in json.loads(manifest_bytes or b"{}").get("files", [])}
    except (ValueError, AttributeError, TypeError, KeyError):
        return {}


def read_side(bundle_dir: Path) -> Side:
    """Every regular file of a bundle folder, listed or foreign (links are shown as such)."""
    files: dict[str, tuple[bytes, int]] = {}
    found, _ = entries(bundle_dir)
    for name in found:
        path = bundle_dir / name
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            files[name] = (f"symbolic link to {path.readlink()}\n".encode(), stat.S_IMODE(info.st_mode))
        elif stat.S_ISREG(info.st_mode):
            files[name] = (path.read_bytes(), stat.S_IMODE(info.st_mode))
    manifest = files.get("MANIFEST.json", (None, 0))[0]
    return Side(files, manifest_entries(manifest))


METADATA = {"MANIFEST.json", "SHA256SUMS", "README.md"}


def describe(name: str, entry: Optional[dict]) -> str:
    if name in METADATA:
        return "bundle index"
    if is_signature(name):
        return "review signature"
    if not entry:
        return "FOREIGN: in no MANIFEST.json"
    words = [f"role {entry.get('role')}"]
    if entry.get("cluster"):
        words.append(f"cluster {entry['cluster']}")
    if entry.get("runs_on") and entry["runs_on"] != "backup host":
        words.append(f"runs on {entry['runs_on']}")
    if entry.get("destructive"):
        words.append("DESTRUCTIVE")
    return ", ".join(words)


def _text_lines(content: bytes) -> list[str]:
    return content.decode("utf-8", errors="replace").splitlines(keepends=True)


def _file_diff(name: str, before, after, old_label: str, new_label: str) -> list[str]:
    lines = difflib.unified_diff(_text_lines(before[0]) if before else [],
                                 _text_lines(after[0]) if after else [],
                                 fromfile=f"{old_label}/{name}" if before else "/dev/null",
                                 tofile=f"{new_label}/{name}" if after else "/dev/null")
    return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines]


def _hunks(lines: list[str]) -> tuple[list[str], list[tuple[str, tuple[str, ...]]]]:
    """A file's unified diff as its ---/+++ header and its hunks: (@@ line, the lines after)."""
    header = [line for line in lines[:2] if line.startswith(("---", "+++"))]
    hunks: list[tuple[str, list[str]]] = []
    for line in lines[len(header):]:
        if line.startswith("@@"):
            hunks.append((line, []))
        else:
            hunks[-1][1].append(line)
    return header, [(at, tuple(body)) for at, body in hunks]


def diff_lines(old: Side, new: Side, old_label: str = "old", new_label: str = "new",
               group_shared: bool = True) -> list[str]:
    """The review text: a header per differing file, then its unified diff. With group_shared,
    a hunk that stands the same in several files (a change to the preamble, or to any block the
    scripts carry each a copy of) is shown once, first, naming each file and place; each file
    then says `[shared change C1]` where it was."""
    files = []  # (name, header lines, ---/+++ lines, hunks)
    # the scripts first, the index files (whose changes follow from theirs) last
    for name in sorted(set(old.files) | set(new.files), key=lambda n: (n in METADATA, n)):
        before, after = old.files.get(name), new.files.get(name)
        if before == after:
            continue
        status = "added" if before is None else "removed" if after is None else "changed"
        entry = new.roles.get(name) or old.roles.get(name)
        heading = [f"{status:<8} {name}  ({describe(name, entry)})\n"]
        if before and after and before[1] != after[1]:
            heading.append(f"  mode {before[1]:04o} -> {after[1]:04o}\n")
        same_bytes = before is not None and after is not None and before[0] == after[0]
        diff = [] if same_bytes else _file_diff(name, before, after, old_label, new_label)
        files.append((name, heading, *_hunks(diff)))
    carriers: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for name, _, _, hunks in files:
        for at, body in hunks:
            carriers.setdefault(body, []).append((name, at))
    shared = {body: f"C{number}" for number, body in enumerate(
        (body for body, places in carriers.items() if len({n for n, _ in places}) > 1), 1)
        } if group_shared else {}
    out: list[str] = []
    for body, label in shared.items():
        places = carriers[body]
        count = len({name for name, _ in places})
        out.append(f"shared change {label}: the same lines change in {len(places)} places of "
                   f"{count} files, shown once:\n")
        out += [f"  {name} {at}" for name, at in places]
        out += body
    for name, heading, header, hunks in files:
        out += heading + header
        for at, body in hunks:
            out += [f"{at.rstrip()} [shared change {shared[body]}, shown above]\n"] \
                if body in shared else [at, *body]
    return out


def built_side(files) -> Side:
    """A bundle built in memory (BundleFile list), as diff_lines reads it."""
    contents = {f.path: (f.content, f.mode) for f in files}
    return Side(contents, manifest_entries(contents.get("MANIFEST.json", (None, 0))[0]))
