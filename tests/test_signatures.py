"""Signed reviews with real OpenSSH (ssh-keygen -Y sign/verify): a host that requires N
signers refuses, in verify.sh and in every script's self-check, a bundle without N valid
signatures over its exact SHA256SUMS, and a script copied out of its bundle."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import pitr_bundle
from test_validate import edit

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")


def keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.org",
                    "-f", str(key)], check=True)
    return key


@pytest.fixture
def review(specs_copy, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    alice, bob, mallory = (keypair(keys, n) for n in ("alice", "bob", "mallory"))
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("".join(
        f'{k.name}@example.org namespaces="pitr-bundle" {Path(f"{k}.pub").read_text().split()[0]} '
        f'{Path(f"{k}.pub").read_text().split()[1]}\n' for k in (alice, bob)))
    edit(specs_copy / "hosts/pitr1.yaml", "nfs:\n",
         f"review:\n  signatures_required: 2\n  allowed_signers: {allowed}\nnfs:\n")
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    return {"alice": alice, "bob": bob, "mallory": mallory, "out": out, "specs": specs_copy}


def verify(bundle: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(bundle / "verify.sh")], capture_output=True, text=True)


def script(bundle: Path, path: str = "host/10-pool.sh") -> subprocess.CompletedProcess:
    return subprocess.run([str(bundle / path), "--help"], capture_output=True, text=True)


def sign(bundle: Path, key: Path) -> None:
    pitr_bundle("sign", str(bundle), "--key", str(key), check=True)


def test_two_signers_required(review, tmp_path):
    bundle = review["out"] / "pitr1"
    first = verify(bundle)
    assert first.returncode == 3 and "valid signatures of 0 allowed signer(s)" in first.stderr
    assert script(bundle).returncode == 3
    sign(bundle, review["alice"])
    assert (bundle / "signatures/alice@example.org.sig").is_file()
    one = verify(bundle)
    assert one.returncode == 3 and "1 allowed signer(s) (alice@example.org)" in one.stderr
    sign(bundle, review["mallory"])  # a valid signature of a key the host does not allow
    assert verify(bundle).returncode == 3 and script(bundle).returncode == 3
    sign(bundle, review["bob"])
    accepted = verify(bundle)
    assert accepted.returncode == 0, accepted.stderr
    assert script(bundle).returncode == 0
    assert script(bundle, "clusters/pg168121/restore.sh").returncode == 0

    # the tarball carries the signatures, and a rebuild keeps them while nothing changed
    unpacked = tmp_path / "unpacked"
    with tarfile.open(review["out"] / "pitr1.tar.gz") as archive:
        archive.extractall(unpacked, filter="data")
    assert verify(unpacked / "pitr1").returncode == 0
    again = pitr_bundle("build", str(review["specs"]), "-o", str(review["out"]), check=True)
    assert all(line.startswith("identical") for line in again.stdout.splitlines()), again.stdout


def test_one_byte_changed_or_sums_forged_is_refused(review, tmp_path):
    bundle = review["out"] / "pitr1"
    for key in ("alice", "bob"):
        sign(bundle, review[key])
    target = bundle / "host/20-datasets.sh"
    original = target.read_bytes()
    target.write_bytes(original.replace(b"zfs", b"zFs", 1))
    assert verify(bundle).returncode == 1
    assert script(bundle, "host/20-datasets.sh").returncode == 3
    # the changed script's digest written into SHA256SUMS too: the signatures no longer fit
    digest = subprocess.run(["sha256sum", str(target)], capture_output=True, text=True).stdout.split()[0]
    sums = bundle / "SHA256SUMS"
    sums.write_text("".join(f"{digest}  host/20-datasets.sh\n" if line.endswith(" host/20-datasets.sh")
                            else line + "\n" for line in sums.read_text().splitlines()))
    forged = script(bundle, "host/20-datasets.sh")
    assert forged.returncode == 3 and "valid signatures of 0 allowed signer(s)" in forged.stderr
    assert verify(bundle).returncode == 3


def test_signatures_of_an_older_bundle_do_not_sign_a_newer_one(review, tmp_path):
    bundle = review["out"] / "pitr1"
    for key in ("alice", "bob"):
        sign(bundle, review[key])
    old_signatures = tmp_path / "old-signatures"
    shutil.copytree(bundle / "signatures", old_signatures)
    edit(review["specs"] / "clusters/pg168121.yaml", "port: 19212", "port: 19213")
    stale = pitr_bundle("build", str(review["specs"]), "-o", str(review["out"]), "--check")
    assert stale.returncode == 1
    assert "signatures stale: 2 reviewers must sign again" in stale.stdout
    result = pitr_bundle("build", str(review["specs"]), "-o", str(review["out"]), check=True)
    assert f"removed    {bundle / 'signatures/alice@example.org.sig'}" in result.stdout
    # who must sign again, and the command, said once
    assert ("signatures removed: 2 reviewers must sign again (alice@example.org, bob@example.org), "
            f"each with: pitr-bundle sign {bundle} --key KEY") in result.stdout.splitlines()
    sign(bundle, review["alice"])
    edit(review["specs"] / "clusters/pg168121.yaml", "port: 19213", "port: 19214")
    result = pitr_bundle("build", str(review["specs"]), "-o", str(review["out"]), check=True)
    assert "signatures removed: 1 reviewer must sign again (alice@example.org)," in result.stdout
    shutil.copytree(old_signatures, bundle / "signatures")
    refused = verify(bundle)
    assert refused.returncode == 3 and "0 allowed signer(s)" in refused.stderr
    assert script(bundle).returncode == 3


def test_a_script_copied_alone_is_refused(review, tmp_path):
    bundle = review["out"] / "pitr1"
    for key in ("alice", "bob"):
        sign(bundle, review[key])
    alone = tmp_path / "alone.sh"
    shutil.copy2(bundle / "host/10-pool.sh", alone)
    result = subprocess.run([str(alone), "--help"], capture_output=True, text=True)
    assert result.returncode == 3 and "this host requires a signed bundle" in result.stderr


def test_without_a_requirement_a_script_copied_alone_warns(specs_copy, tmp_path):
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"), check=True)
    alone = tmp_path / "alone.sh"
    shutil.copy2(tmp_path / "out/pitr1/host/10-pool.sh", alone)
    result = subprocess.run([str(alone), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "runs outside its bundle" in result.stderr and "integrity is not checked" in result.stderr


def test_sign_refuses_a_bundle_that_does_not_verify_and_a_bad_reviewer_name(review):
    bundle = review["out"] / "pitr1"
    (bundle / "host/15-evil.sh").write_text("x")
    result = pitr_bundle("sign", str(bundle), "--key", str(review["alice"]))
    assert result.returncode == 2 and "does not verify, refusing to sign" in result.stderr
    (bundle / "host/15-evil.sh").unlink()
    result = pitr_bundle("sign", str(bundle), "--key", str(review["alice"]), "--reviewer", "../x")
    assert result.returncode == 2 and "reviewer name" in result.stderr
