"""Write a bundle to disk: compare bytes first, report new / changed / identical / removed,
write atomically, and never leave a half-written bundle behind a bad spec (the CLI only
calls this after every host rendered)."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Union

from generator.bundle import BundleFile, bundle_folders
from generator.contents import SIGNATURES_DIR, SUMS, entries, is_signature
from generator.errors import UsageError

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


def _owned(bundle_dir: Path) -> None:
    """build owns out/<host>/ and removes what is not part of the bundle: only where an
    earlier build left its MANIFEST.json (or the folder is empty), never in a folder that
    someone else's files happen to share a name with."""
    if (bundle_dir.exists() and not (bundle_dir / "MANIFEST.json").is_file()
            and any(bundle_dir.iterdir())):
        raise UsageError(f"{bundle_dir} exists and is not a pitr-bundle bundle folder (no "
                         "MANIFEST.json): move it away or choose another -o folder")


def _removed(bundle_dir: Path, files: list[BundleFile]) -> list[tuple[str, str]]:
    """Everything in the folder that the bundle does not hold: files of an earlier build,
    files dropped in by hand, and the reviewers' signatures once SHA256SUMS changes (they
    signed other bytes). Folders that hold nothing of the bundle go too, deepest first."""
    if not bundle_dir.is_dir():
        return []
    _owned(bundle_dir)
    wanted = {f.path for f in files}
    sums = next((f.content for f in files if f.path == SUMS), None)
    try:
        signatures_valid = (bundle_dir / SUMS).read_bytes() == sums
    except OSError:
        signatures_valid = False
    found, found_folders = entries(bundle_dir)
    keep_folders = set(bundle_folders(files))
    if signatures_valid:
        keep_folders.add(SIGNATURES_DIR)
    gone = [name for name in found if name not in wanted
            and not (signatures_valid and is_signature(name) and not (bundle_dir / name).is_symlink())]
    gone += sorted((name for name in found_folders if name not in keep_folders),
                   key=lambda name: -name.count("/"))
    return [("removed", str(bundle_dir / name)) for name in gone]


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


def atomic_write(target: Path, content: bytes, mode: int) -> None:
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
            atomic_write(target, content, mode)
        return
    failed = threading.Event()

    def work(part: list[tuple[Path, bytes, int]]) -> None:
        try:
            for target, content, mode in part:
                if failed.is_set():
                    return
                atomic_write(target, content, mode)
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
            target = Path(path)
            if target.is_dir() and not target.is_symlink():
                target.rmdir()  # its files came before it in the report
            else:
                target.unlink()
    tar = _tar_bytes(tar_bytes)
    tar_status = _status(tar_path, tar, 0o640)
    if tar_status != "identical":
        atomic_write(tar_path, tar, 0o640)
    report.append((tar_status, str(tar_path)))
    return report


def write_file(target: Path, content: bytes, mode: int, check: bool) -> tuple[str, str]:
    """One file outside any bundle (the fleet's Ansible files): new / changed / identical,
    written atomically unless check."""
    status = _status(target, content, mode)
    if status != "identical" and not check:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, content, mode)
    return status, str(target)
