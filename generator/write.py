"""Write a bundle to disk: compare bytes first, report new / changed / identical / removed,
write atomically, and never leave a half-written bundle behind a bad spec (the CLI only
calls this after every host rendered)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from generator.bundle import BundleFile


def _status(target: Path, content: bytes, mode: int) -> str:
    if not target.exists():
        return "new"
    if target.read_bytes() != content or (target.stat().st_mode & 0o7777) != mode:
        return "changed"
    return "identical"


def _previous_paths(bundle_dir: Path) -> set[str]:
    """Files the last build wrote (from its MANIFEST): the only ones we may remove."""
    try:
        manifest = json.loads((bundle_dir / "MANIFEST.json").read_text())
        return {f["path"] for f in manifest.get("files", [])}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def compare_bundle(bundle_dir: Path, files: list[BundleFile], tar_path: Path,
                   tar_bytes: bytes) -> list[tuple[str, str]]:
    """(status, path) for every file as writing would report it; touches nothing."""
    report = [(_status(bundle_dir / f.path, f.content, f.mode), str(bundle_dir / f.path))
              for f in files]
    wanted = {f.path for f in files}
    report += [("removed", str(bundle_dir / p)) for p in sorted(_previous_paths(bundle_dir) - wanted)
               if (bundle_dir / p).exists()]
    report.append((_status(tar_path, tar_bytes, 0o640), str(tar_path)))
    return report


def _atomic_write(target: Path, content: bytes, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def write_bundle(bundle_dir: Path, files: list[BundleFile], tar_path: Path,
                 tar_bytes: bytes) -> list[tuple[str, str]]:
    report = compare_bundle(bundle_dir, files, tar_path, tar_bytes)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        if _status(bundle_dir / f.path, f.content, f.mode) != "identical":
            _atomic_write(bundle_dir / f.path, f.content, f.mode)
    for status, path in report:
        if status == "removed":
            Path(path).unlink()
    # mkdir(parents=True) leaves the umask's mode on intermediate folders: no bundle folder
    # may be readable by others (scripts and configs are 0750/0640)
    for folder in {bundle_dir, *(bundle_dir / f.path for f in files)}:
        for parent in [folder, *folder.parents]:
            if parent.is_dir() and (parent == bundle_dir or bundle_dir in parent.parents):
                os.chmod(parent, 0o750)
    if _status(tar_path, tar_bytes, 0o640) != "identical":
        _atomic_write(tar_path, tar_bytes, 0o640)
    return report
