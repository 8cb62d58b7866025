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


def diff_lines(old: Side, new: Side, old_label: str = "old", new_label: str = "new") -> list[str]:
    """The review text: a header per differing file, then its unified diff."""
    out: list[str] = []
    # the scripts first, the index files (whose changes follow from theirs) last
    for name in sorted(set(old.files) | set(new.files), key=lambda n: (n in METADATA, n)):
        before, after = old.files.get(name), new.files.get(name)
        if before == after:
            continue
        status = "added" if before is None else "removed" if after is None else "changed"
        entry = new.roles.get(name) or old.roles.get(name)
        out.append(f"{status:<8} {name}  ({describe(name, entry)})\n")
        if before and after and before[1] != after[1]:
            out.append(f"  mode {before[1]:04o} -> {after[1]:04o}\n")
        if before is not None and after is not None and before[0] == after[0]:
            continue
        for line in difflib.unified_diff(_text_lines(before[0]) if before else [],
                                         _text_lines(after[0]) if after else [],
                                         fromfile=f"{old_label}/{name}" if before else "/dev/null",
                                         tofile=f"{new_label}/{name}" if after else "/dev/null"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return out


def built_side(files) -> Side:
    """A bundle built in memory (BundleFile list), as diff_lines reads it."""
    contents = {f.path: (f.content, f.mode) for f in files}
    return Side(contents, manifest_entries(contents.get("MANIFEST.json", (None, 0))[0]))
