"""Installers carry the files they install (the primary step its archive helper and boot mount
script, the cron installer snapshot.sh and wal-retention.sh, the drill installer drill.sh and
restore.sh, the monitor installer and a retired cluster's 90-retire.sh monitor.sh): each
carried copy is byte for byte the bundle's own file, the one reviewers read and SHA256SUMS
lists."""

from __future__ import annotations

import json
import re

from conftest import pitr_bundle

def test_every_carried_copy_is_the_bundles_own_file(specs_copy, tmp_path):
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    bundle = out / "pitr1"
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    checked = 0
    for cluster in manifest["facts"]["clusters"]:
        base = bundle / "clusters" / cluster["name"]
        step = (base / "primary/45-apply-on-primary.sh").read_text()
        for marker, name in (("HELPER", "pitr-archive-wal.sh"), ("MOUNT", "pitr-archive-mount.sh")):
            carried = re.search(rf"cat <<'{marker}'\n(.*?)\n{marker}\n", step, re.S)
            assert carried, f"{cluster['name']}: no {marker} heredoc in the primary step"
            assert carried.group(1) + "\n" == (base / "primary" / name).read_text(), name
            checked += 1
        snapshot_installer = (base / "70-install-snapshot-cron.sh").read_text()
        for name in ("snapshot.sh", "wal-retention.sh"):
            assert (base / name).read_text() in snapshot_installer, name
            checked += 1
        drill_installer = base / "75-install-drill-cron.sh"
        if drill_installer.exists():
            for name in ("drill.sh", "restore.sh"):
                assert (base / name).read_text() in drill_installer.read_text(), name
                checked += 1
    assert (bundle / "host/monitor.sh").read_text() in (bundle / "host/80-install-monitor.sh").read_text()
    assert checked == 6 * len(manifest["facts"]["clusters"])


def test_the_retire_scripts_copy_of_the_monitor_is_the_bundles_own(specs_copy, tmp_path):
    """90-retire.sh replaces an installed check that still checks its cluster with this copy."""
    cluster = specs_copy / "clusters/pg168104.yaml"
    cluster.write_text("retired: true\n" + cluster.read_text())
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    bundle = out / "pitr1"
    retire = (bundle / "clusters/pg168104/90-retire.sh").read_text()
    carried = re.search(r"cat <<'CHECK_SCRIPT'\n(.*?)\nCHECK_SCRIPT\n", retire, re.S)
    assert carried and carried.group(1) + "\n" == (bundle / "host/monitor.sh").read_text()
    assert "check_cluster pg168104" not in carried.group(1)
