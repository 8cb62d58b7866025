"""pitr-bundle plan: the example bundle's backup-host scripts with --dry-run on a simulated
fresh host show the literal commands a reviewer should expect, and change nothing."""

from __future__ import annotations

import json

from conftest import pitr_bundle


def test_plan_of_the_example_bundle_shows_the_literal_commands(specs_copy, tmp_path):
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    manifest = json.loads((out / "pitr1/MANIFEST.json").read_text())
    facts = manifest["facts"]
    result = pitr_bundle("plan", str(out / "pitr1.tar.gz"))
    text = result.stdout
    assert "== host/10-pool.sh (pool, DESTRUCTIVE)" in text
    assert ("   $ zpool create -o ashift=12 -O atime=off -O canmount=off -O compression=lz4 "
            f"-O dedup=off zp1 {' '.join(facts['pool']['vdev_args'])}\n") in text
    for dataset in facts["datasets"]:
        assert f"   $ zfs create -o mountpoint={dataset['mountpoint']} {dataset['name']}\n" in text
    # every backup-host script of the run order has its section, in order
    sections = [line.split()[1] for line in text.splitlines() if line.startswith("== ")]
    ordered = sorted((f for f in manifest["files"] if f["order"] is not None
                      and f["role"] != "verify" and f["runs_on"] == "backup host"),
                     key=lambda f: (f["order"], f["path"]))
    assert sections == [f["path"] for f in ordered]
    # a script that stops says why; the exit status says whether any stopped
    for line in text.splitlines():
        if "STOPPED" in line:
            assert line.split(": ", 1)[1].strip()
    assert result.returncode == (1 if "STOPPED" in text else 0)
