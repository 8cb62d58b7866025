"""host/15-vip.sh for real: the kernel's routing, inside network namespaces made by the test.

Two namespaces joined by a veth pair: "backup" (the backup host: interface bond0 as the example
spec names it, 10.231.0.1/24) and "primary" (the primaries: 10.231.0.2 and 10.231.0.5 on the
shared subnet, 10.232.0.2 and 10.232.0.4 behind 10.231.0.2 as a gateway). A listener in the
primary namespace reports the source address of each TCP connection it gets. Before the script
runs, connections come from 10.231.0.1; after it, from the VIP 10.231.0.9, whether the primary is
on the subnet or behind the gateway; after --remove, from 10.231.0.1 again. Nothing leaves the
namespaces (their only link is the veth pair between them); both are deleted at the end.

The spec is the example's with only addresses changed. systemd does not run on this machine:
systemctl is a stub that records its calls, and the unit file goes to the test's folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLE_SPECS, backend_missing, pitr_bundle

PORT = 27101
BACKUP_ADDRESS, VIP = "10.231.0.1", "10.231.0.9"
# (address, on the subnet or behind the gateway) of each primary and HA partner
NODES = {"10.232.0.2": "lo", "10.231.0.2": "veth", "10.232.0.4": "lo", "10.231.0.5": "veth"}

LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(8)
print("ready", flush=True)
while True:
    conn, peer = server.accept()
    conn.sendall(peer[0].encode() + b"\\n")
    conn.close()
"""

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.recv(100).decode().strip())
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture
def namespaces():
    if os.geteuid() != 0 or not shutil.which("ip"):
        backend_missing("network namespaces need root and iproute2")
    tag = uuid.uuid4().hex[:6]
    backup, primary = f"pitrvipB{tag}", f"pitrvipP{tag}"
    made = []
    try:
        for name in (backup, primary):
            if sh("ip", "netns", "add", name, check=False).returncode != 0:
                backend_missing("ip netns add failed: no network namespaces here")
            made.append(name)
        # the veth pair is created inside the namespaces: no interface on the host's own stack
        sh("ip", "link", "add", "bond0", "netns", backup, "type", "veth",
           "peer", "name", "p0", "netns", primary)
        sh("ip", "-n", backup, "address", "add", f"{BACKUP_ADDRESS}/24", "dev", "bond0")
        for address, where in NODES.items():
            if where == "veth":
                sh("ip", "-n", primary, "address", "add", f"{address}/24", "dev", "p0")
            else:
                sh("ip", "-n", primary, "address", "add", f"{address}/32", "dev", "lo")
        for ns, dev in ((backup, "bond0"), (primary, "p0")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", backup, "route", "add", "10.232.0.0/24", "via", "10.231.0.2")
        yield backup, primary
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def derived_bundle(tmp_path: Path) -> Path:
    """The example specs with only the addresses changed, built."""
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    host = specs / "hosts/pitr1.yaml"
    data = yaml.safe_load(host.read_text())
    assert data["virtual_ip"]["interface"] == "bond0"
    text = host.read_text().replace("192.168.1.200", BACKUP_ADDRESS)
    text = text.replace("address: 192.168.1.199", f"address: {VIP}")
    host.write_text(text)
    addresses = iter(NODES)
    for name in ("pg168104", "pg168121"):
        cluster = specs / f"clusters/{name}.yaml"
        text = cluster.read_text()
        text = re.sub(r"(?m)^  address: 192\.168\.1\.\d+$", f"  address: {next(addresses)}", text)
        text = re.sub(r"(?m)^  ha_partner: 192\.168\.1\.\d+$", f"  ha_partner: {next(addresses)}", text)
        cluster.write_text(text)
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    return tmp_path / "out/pitr1"


def sandboxed_script(bundle: Path, tmp_path: Path) -> tuple[Path, dict]:
    """The bundle's VIP script with its unit file moved into the test's folder (a copy outside
    the bundle skips the self-check), and a PATH whose systemctl is a recording stub."""
    script = (bundle / "host/15-vip.sh").read_text()
    unit = tmp_path / "systemd/pitr-bundle-vip.service"
    script, count = re.subn(r"(?m)^readonly UNIT_FILE=.*$", f"readonly UNIT_FILE={unit}", script)
    assert count == 1
    copy = tmp_path / "15-vip.sh"
    copy.write_text(script)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    state = tmp_path / "systemd-state"
    state.mkdir()
    (stubs / "systemctl").write_text(f"""#!/usr/bin/env bash
echo "systemctl $*" >>{tmp_path}/systemctl.log
unit=${{@: -1}}
case $1 in
  is-enabled) [[ -e {state}/$unit.enabled ]] ;;
  is-active) [[ -e {state}/$unit.active ]] ;;
  enable) touch {state}/$unit.enabled ;;
  disable) rm -f {state}/$unit.enabled ;;
  start) touch {state}/$unit.active ;;
  stop) rm -f {state}/$unit.active ;;
esac
""")
    (stubs / "systemctl").chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin")
    return copy, env


def source_seen(backup: str, address: str) -> str:
    result = sh("ip", "netns", "exec", backup, sys.executable, "-c", CLIENT, address, str(PORT))
    return result.stdout.strip()


def test_connections_to_the_primaries_leave_from_the_vip(namespaces, tmp_path):
    backup, primary = namespaces
    bundle = derived_bundle(tmp_path)
    script, env = sandboxed_script(bundle, tmp_path)
    listener = subprocess.Popen(["ip", "netns", "exec", primary, sys.executable, "-c", LISTENER,
                                 str(PORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        for address in NODES:  # the test can fail: without the script, the host's own address
            assert source_seen(backup, address) == BACKUP_ADDRESS, address

        def vip_script(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", backup, "bash", str(script), *args],
                                  capture_output=True, text=True, env=env)

        dry = vip_script("--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert VIP not in sh("ip", "-n", backup, "address").stdout
        assert not (tmp_path / "systemd/pitr-bundle-vip.service").exists()

        first = vip_script()
        assert first.returncode == 0, first.stderr
        for address in NODES:
            assert source_seen(backup, address) == VIP, address
        routes = sh("ip", "-n", backup, "-4", "route").stdout
        assert f"10.232.0.2 via 10.231.0.2 dev bond0 src {VIP}" in routes  # behind the gateway
        assert re.search(rf"10\.231\.0\.2 dev bond0 .*src {re.escape(VIP)}", routes)  # on the subnet

        unit = (tmp_path / "systemd/pitr-bundle-vip.service").read_text()
        ip = shutil.which("ip", path=env["PATH"])
        assert f"ExecStart={ip} address replace {VIP}/24 dev bond0" in unit
        assert f"ExecStart={ip} route replace 10.232.0.2/32 via 10.231.0.2 dev bond0 src {VIP}" in unit
        assert "Type=oneshot" in unit and "RemainAfterExit=yes" in unit

        before = (sh("ip", "-n", backup, "address").stdout, routes, unit)
        again = vip_script()
        assert again.returncode == 0, again.stderr
        assert "run:" not in again.stderr  # nothing changed
        assert before == (sh("ip", "-n", backup, "address").stdout,
                          sh("ip", "-n", backup, "-4", "route").stdout,
                          (tmp_path / "systemd/pitr-bundle-vip.service").read_text())

        # the unit alone (as at boot) brings the same state back: run its ExecStart lines
        removed = vip_script("--remove", "--yes")
        assert removed.returncode == 0, removed.stderr
        assert VIP not in sh("ip", "-n", backup, "address").stdout
        assert f"src {VIP}" not in sh("ip", "-n", backup, "-4", "route").stdout
        assert not (tmp_path / "systemd/pitr-bundle-vip.service").exists()
        for address in NODES:
            assert source_seen(backup, address) == BACKUP_ADDRESS, address
        for line in unit.splitlines():
            if line.startswith("ExecStart="):
                sh("ip", "netns", "exec", backup, *line.split("=", 1)[1].split())
        for address in NODES:
            assert source_seen(backup, address) == VIP, address
        for line in unit.splitlines():
            if line.startswith("ExecStop=-"):
                sh("ip", "netns", "exec", backup, *line.split("=-", 1)[1].split())
        assert VIP not in sh("ip", "-n", backup, "address").stdout
        for address in NODES:
            assert source_seen(backup, address) == BACKUP_ADDRESS, address
    finally:
        listener.kill()
        listener.wait()
