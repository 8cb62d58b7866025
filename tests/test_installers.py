"""What installers install. The cron installers and the monitor installer carry no copy of the
files they install (snapshot.sh, wal-retention.sh, snapshot.cron; drill.sh, restore.sh,
drill.cron; monitor.sh): they install the bundle's own files from beside them, each checked
against SHA256SUMS first, refusing (exit 3, nothing installed) one that is missing or
altered. The primary step, which runs on the primary, still carries its archive helper and
boot mount script, byte for byte the bundle's own files."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from conftest import pitr_bundle
from generator.audit import suites_dir, tool

# (installer, the files it installs), relative to the cluster's folder or the bundle
CLUSTER_INSTALLERS = {"70-install-snapshot-cron.sh": ("snapshot.sh", "wal-retention.sh",
                                                      "snapshot.cron"),
                      "75-install-drill-cron.sh": ("drill.sh", "restore.sh", "drill.cron")}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("installers") / "out"
    pitr_bundle("build", "specs", "-o", str(out), check=True)
    return out / "pitr1"


def _clusters(bundle) -> list[str]:
    return [c["name"] for c in json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"]]


def test_installers_name_the_bundles_files_and_carry_no_copy(bundle):
    checked = 0
    pairs = [(bundle / "host/80-install-monitor.sh", "host/monitor.sh"),
             (bundle / "host/80-install-monitor.sh", "host/scrub.cron"),
             (bundle / "host/81-install-status.sh", "host/status.sh")]
    for name in _clusters(bundle):
        for installer, installed in CLUSTER_INSTALLERS.items():
            if (bundle / "clusters" / name / installer).exists():
                pairs += [(bundle / "clusters" / name / installer, f"clusters/{name}/{f}")
                          for f in installed]
    for installer, path in pairs:
        text = installer.read_text()
        assert f"={path}\n" in text, f"{installer.name} does not name {path}"
        # no line of the installed file's body (past the shared preamble) is in the installer
        body = (bundle / path).read_text()
        own = [line for line in body.splitlines() if len(line) > 40 and line not in text]
        assert own, f"{installer.name} carries a copy of {path}"
        assert "<<'SNAPSHOT_SCRIPT'" not in text and "<<'CHECK_SCRIPT'" not in text
        checked += 1
    assert checked == 3 + 6 * len(_clusters(bundle))
    # lean: each installer is far smaller than what it installs
    monitor_installer = (bundle / "host/80-install-monitor.sh").stat().st_size
    assert monitor_installer < (bundle / "host/monitor.sh").stat().st_size


def test_the_primary_step_carries_its_helper_and_mount_script_byte_for_byte(bundle):
    nfs = [name for name in _clusters(bundle) if (bundle / "clusters" / name / "primary/pitr-archive-wal.sh").exists()]
    assert nfs == ["pg168104"]  # the example's 9.0; pg168121 archives through its standby
    for name in nfs:
        base = bundle / "clusters" / name / "primary"
        step = (base / "45-apply-on-primary.sh").read_text()
        for marker, carried_name in (("HELPER", "pitr-archive-wal.sh"),
                                     ("MOUNT", "pitr-archive-mount.sh")):
            carried = re.search(rf"cat <<'{marker}'\n(.*?)\n{marker}\n", step, re.S)
            assert carried, f"{name}: no {marker} heredoc in the primary step"
            assert carried.group(1) + "\n" == (base / carried_name).read_text(), carried_name


def test_installers_install_checked_files_and_refuse_altered_ones(bundle):
    """The shipped suites' installer tests on the example bundle: the bundle's own file is
    installed byte for byte (root, its mode), once; --dry-run names it and installs nothing;
    a file beside the installer that differs from SHA256SUMS (monitor.sh, snapshot.sh,
    wal-retention.sh, restore.sh), a missing one and a missing SHA256SUMS are refused with
    exit 3 and nothing installed."""
    suites = [suites_dir() / s for s in ("monitor.bats", "cluster-snapshot-cron.bats",
                                         "cluster-drill-cron.bats")]
    result = subprocess.run(
        [tool("bats"), "--formatter", "tap", "--print-output-on-failure",
         "--filter", "installer|snapshot-cron:", *map(str, suites)],
        env=dict(os.environ, PITR_BUNDLE_DIR=str(bundle)), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    refused = [line for line in passed if "refused (3)" in line]
    assert len(refused) == 3, result.stdout
    assert any("byte for byte" in line for line in passed), result.stdout
