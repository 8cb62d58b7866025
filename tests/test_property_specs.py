"""Any valid spec set builds a bundle that passes its own checks: generated host and cluster
specs (vdev layouts, log and spares, nested datasets, one to several clusters of PostgreSQL
9.0 to 18, ports, hot standby on and off, retention counts, schedules, slots) must validate,
build, verify, pass shellcheck and carry their values into MANIFEST.json. A few of them also
run the bats suites (`check`), which read their expectations from MANIFEST facts only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import pitr_bundle
from generator.retention import cover

# a full version of every major the generator knows (the minor does not change the rules)
VERSIONS = ["9.0.23", "9.1.24", "9.2.24", "9.3.25", "9.4.26", "9.5.25", "9.6.24", "10.23",
            "11.22", "12.22", "13.23", "14.20", "15.15", "16.11", "17.7", "18.1"]
SLOTS_FROM = VERSIONS.index("9.4.26")
DISK_TYPES = {"raidz1": 3, "raidz2": 4, "raidz3": 5, "mirror": 2}
SCHEDULES = ["1 8 * * *", "*/15 * * * *", "0 * * * *", "30 2 * * 1-5", "5 0,12 * * *"]


def window_served(snapshots: dict):
    """A PITR window the drawn keep counts serve at the drawn schedule (validate refuses one
    they cannot); keep counts that serve not even a day get 3 monthly, which serve a month."""
    keep = snapshots["keep"]
    days = cover(snapshots["schedule"], keep, 400).minutes // 1440
    if days < 1:
        keep["monthly"] = max(keep["monthly"], 3)
        days = cover(snapshots["schedule"], keep, 400).minutes // 1440
    return st.integers(1, min(days, 400))


@st.composite
def spec_sets(draw) -> tuple[dict, list[dict]]:
    disks = iter(f"/dev/disk/by-id/ata-DISK_{n:03d}" for n in range(1000))
    vdevs = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(sorted(DISK_TYPES)))
        width = DISK_TYPES[kind] + draw(st.integers(0, 3))
        vdevs.append({"type": kind, "disks": [next(disks) for _ in range(width)]})
    pool = {"name": draw(st.sampled_from(["zp1", "tank", "backup.pool"])),
            "ashift": draw(st.sampled_from([9, 12, 13])), "vdevs": vdevs,
            "properties": {"compression": draw(st.sampled_from(["lz4", "zstd", "gzip-6"]))}}
    log = draw(st.sampled_from(["none", "single", "mirror"]))
    if log != "none":
        pool["log"] = {"type": log, "devices": [next(disks) for _ in range(1 if log == "single" else 2)]}
    pool["spares"] = [next(disks) for _ in range(draw(st.integers(0, 2)))]
    nest = draw(st.sampled_from(["", "backup/", "a/b/"]))
    name = pool["name"]
    host = {"name": "pitrx", "address": "10.1.0.10", "pool": pool,
            "datasets": {key: {"name": f"{name}/{nest}{key}", "mountpoint": f"/{key}"}
                         for key in ("pg_home", "pg_arch", "pg_log")}}
    if draw(st.booleans()):
        host["virtual_ip"] = "10.1.0.9"
    clusters = []
    count = draw(st.integers(1, 3))
    ports = draw(st.lists(st.integers(20000, 29000), min_size=count, max_size=count, unique=True))
    for index, port in enumerate(ports):
        version_index = draw(st.integers(0, len(VERSIONS) - 1))
        hot = draw(st.booleans())
        cluster = {
            "name": f"pg{index}x{draw(st.integers(0, 99))}", "host": "pitrx", "port": port,
            "dataset": f"{name}/{nest}c{index}",
            "postgres": {"version": VERSIONS[version_index]},
            "primary": {"address": f"10.2.{index}.1", "port": draw(st.sampled_from([5432, 1921, 6543]))},
            "standby": {"hot_standby": hot,
                        "settings": {"shared_buffers": "128MB",
                                     "max_connections": str(draw(st.integers(100, 300)))}},
            "snapshots": {"schedule": draw(st.sampled_from(SCHEDULES)),
                          "keep": {period: draw(st.integers(0, 40)) for period in
                                   ("hourly", "daily", "weekly", "monthly", "yearly")}},
        }
        cluster["archive"] = {"pitr_window_days": draw(window_served(cluster["snapshots"]))}
        if hot:  # a hot standby must not undercut the primary's max_connections
            cluster["primary"]["settings"] = {"max_connections": "100"}
        if version_index >= SLOTS_FROM and draw(st.booleans()):
            cluster["replication"] = {"user": "replicator", "slot": f"pitrx_{index}"}
        if draw(st.booleans()):
            cluster["primary"]["ha_partner"] = f"10.2.{index}.2"
        clusters.append(cluster)
    return host, clusters


def write_specs(folder: Path, host: dict, clusters: list[dict]) -> Path:
    (folder / "hosts").mkdir(parents=True)
    (folder / "clusters").mkdir()
    (folder / "hosts/pitrx.yaml").write_text(yaml.safe_dump(host, sort_keys=False))
    for cluster in clusters:
        (folder / f"clusters/{cluster['name']}.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    return folder


def built_bundle(tmp: Path, host: dict, clusters: list[dict]) -> Path:
    specs = write_specs(tmp / "specs", host, clusters)
    validate = pitr_bundle("validate", str(specs))
    assert validate.returncode == 0, validate.stderr
    pitr_bundle("build", str(specs), "-o", str(tmp / "out"), check=True)
    return tmp / "out/pitrx"


def assert_facts_follow_the_specs(bundle: Path, host: dict, clusters: list[dict]) -> None:
    facts = json.loads((bundle / "MANIFEST.json").read_text())["facts"]
    assert facts["pool"]["name"] == host["pool"]["name"]
    assert facts["pool"]["ashift"] == host["pool"]["ashift"]
    by_name = {c["name"]: c for c in facts["clusters"]}
    for cluster in clusters:
        fact = by_name[cluster["name"]]
        assert fact["port"] == cluster["port"]
        assert fact["postgres_version"] == cluster["postgres"]["version"]
        assert fact["snapshots"]["keep"] == cluster["snapshots"]["keep"]
        assert fact["archive"]["pitr_window_days"] == cluster["archive"]["pitr_window_days"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec_sets())
def test_any_valid_spec_set_builds_verifies_and_passes_shellcheck(tmp_path_factory, specs):
    host, clusters = specs
    tmp = tmp_path_factory.mktemp("prop")
    bundle = built_bundle(tmp, host, clusters)
    assert_facts_follow_the_specs(bundle, host, clusters)
    verify = subprocess.run(["bash", str(bundle / "verify.sh")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    check = pitr_bundle("check", "--no-bats", str(bundle))
    assert check.returncode == 0, check.stdout + check.stderr
    for script in sorted(bundle.rglob("*.sh")):
        helped = subprocess.run([str(script), "--help"], capture_output=True, text=True)
        assert helped.returncode == 0, f"{script} --help: {helped.stderr}"


def test_check_passes_on_three_clusters_with_another_retention(tmp_path):
    """The case a user reported: three clusters whose retention is not the default
    (daily 30, hourly 12) on other versions and schedules; the shipped suites take their
    expectations from MANIFEST facts, so `check` (bats included) passes."""
    host = {"name": "pitrx", "address": "10.1.0.10",
            "pool": {"name": "tank", "ashift": 12,
                     "vdevs": [{"type": "raidz2", "disks": [f"/dev/disk/by-id/ata-D{n}" for n in range(6)]}],
                     "log": {"type": "mirror", "devices": ["/dev/disk/by-id/nvme-L1", "/dev/disk/by-id/nvme-L2"]},
                     "spares": ["/dev/disk/by-id/ata-S1"]},
            "datasets": {key: {"name": f"tank/backup/{key}", "mountpoint": f"/{key}"}
                         for key in ("pg_home", "pg_arch", "pg_log")}}
    clusters = []
    for index, (version, hot) in enumerate([("12.22", False), ("16.11", True), ("9.6.24", False)]):
        cluster = {"name": f"crm{index}", "host": "pitrx", "port": 25001 + index,
                   "dataset": f"tank/backup/crm{index}",
                   "postgres": {"version": version},
                   "primary": {"address": f"10.2.{index}.1", "port": 5432},
                   "standby": {"hot_standby": hot,
                               "settings": {"shared_buffers": "128MB", "max_connections": "150"}},
                   "snapshots": {"schedule": "*/30 * * * *", "keep": {"daily": 30, "hourly": 12}}}
        if hot:
            cluster["primary"]["settings"] = {"max_connections": "100"}
            cluster["replication"] = {"user": "replicator", "slot": f"pitrx_{index}"}
        clusters.append(cluster)
    bundle = built_bundle(tmp_path, host, clusters)
    check = pitr_bundle("check", str(bundle))
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-4000:]
