"""`pitr-bundle check`: checksums, shellcheck at all severities, and the shipped bats suites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import pitr_bundle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    pitr_bundle("build", "specs", "-o", str(out), check=True)
    return out / "pitr1"


def test_example_bundle_passes_shellcheck_and_bats(example_bundle):
    result = pitr_bundle("check", str(example_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksums: ok" in result.stdout
    assert "shellcheck:" in result.stdout and "clean" in result.stdout
    assert "bats: ok" in result.stdout
    assert "not ok" not in result.stdout + result.stderr


def test_check_refuses_a_bundle_with_a_changed_byte(example_bundle, tmp_path):
    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    script = copy / "host/10-pool.sh"
    script.write_bytes(script.read_bytes().replace(b"zpool create", b"zpool creatE", 1))
    result = pitr_bundle("check", str(copy), "--no-bats")
    assert result.returncode == 1
    assert "SHA256SUMS mismatch: host/10-pool.sh" in result.stderr


def test_shellcheck_findings_fail_the_check(example_bundle, tmp_path):
    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    script = copy / "host/20-datasets.sh"
    script.write_text(script.read_text().replace('main "$@"', 'echo $UNQUOTED\nmain "$@"'))
    result = pitr_bundle("check", str(copy), "--no-bats")
    assert result.returncode == 1
    assert "SC2086" in result.stdout or "SC2154" in result.stdout


# the fault test of each script role (generator/suites/*faults.bats); a new role needs one
FAULT_TESTS = {
    "pool": "the pool script",
    "datasets": "the datasets script",
    "nfs-exports": "the NFS exports script",
    "monitor": "the monitoring installer",
    "user": "the user script",
    "build": "the build script",
    "primary": "the primary-side script",
    "basebackup": "the base backup script",
    "standby": "the standby script",
    "snapshot": "the snapshot script",
    "snapshot-cron": "the snapshot-cron installer",
    "restore": "the restore script",
}
CHANGES_NOTHING = {"verify"}


def test_every_script_role_has_a_fault_test(example_bundle):
    manifest = json.loads((example_bundle / "MANIFEST.json").read_text())
    roles = {f["role"] for f in manifest["files"] if f["path"].endswith(".sh")}
    suites = "".join(p.read_text() for p in (REPO / "generator/suites").glob("*faults.bats"))
    missing = sorted(role for role in roles - CHANGES_NOTHING if role not in FAULT_TESTS)
    assert not missing, f"script roles without a fault test: {missing}"
    for role in roles - CHANGES_NOTHING:
        assert f'@test "faults: {FAULT_TESTS[role]}' in suites, role
