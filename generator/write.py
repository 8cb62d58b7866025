"""Write a bundle to disk: compare bytes first, report new / changed / identical / removed,
write atomically, and never leave a half-written bundle behind a bad spec (the CLI only
calls this after every host rendered)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Union

from generator.bundle import BundleFile, bundle_folders

WRITE_THREADS = max(2, min(4, os.cpu_count() or 1))
TarBytes = Union[bytes, "Future[bytes]"]  # the tarball, or its packing still under way


def _status(target: Path, content: bytes, mode: int) -> str:
    """new / changed / identical, with one stat and, only when size and mode agree, one read."""
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return "new"
    if (not stat.S_ISREG(info.st_mode) or info.st_size != len(content)
            or (info.st_mode & 0o7777) != mode):
        return "changed"
    with open(target, "rb") as handle:
        return "identical" if handle.read() == content else "changed"


def _statuses(bundle_dir: Path, files: list[BundleFile]) -> list[str]:
    if not bundle_dir.is_dir():  # a first build: no need to look for 15,000 files one by one
        return ["new"] * len(files)
    return [_status(bundle_dir / f.path, f.content, f.mode) for f in files]


def _previous_paths(bundle_dir: Path) -> set[str]:
    """Files the last build wrote (from its MANIFEST): the only ones we may remove."""
    try:
        manifest = json.loads((bundle_dir / "MANIFEST.json").read_text())
        return {f["path"] for f in manifest.get("files", [])}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def _removed(bundle_dir: Path, files: list[BundleFile]) -> list[tuple[str, str]]:
    wanted = {f.path for f in files}
    return [("removed", str(bundle_dir / p)) for p in sorted(_previous_paths(bundle_dir) - wanted)
            if (bundle_dir / p).exists()]


def _tar_bytes(tar_bytes: TarBytes) -> bytes:
    return tar_bytes.result() if isinstance(tar_bytes, Future) else tar_bytes


def compare_bundle(bundle_dir: Path, files: list[BundleFile], tar_path: Path,
                   tar_bytes: TarBytes) -> list[tuple[str, str]]:
    """(status, path) for every file as writing would report it; touches nothing."""
    report = [(status, str(bundle_dir / f.path))
              for status, f in zip(_statuses(bundle_dir, files), files)]
    report += _removed(bundle_dir, files)
    report.append((_status(tar_path, _tar_bytes(tar_bytes), 0o640), str(tar_path)))
    return report


def _atomic_write(target: Path, content: bytes, mode: int) -> None:
    """A temporary file beside the target, then rename: a reader sees the old or the new
    file, never a part. The parent folder must exist."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _write_all(writes: list[tuple[Path, bytes, int]]) -> None:
    """Atomic writes, spread over a few threads: creating a file is kernel work (inode,
    directory entry, page cache) that runs outside the GIL, and a fleet's bundle has
    thousands. The first error stops the other threads and is raised."""
    jobs = min(WRITE_THREADS, len(writes) // 64)
    if jobs < 2:
        for target, content, mode in writes:
            _atomic_write(target, content, mode)
        return
    failed = threading.Event()

    def work(part: list[tuple[Path, bytes, int]]) -> None:
        try:
            for target, content, mode in part:
                if failed.is_set():
                    return
                _atomic_write(target, content, mode)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="write") as pool:
        futures = [pool.submit(work, writes[i::jobs]) for i in range(jobs)]
    for future in futures:
        future.result()  # raises the first failure, in a fixed order


def write_bundle(bundle_dir: Path, files: list[BundleFile], tar_path: Path,
                 tar_bytes: TarBytes) -> list[tuple[str, str]]:
    """Write what differs and report every file. tar_bytes may be a Future (the CLI packs
    the tarball in a thread meanwhile): it is waited for only after the bundle's files."""
    statuses = _statuses(bundle_dir, files)
    report = [(status, str(bundle_dir / f.path)) for status, f in zip(statuses, files)]
    report += _removed(bundle_dir, files)
    folders = [bundle_dir] + [bundle_dir / name for name in bundle_folders(files)]
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        # mkdir leaves the umask's mode: no bundle folder may be readable by others
        # (scripts and configs are 0750/0640)
        folder.mkdir(mode=0o750, exist_ok=True)
        os.chmod(folder, 0o750)
    _write_all([(bundle_dir / f.path, f.content, f.mode)
                for status, f in zip(statuses, files) if status != "identical"])
    for status, path in report:
        if status == "removed":
            Path(path).unlink()
    tar = _tar_bytes(tar_bytes)
    tar_status = _status(tar_path, tar, 0o640)
    if tar_status != "identical":
        _atomic_write(tar_path, tar, 0o640)
    report.append((tar_status, str(tar_path)))
    return report
