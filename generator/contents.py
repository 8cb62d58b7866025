"""What may stand in a bundle folder: the files SHA256SUMS lists, SHA256SUMS itself, and the
reviewers' signatures of SHA256SUMS in signatures/. Anything else is foreign: a script
dropped beside the others would otherwise pass every check, so build removes it and
verify.sh, `check` and `build --check` name it."""

from __future__ import annotations

import os
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from generator.errors import UsageError

SUMS = "SHA256SUMS"
SIGNATURES_DIR = "signatures"
SIGNATURE_SUFFIX = ".sig"


def is_signature(name: str) -> bool:
    """signatures/<reviewer>.sig, one level deep (verify.sh applies the same rule)."""
    folder, _, base = name.partition("/")
    return (folder == SIGNATURES_DIR and "/" not in base and base.endswith(SIGNATURE_SUFFIX)
            and len(base) > len(SIGNATURE_SUFFIX))


def listed_names(sums_text: str) -> set[str]:
    return {line.partition("  ")[2] for line in sums_text.splitlines() if "  " in line}


def entries(bundle_dir: Path) -> tuple[list[str], list[str]]:
    """Every non-folder entry (files, links, anything else) and every real folder below
    bundle_dir, relative with '/'; links are never followed."""
    files, folders = [], []
    for root, dirnames, filenames in os.walk(bundle_dir):
        relative_root = os.path.relpath(root, bundle_dir)
        prefix = "" if relative_root == "." else relative_root.replace(os.sep, "/") + "/"
        for name in list(dirnames):
            if os.path.islink(os.path.join(root, name)):  # a link to a folder is a foreign file
                dirnames.remove(name)
                files.append(prefix + name)
            else:
                folders.append(prefix + name)
        files += [prefix + name for name in filenames]
    return sorted(files), sorted(folders)


def foreign_files(bundle_dir: Path, listed: set[str]) -> list[str]:
    """Entries of the folder that are neither listed in SHA256SUMS, nor SHA256SUMS, nor a
    signature (a signature is a regular file, not a link)."""
    files, _ = entries(bundle_dir)
    return [name for name in files
            if name not in listed and name != SUMS
            and not (is_signature(name) and not os.path.islink(bundle_dir / name))]


@contextmanager
def bundle_at(path: Path) -> Iterator[Path]:
    """The bundle folder at path: the folder itself, or a bundle tarball (<host>.tar.gz)
    unpacked into a temporary folder for as long as the caller needs it. Unpacking uses
    tarfile's "data" filter: no links out of the folder, no absolute paths, no devices."""
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise UsageError(f"{path}: no such bundle folder or tarball")
    if not tarfile.is_tarfile(path):
        raise UsageError(f"{path}: neither a bundle folder nor a tar archive")
    with tempfile.TemporaryDirectory(prefix="pitr-bundle-") as temp:
        try:
            with tarfile.open(path) as archive:
                archive.extractall(temp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise UsageError(f"{path}: cannot unpack ({exc})") from None
        tops = [p for p in Path(temp).iterdir()]
        if len(tops) != 1 or not tops[0].is_dir():
            raise UsageError(f"{path}: a bundle tarball holds exactly one folder (<host>/), "
                             f"this one holds {', '.join(sorted(p.name for p in tops)) or 'nothing'}")
        yield tops[0]
