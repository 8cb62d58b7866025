"""pitr-bundle plan: the example bundle's backup-host scripts with --dry-run on a simulated
fresh host show the literal commands a reviewer should expect (a temporary file named by
what it holds), and change nothing."""

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
        # root on the primaries writes into the archive: nothing there may run or be a device
        hardening = (" -o devices=off -o exec=off -o setuid=off"
                     if dataset["name"].startswith("zp1/pg_arch") else "")
        assert (f"   $ zfs create -p -o mountpoint={dataset['mountpoint']}{hardening} "
                f"{dataset['name']}\n") in text
    # every backup-host script of the run order has its section, in order
    sections = [line.split()[1] for line in text.splitlines() if line.startswith("== ")]
    ordered = sorted((f for f in manifest["files"] if f["order"] is not None
                      and f["role"] != "verify" and f["runs_on"] == "backup host"),
                     key=lambda f: (f["order"], f["path"]))
    assert sections == [f["path"] for f in ordered]
    # past what earlier scripts would have made (pool, datasets, users, the build), each
    # script shows its commands: the reviewer sees the whole fresh host
    for cluster in facts["clusters"]:
        user = cluster["user"]
        assert f"   $ useradd -m -d /home/{user} -g {user} -s /bin/bash" in text
        # the NFS path's folders: root's, written by the primary's root; the standby's own
        # when it archives (archive.method standby, pg168121's)
        owner = user if cluster["archive"]["method"] == "standby" else "root"
        assert f"   $ install -d -o {owner} -g {user} -m 2750 -- /pg_arch/{cluster['name']}/arch\n" in text
        assert f"/pg_home/{cluster['name']}/pgsql/bin/pg_ctl -D {cluster['paths']['pgdata']}" in text
    assert " -S pitr1_pg168121 " in text  # the base backup streams through the spec's slot
    assert "   $ /usr/sbin/ip address replace 192.168.1.199/24 dev bond0\n" in text
    # the only scripts that stop are the builds: the example gives no source tarball, which
    # the operator must bring in (the plan says so instead of guessing)
    stopped = [section.splitlines()[0] for section in text.split("== ")[1:] if "STOPPED" in section]
    # and the replica's access: its key is made on the replica (host/25-replica-key.sh there)
    assert stopped == ["host/26-replica-sender-pitr2.sh (replica-sender)",
                       "clusters/pg168104/35-build.sh (build)", "clusters/pg168121/35-build.sh (build)"]
    assert "STOPPED (exit 3): the spec gives no postgres.source" in text
    assert result.returncode == 1
    # a temporary copy reads as what it holds, not as a random path: two plans are the same
    assert "/tmp/" not in text and "<temp" in text
    assert ("   $ install -D -o root -g root -m 0644 <temp: the bundle's host/scrub.cron> "
            "/etc/cron.d/pitr-bundle-scrub\n") in text
    assert ("   $ install -D -o root -g root -m 0500 <temp: the bundle's clusters/pg168121/snapshot.sh> "
            "/usr/local/sbin/pitr-snapshot-pg168121\n") in text
    assert ("   $ install -o pg168121 -g pg168121 -m 0600 <temp: an empty file> "
            "/pg168121/pg_root/standby.signal\n") in text
    assert pitr_bundle("plan", str(out / "pitr1")).stdout == text
