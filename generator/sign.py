"""Signed reviews: a reviewer signs the bundle's SHA256SUMS with their OpenSSH key
(`ssh-keygen -Y sign`, namespace pitr-bundle); the signature lives in the bundle as
signatures/<reviewer>.sig and travels in the tarball. A host whose spec requires N signers
checks them in verify.sh and in every script's self-check (templates/lib/signatures.sh.j2)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from generator.audit import verify_sums
from generator.bundle import BundleFile, tarball
from generator.contents import SIGNATURES_DIR, SIGNATURE_SUFFIX, SUMS, is_signature, listed_names
from generator.errors import UsageError
from generator.write import atomic_write

NAMESPACE = "pitr-bundle"
SIGNATURE_MODE = 0o640
REVIEWER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def kept_signatures(bundle_dir: Path, files: list[BundleFile]) -> list[BundleFile]:
    """The signatures on disk, as files of the new bundle, while SHA256SUMS is unchanged:
    they signed exactly these bytes. When it changed they are stale, and build removes them."""
    sums = next((f.content for f in files if f.path == SUMS), None)
    try:
        if sums is None or (bundle_dir / SUMS).read_bytes() != sums:
            return []
        found = sorted((bundle_dir / SIGNATURES_DIR).iterdir())
    except OSError:
        return []
    return [BundleFile(f"{SIGNATURES_DIR}/{p.name}", p.read_bytes(), SIGNATURE_MODE)
            for p in found if is_signature(f"{SIGNATURES_DIR}/{p.name}")
            and p.is_file() and not p.is_symlink()]


def _reviewer(key: Path, reviewer: str | None) -> str:
    """The signature's file name: --reviewer, else the comment of the key (user@host)."""
    if reviewer is None:
        public = Path(f"{key}.pub")
        try:
            words = public.read_text().split()
        except OSError:
            raise UsageError(f"{public} not found: name the reviewer with --reviewer") from None
        reviewer = words[2] if len(words) > 2 else ""
    if not REVIEWER.match(reviewer):
        raise UsageError(f"reviewer name {reviewer!r}: use letters, digits and ._@+- "
                         "(--reviewer NAME)")
    return reviewer


def bundle_files(bundle_dir: Path) -> list[BundleFile]:
    """The bundle as written: every file SHA256SUMS lists, SHA256SUMS and the signatures."""
    names = sorted(listed_names((bundle_dir / SUMS).read_text()) | {SUMS})
    signatures = bundle_dir / SIGNATURES_DIR
    if signatures.is_dir():
        names += sorted(f"{SIGNATURES_DIR}/{p.name}" for p in signatures.iterdir()
                        if is_signature(f"{SIGNATURES_DIR}/{p.name}") and p.is_file())
    return sorted((BundleFile(name, (bundle_dir / name).read_bytes(),
                              (bundle_dir / name).stat().st_mode & 0o7777) for name in names),
                  key=lambda f: f.path)


def sign_bundle(bundle_dir: Path, key: Path, reviewer: str | None) -> list[str]:
    """Sign bundle_dir's SHA256SUMS as reviewer; refresh <host>.tar.gz beside the folder.
    Returns the paths written. Refuses a bundle that does not verify: a signature says these
    exact bytes were reviewed."""
    if not (bundle_dir / SUMS).is_file():
        raise UsageError(f"{bundle_dir}: no {SUMS} (is this a bundle folder?)")
    bad = verify_sums(bundle_dir)
    if bad:
        raise UsageError(f"{bundle_dir} does not verify, refusing to sign it: {', '.join(bad)}")
    name = _reviewer(key, reviewer)
    with tempfile.TemporaryDirectory(prefix="pitr-bundle-sign-") as temp:
        copy = Path(temp) / SUMS
        copy.write_bytes((bundle_dir / SUMS).read_bytes())
        run = subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(copy)],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if run.returncode != 0:
            raise UsageError(f"ssh-keygen -Y sign with {key} failed: {run.stderr.strip()}")
        signature = Path(f"{copy}.sig").read_bytes()
    folder = bundle_dir / SIGNATURES_DIR
    folder.mkdir(mode=0o750, exist_ok=True)
    target = folder / f"{name}{SIGNATURE_SUFFIX}"
    atomic_write(target, signature, SIGNATURE_MODE)
    written = [str(target)]
    tar_path = bundle_dir.parent / f"{bundle_dir.name}.tar.gz"
    if tar_path.exists():
        atomic_write(tar_path, tarball(bundle_dir.name, bundle_files(bundle_dir)), 0o640)
        written.append(str(tar_path))
    return written
