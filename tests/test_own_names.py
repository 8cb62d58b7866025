"""Generated files speak of their own host only: the example specs with the host, pool,
datasets, their mountpoints and the addresses renamed build a bundle in which none of the
example's names (nor an older example's, zp1/standby/crm14) appears: a template that writes an
example name instead of the spec's value would show here."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import EXAMPLE_SPECS, pitr_bundle

RENAMED = {"zp1": "tank", "pitr1": "bk7", "192.168.1.": "10.9.8.", "/pg_home": "/srv/pgh",
           "/pg_arch": "/srv/pga", "/pg_log": "/srv/pgl"}
FOREIGN = [*RENAMED, "crm14", "standby/"]


def test_no_generated_file_names_the_examples_pool_datasets_or_addresses(tmp_path: Path):
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    for path in specs.rglob("*.yaml"):
        text = path.read_text()
        for old, new in RENAMED.items():
            text = text.replace(old, new)
        path.write_text(text)
    (specs / "hosts/pitr1.yaml").rename(specs / "hosts/bk7.yaml")
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    found = []
    for path in sorted((tmp_path / "out/bk7").rglob("*")):
        if path.is_file() and path.suffix != ".gz":
            text = path.read_text(errors="replace")
            found += [f"{path.relative_to(tmp_path)}: {name}" for name in FOREIGN if name in text]
    assert found == []
    # the datasets script: the archive's hardening, with the spec's own names
    datasets = (tmp_path / "out/bk7/host/20-datasets.sh").read_text()
    assert "ensure_dataset tank/srv/pga /srv/pga devices=off exec=off setuid=off" in datasets
