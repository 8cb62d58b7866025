"""A fleet through Ansible: the inventory and playbook of `build --ansible`, run by a real
ansible-playbook (ansible-core) with a local connection against this machine, on the example
specs with only disks and paths changed (sparse files on zfs-fuse). Check mode changes
nothing; the first run applies; the second reports nothing changed; a tampered tarball stops
it before any script runs."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLE_SPECS, backend_missing, pitr_bundle
from zfs_fuse import destroy_pool, sparse_disks

pytestmark = pytest.mark.zfs


def derived_specs(root: Path, pool: str) -> Path:
    """specs/ with the disks made sparse files and the paths moved under root."""
    specs = root / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    # the replica's disks are not here (its pull is tests/test_replica_zfs_fuse.py's)
    (specs / "hosts/pitr2.yaml").unlink()
    host_file = specs / "hosts/pitr1.yaml"
    host = yaml.safe_load(host_file.read_text())
    disks = [str(d) for d in sparse_disks(root / "disks", 13)]
    host["pool"].update({"name": pool, "device_paths": "any", "pool_options": {"cachefile": "none"},
                         "mountpoint": f"{root}/mnt/{pool}",
                         "vdevs": [{"type": "raidz1", "disks": disks[:11]}],
                         "log": {"type": "single", "devices": [disks[11]]}, "spares": [disks[12]]})
    host["pool"]["properties"]["compression"] = "lzjb"  # zfs-fuse has no lz4
    for key, dataset in host["datasets"].items():
        dataset.update({"name": f"{pool}/{key}", "mountpoint": f"{root}/mnt/{key}"})
    host_file.write_text(yaml.safe_dump(host))
    for cluster_file in (specs / "clusters").glob("*.yaml"):
        cluster = yaml.safe_load(cluster_file.read_text())
        cluster["dataset"] = f"{pool}/{cluster['name']}"
        cluster["mountpoint"] = f"{root}/mnt/{cluster['name']}"
        cluster_file.write_text(yaml.safe_dump(cluster))
    return specs


def playbook(out: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    ansible = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    return subprocess.run(
        [ansible, "-i", str(out / "ansible/inventory.yml"), str(out / "ansible/site.yml"),
         "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"pitr_bundle_root={root}/deployed", "-e", "pitr_bundle_assume_yes=true",
         "-e", '{"pitr_bundle_steps": ["host/10-pool.sh", "host/20-datasets.sh"]}', *extra],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "0", "HOME": str(root),
             "ANSIBLE_LOCAL_TEMP": str(root / "ansible-tmp"), "LC_ALL": "C.UTF-8"})


def recap(result: subprocess.CompletedProcess) -> dict[str, int]:
    match = re.search(r"pitr1\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def pool_exists(pool: str) -> bool:
    return subprocess.run(["zpool", "list", pool], capture_output=True).returncode == 0


@pytest.fixture
def fleet(zfs_fuse, tmp_path):
    if not (shutil.which("ansible-playbook") or (Path(sys.executable).parent / "ansible-playbook").exists()):
        backend_missing("ansible-playbook missing: pip install ansible-core (tests/run installs it)")
    pool = "pan" + secrets.token_hex(3)
    specs = derived_specs(tmp_path, pool)
    out = tmp_path / "out"
    pitr_bundle("build", str(specs), "-o", str(out), "--ansible", check=True)
    yield pool, out, tmp_path
    destroy_pool(pool)


def test_check_mode_then_apply_then_nothing_changed(fleet):
    pool, out, root = fleet
    dry = playbook(out, root, "--check")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert recap(dry)["changed"] >= 1  # the pool script would create the pool
    assert "dry-run: would run: zpool create" in dry.stdout
    assert not pool_exists(pool)

    first = playbook(out, root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first)["changed"] >= 2 and pool_exists(pool)
    datasets = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], capture_output=True,
                              text=True, check=True).stdout.split()
    assert f"{pool}/pg168121" in datasets and f"{pool}/pg_arch" in datasets
    assert (root / "deployed/current/verify.sh").is_file()

    second = playbook(out, root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["changed"] == 0, second.stdout


def test_a_tampered_tarball_stops_the_play_before_any_script(fleet):
    pool, out, root = fleet
    tarball = out / "pitr1.tar.gz"
    original = tarball.read_bytes()
    tarball.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    result = playbook(out, root)
    assert result.returncode != 0 and "is not the tarball pitr-bundle built" in result.stdout
    assert not pool_exists(pool)

    # a tarball repacked with a script added, its sha256 put into the inventory too:
    # the bundle's own verify.sh stops it
    unpacked = root / "unpacked"
    tarball.write_bytes(original)
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    (unpacked / "pitr1/host/15-evil.sh").write_text("#!/bin/bash\ntouch /tmp/evil\n")
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(unpacked / "pitr1", arcname="pitr1")
    inventory = out / "ansible/inventory.yml"
    digest = subprocess.run(["sha256sum", str(tarball)], capture_output=True, text=True).stdout.split()[0]
    inventory.write_text(re.sub(r"pitr_bundle_sha256: \w+", f"pitr_bundle_sha256: {digest}",
                                inventory.read_text()))
    result = playbook(out, root)
    assert result.returncode != 0
    assert "FOREIGN host/15-evil.sh" in result.stdout
    assert not pool_exists(pool)
