"""Spec loading and validation: every error names the file, the line and the field; all at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import pitr_bundle
from generator.schedule import longest_gap_minutes


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def errors_of(specs: Path) -> list[str]:
    result = pitr_bundle("validate", str(specs))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if not line.endswith("nothing was written")]


def test_example_specs_are_valid():
    result = pitr_bundle("validate", "specs")
    assert result.returncode == 0, result.stderr
    assert "ok: 2 host spec(s), 2 cluster spec(s)" in result.stdout


def test_wrong_type_names_file_line_and_field(specs_copy):
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "port: 19211", "port: nineteen")
    errors = errors_of(specs_copy)
    line = line_of(cluster, "port: nineteen")
    assert errors == [f"{specs_copy}/clusters/pg168104.yaml:{line}: port: "
                      "must be a whole number, not 'nineteen'"]


def test_unknown_key_is_an_error(specs_copy):
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "port: 19211", "port: 19211\nprot: 1")
    (error,) = errors_of(specs_copy)
    assert error == (f"{specs_copy}/clusters/pg168104.yaml:{line_of(cluster, 'prot:')}: prot: "
                     "unknown key (did you mean port?)")


def test_missing_key_points_at_the_mapping(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "port: 19212\n", "")
    (error,) = errors_of(specs_copy)
    first = line_of(cluster, "name:")  # the mapping starts after the comment line
    assert error == f"{specs_copy}/clusters/pg168121.yaml:{first}: port: required key is missing"


def test_all_problems_of_all_files_are_reported_at_once(specs_copy):
    edit(specs_copy / "clusters/pg168104.yaml", "port: 19211", "port: 80")
    edit(specs_copy / "clusters/pg168121.yaml", 'version: "17.6"', 'version: "seventeen"')
    edit(specs_copy / "hosts/pitr1.yaml", "ashift: 12", "ashift: 40")
    errors = errors_of(specs_copy)
    assert len(errors) == 3
    assert any(re.search(r"pg168104.yaml:\d+: port: must be at least 1024, not 80", e)
               for e in errors)
    assert any(re.search(r"pg168121.yaml:\d+: postgres.version: 'seventeen' is not a full version", e)
               for e in errors)
    assert any(re.search(r"pitr1.yaml:\d+: pool.ashift: must be at most 16, not 40", e)
               for e in errors)


def test_invalid_yaml_names_the_line(specs_copy):
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "port: 19211", "port: [19211")
    (error,) = errors_of(specs_copy)
    assert re.match(rf"{re.escape(str(specs_copy))}/clusters/pg168104.yaml:\d+: invalid YAML", error)


def test_duplicate_key_is_an_error(specs_copy):
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "port: 19211", "port: 19211\nport: 19213")
    (error,) = errors_of(specs_copy)
    assert error.endswith(f"pg168104.yaml:{line_of(cluster, 'port: 19213')}: port: duplicate key")


def test_python_tags_are_refused_not_executed(specs_copy, tmp_path):
    marker = tmp_path / "executed"
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "port: 19211", f"port: !!python/object/apply:os.system ['touch {marker}']")
    (error,) = errors_of(specs_copy)
    assert "invalid YAML" in error
    assert not marker.exists()


def test_disk_used_twice(specs_copy):
    host = specs_copy / "hosts/pitr1.yaml"
    edit(host, "ata-ST4000NM0033-9ZM170_Z1Z3RR12", "ata-ST4000NM0033-9ZM170_Z1Z3RR05")
    (error,) = errors_of(specs_copy)
    spare_line = line_of(host, "spares:") + 1
    first_line = line_of(host, "RR05")
    assert error == (f"{specs_copy}/hosts/pitr1.yaml:{spare_line}: pool.spares.0: device "
                     f"/dev/disk/by-id/ata-ST4000NM0033-9ZM170_Z1Z3RR05 is already used at "
                     f"{specs_copy}/hosts/pitr1.yaml:{first_line}")


def test_log_device_also_in_a_vdev(specs_copy):
    host = specs_copy / "hosts/pitr1.yaml"
    edit(host, "scsi-3600508b1001c2a5e7d9f3b4c8a1e0f42-part4", "ata-ST4000NM0033-9ZM170_Z1Z3RR01")
    (error,) = errors_of(specs_copy)
    assert "pool.log.devices.0: device /dev/disk/by-id/ata-ST4000NM0033-9ZM170_Z1Z3RR01 is already used" in error


def test_raidz1_needs_three_disks(specs_copy):
    host = specs_copy / "hosts/pitr1.yaml"
    text = host.read_text()
    lines = [l for l in text.splitlines() if not re.search(r"Z1Z3RR(0[3-9]|1[01])$", l)]
    host.write_text("\n".join(lines) + "\n")
    (error,) = errors_of(specs_copy)
    assert re.search(r"pitr1.yaml:\d+: pool.vdevs.0: a raidz1 vdev needs at least 3 disks, got 2", error)


def test_mirrored_log_needs_two_devices(specs_copy):
    edit(specs_copy / "hosts/pitr1.yaml", "type: single", "type: mirror")
    (error,) = errors_of(specs_copy)
    assert re.search(r"pitr1.yaml:\d+: pool.log: a mirrored log needs at least 2 devices", error)


def test_sdx_names_are_refused_unless_asked_for(specs_copy):
    host = specs_copy / "hosts/pitr1.yaml"
    edit(host, "/dev/disk/by-id/ata-ST4000NM0033-9ZM170_Z1Z3RR12", "/dev/sdm")
    (error,) = errors_of(specs_copy)
    assert "pool.spares.0: /dev/sdm is not a /dev/disk/by-id/ path" in error
    edit(host, "pool:\n", "pool:\n  device_paths: any\n")
    assert pitr_bundle("validate", str(specs_copy)).returncode == 0


@pytest.mark.parametrize("field, old, new, message", [
    ("dataset", "dataset: zp1/pg168121", "dataset: zp1/pg168104", "dataset zp1/pg168104 is already used"),
    ("mountpoint", "mountpoint: /pg168121", "mountpoint: /pg168104", "mountpoint /pg168104 is already used"),
    ("port", "port: 19212", "port: 19211", "port 19211 is already used"),
    ("os_user", "os_user: pg168121", "os_user: pg168104", "OS user pg168104 is already used"),
    ("name", "name: pg168121", "name: pg168104", "cluster name pg168104 is already used"),
])
def test_two_clusters_cannot_share(specs_copy, field, old, new, message):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, old, new)
    errors = errors_of(specs_copy)
    line = line_of(cluster, new)
    assert f"{specs_copy}/clusters/pg168121.yaml:{line}: {field}: {message} at " \
           f"{specs_copy}/clusters/pg168104.yaml:" in "\n".join(errors)


def test_cluster_mountpoint_may_not_clash_with_a_shared_dataset(specs_copy):
    edit(specs_copy / "clusters/pg168121.yaml", "mountpoint: /pg168121", "mountpoint: /pg_arch")
    (error,) = errors_of(specs_copy)
    assert "mountpoint: mountpoint /pg_arch is already used at" in error


def test_prometheus_textfile_dir_may_not_lie_in_a_dataset_of_the_host(specs_copy):
    host = specs_copy / "hosts/pitr1.yaml"
    with open(host, "a") as spec:
        spec.write("monitor:\n  prometheus_textfile_dir: /pg_arch/metrics\n")
    (error,) = errors_of(specs_copy)
    assert error == (f"{host}:{line_of(host, 'prometheus_textfile_dir')}: monitor.prometheus_textfile_dir: "
                     "/pg_arch/metrics lies in /pg_arch (datasets.pg_arch): give node_exporter's own "
                     "folder (Debian: /var/lib/prometheus/node-exporter)"), error
    edit(host, "/pg_arch/metrics", "/var/lib/prometheus/node-exporter")
    assert pitr_bundle("validate", str(specs_copy)).returncode == 0


def test_cluster_dataset_may_not_be_another_clusters_archive_dataset(specs_copy):
    # each cluster's archive is the dataset <pg_arch dataset>/<cluster> at <pg_arch>/<cluster>
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "dataset: zp1/pg168121", "dataset: zp1/pg_arch/pg168104")
    edit(cluster, "mountpoint: /pg168121", "mountpoint: /pg_arch/pg168104")
    errors = "\n".join(errors_of(specs_copy))
    assert (f"{specs_copy}/clusters/pg168121.yaml:{line_of(cluster, 'zp1/pg_arch/pg168104')}: "
            "dataset: dataset zp1/pg_arch/pg168104 is already used at "
            f"{specs_copy}/clusters/pg168104.yaml:") in errors
    assert "(the archive dataset of cluster pg168104 (<datasets.pg_arch>/pg168104) there)" in errors
    assert "mountpoint: mountpoint /pg_arch/pg168104 is already used at" in errors


def test_dataset_outside_the_pool(specs_copy):
    edit(specs_copy / "clusters/pg168121.yaml", "dataset: zp1/pg168121", "dataset: tank/pg168121")
    (error,) = errors_of(specs_copy)
    assert "dataset: dataset tank/pg168121 is not in pool zp1" in error


def test_unknown_host(specs_copy):
    edit(specs_copy / "clusters/pg168121.yaml", "host: pitr1", "host: pitr9")
    (error,) = errors_of(specs_copy)
    assert "host: no host spec named pitr9 (did you mean pitr1?)" in error


@pytest.mark.parametrize("value", ["zp1/x; reboot", "zp1/$(id)", "zp1/x y", "zp1/`id`", "zp1/../x"])
def test_hostile_dataset_names_are_refused(specs_copy, value):
    edit(specs_copy / "clusters/pg168121.yaml", "dataset: zp1/pg168121", f"dataset: '{value}'")
    (error,) = errors_of(specs_copy)
    assert "dataset:" in error and "is not allowed here" in error


def test_off_unquoted_in_yaml_means_off(specs_copy):
    """YAML 1.1 reads a bare `off` as false; ZFS must still get the word off."""
    result = pitr_bundle("build", str(specs_copy), "-o", str(specs_copy.parent / "out"))
    assert result.returncode == 0, result.stderr
    script = (specs_copy.parent / "out/pitr1/host/10-pool.sh").read_text()
    assert "'atime=off'" in script or "atime=off" in script


def test_no_specs_found(tmp_path):
    result = pitr_bundle("validate", str(tmp_path))
    assert result.returncode == 2
    assert "no specs found" in result.stderr


@pytest.mark.parametrize("version, major", [("19.1", "19"), ("9.7.2", "9.7"), ("8.4.22", "8.4")])
def test_unknown_major_version_has_no_recovery_rules(specs_copy, version, major):
    edit(specs_copy / "clusters/pg168121.yaml", 'version: "17.6"', f'version: "{version}"')
    (error,) = errors_of(specs_copy)
    assert f"postgres.version: PostgreSQL {version}: no known recovery rules for major {major} " \
           "(known majors: 9.0, 9.1, 9.2, 9.3, 9.4, 9.5, 9.6, 10, 11, " in error


@pytest.mark.parametrize("written", ['"17"', '"9.0"', '"17.6.1"', '"9.0.17.1"', '"17.06"',
                                     '"17.x"', '"v17.6"', '" 17.6"', '"17.6beta1"'])
def test_a_version_must_name_the_exact_release(specs_copy, written):
    """The build compiles the release the spec names and 35-check-binaries.sh compares it with
    `postgres --version` (`PostgreSQL 16` never equals `16.4`): a major alone is refused."""
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, 'version: "17.6"', f"version: {written}")
    (error,) = errors_of(specs_copy)
    line = line_of(cluster, f"version: {written}")
    assert error.startswith(f"{cluster}:{line}: postgres.version: '{written.strip(chr(34))}' is not "
                            'a full version: write the primary\'s exact release, such as'), error
    assert '"16.4" (10 and later: major.minor) or "9.0.17" (before 10: major.minor.patch)' in error
    assert error.endswith("the standby's build compiles that release and 35-check-binaries.sh "
                          "compares installed binaries with it"), error


@pytest.mark.parametrize("written, read", [("17.10", "17.1"), ("17.6", "17.6"), ("9.0", "9.0"),
                                           ("17", "17")])
def test_an_unquoted_version_is_refused_never_rewritten(specs_copy, written, read):
    """YAML reads `17.10` as the float 17.1: turned back into text it would build 17.1."""
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, 'version: "17.6"', f"version: {written}")
    (error,) = errors_of(specs_copy)
    line = line_of(cluster, f"version: {written}")
    assert error.startswith(f"{cluster}:{line}: postgres.version: {read} is a number to YAML, not "
                            'the text of a version: quote the exact release (version: "16.10"'), error


@pytest.mark.parametrize("written", ['"9.0.17"', "9.0.17", '"9.6.24"', '"10.0"', '"17.10"',
                                     '"18.4"'])
def test_full_versions_of_known_majors_are_valid(specs_copy, written):
    edit(specs_copy / "clusters/pg168121.yaml", 'version: "17.6"', f"version: {written}")
    edit(specs_copy / "clusters/pg168121.yaml", "slot:", "# slot:")  # 9.x before 9.4: no slots
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stderr


def test_hot_standby_may_not_undercut_the_primary(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "  os_user: postgres\n", "  os_user: postgres\n  settings: {max_connections: 500}\n")
    (error,) = errors_of(specs_copy)
    line = line_of(cluster, "max_connections: 200")
    assert error == (f"{specs_copy}/clusters/pg168121.yaml:{line}: standby.settings.max_connections: "
                     "200 is below the primary's 500: a hot standby refuses to start (raise it, "
                     "or set standby.hot_standby: false)")
    edit(cluster, "hot_standby: true", "hot_standby: false")
    assert pitr_bundle("validate", str(specs_copy)).returncode == 0


def test_a_slot_is_refused_before_9_4(specs_copy):
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "  user: postgres ", "  slot: pitr1_pg168104\n  user: postgres ")
    (error,) = errors_of(specs_copy)
    assert error == (f"{specs_copy}/clusters/pg168104.yaml:{line_of(cluster, 'slot:')}: "
                     "replication.slot: PostgreSQL 9.0.17 has no replication slots (they exist "
                     "from 9.4): remove replication.slot")


def share_the_primary_server(specs: Path) -> Path:
    """pg168121's primary on pg168104's HA partner, at another port: one server, two clusters,
    both archiving over NFS (the helper and mount are claimed on a standby-method node too: its
    primary step removes the NFS path's pieces by these names)."""
    cluster = specs / "clusters/pg168121.yaml"
    edit(cluster, "address: 192.168.1.121", "address: 192.168.1.105")
    edit(cluster, "replication:", "archive: {method: nfs}\nreplication:")
    return cluster


def test_clusters_sharing_a_primary_server_get_their_own_helper_and_mount(specs_copy):
    share_the_primary_server(specs_copy)
    assert pitr_bundle("validate", str(specs_copy)).returncode == 0
    out = specs_copy.parent / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    for cluster in ("pg168104", "pg168121"):
        script = (out / f"pitr1/clusters/{cluster}/primary/45-apply-on-primary.sh").read_text()
        assert f"readonly HELPER=/usr/local/sbin/pitr-archive-wal-{cluster}\n" in script
        mount = (out / f"pitr1/clusters/{cluster}/primary/pitr-archive-mount.sh").read_text()
        assert f"readonly MOUNTPOINT=/pgarch/{cluster}\n" in mount


@pytest.mark.parametrize("field, value, message", [
    ("archive_script", "/usr/local/sbin/pitr-archive-wal-pg168104",
     "archive helper /usr/local/sbin/pitr-archive-wal-pg168104 on 192.168.1.105 is already used at"),
    ("archive_mount", "/pgarch/pg168104",
     "archive mount point /pgarch/pg168104 on 192.168.1.105 is already used at"),
    ("port", "1921", "PostgreSQL server 192.168.1.105:1921 is already used at"),
])
def test_clusters_sharing_a_primary_server_may_not_share_its_helper_or_mount(
        specs_copy, field, value, message):
    cluster = share_the_primary_server(specs_copy)
    if field == "port":
        edit(cluster, "  port: 5432", "  port: 1921")
    else:
        edit(cluster, "  os_user: postgres\n", f"  os_user: postgres\n  {field}: {value}\n")
    (error,) = errors_of(specs_copy)
    line = line_of(cluster, f"  {field}: {value}")
    first = specs_copy / "clusters/pg168104.yaml"  # defaults: the line of its primary: section
    where = f"{first}:{line_of(first, '  port: 1921' if field == 'port' else 'primary:')}"
    assert error == f"{specs_copy}/clusters/pg168121.yaml:{line}: primary.{field}: {message} {where}"

# --- the virtual IP (host/15-vip.sh) -------------------------------------------------------

VIP_MAPPING = "virtual_ip:\n  address: 192.168.1.199\n  interface: bond0\n  prefix: 24\n"


def test_a_plain_virtual_ip_is_still_valid_and_makes_no_vip_script(specs_copy, tmp_path):
    edit(specs_copy / "hosts/pitr1.yaml", VIP_MAPPING, "virtual_ip: 192.168.1.199\n")
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    assert not (bundle / "host/15-vip.sh").exists()
    assert "192.168.1.199/32" in (bundle / "clusters/pg168121/primary/pg_hba.conf.lines").read_text()


def test_the_example_bundle_runs_the_vip_script_before_the_datasets(tmp_path):
    pitr_bundle("build", "specs", "-o", str(tmp_path / "out"), check=True)
    readme = (tmp_path / "out/pitr1/README.md").read_text()
    order = [line.split("`")[1] for line in readme.splitlines() if re.match(r"\| \d+ \| `", line)]
    assert order.index("host/15-vip.sh") < order.index("host/20-datasets.sh") < \
        order.index("clusters/pg168104/50-basebackup.sh")


@pytest.mark.parametrize("new, field, message", [
    ("virtual_ip:\n  address: 192.168.1.199\n  interface: bond0;reboot\n", "virtual_ip.interface",
     "'bond0;reboot' is not allowed here"),
    ("virtual_ip:\n  address: vip.example.com\n  interface: bond0\n", "virtual_ip",
     "address vip.example.com must be an IPv4 address when interface is set"),
    ("virtual_ip:\n  address: 192.168.1.199\n  prefix: 24\n", "virtual_ip", "prefix needs interface"),
    ("virtual_ip:\n  address: 192.168.1.199\n  interface: bond0\n  prefix: 33\n",
     "virtual_ip.prefix", "must be at most 32, not 33"),
])
def test_bad_virtual_ip_names_file_line_field(specs_copy, new, field, message):
    host = specs_copy / "hosts/pitr1.yaml"
    edit(host, VIP_MAPPING, new)
    (error,) = errors_of(specs_copy)
    assert error.startswith(f"{host}:") and f": {field}: " in error and message in error, error


@pytest.mark.parametrize("key, old, new, message", [
    ("primary.address", "address: 192.168.1.121", "address: db121.example.com",
     "db121.example.com must be an IPv4 address"),
    ("primary.ha_partner", "ha_partner: 192.168.1.122", "ha_partner: 192.168.1.199",
     "192.168.1.199 is the backup host's own address"),
])
def test_primaries_routed_from_the_vip_must_be_other_ipv4_addresses(specs_copy, key, old, new, message):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, old, new)
    (error,) = errors_of(specs_copy)
    assert error.startswith(f"{cluster}:{line_of(cluster, new)}: {key}: {message}"), error


# --- installed PostgreSQL (postgres.binaries) instead of a build from source -----------------

def packaged(specs: Path, postgres_lines: str) -> Path:
    """pg168121 with its postgres: section replaced (the example builds from source)."""
    cluster = specs / "clusters/pg168121.yaml"
    text = cluster.read_text()
    start, end = text.index("postgres:\n"), text.index("primary:\n")
    cluster.write_text(text[:start] + "postgres:\n" + postgres_lines + text[end:])
    return cluster


def test_installed_binaries_replace_the_build_by_a_check(specs_copy, tmp_path):
    packaged(specs_copy, '  version: "17.6"\n  binaries: /usr/lib/postgresql/17/bin\n'
                         "  extensions:\n    - name: pg_stat_statements\n")
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"), check=True)
    folder = tmp_path / "out/pitr1/clusters/pg168121"
    assert (folder / "35-check-binaries.sh").exists() and not (folder / "35-build.sh").exists()
    assert "export PGHOME=/usr/lib/postgresql/17\n" in (folder / "bash_profile").read_text()
    assert "PGHOME=/usr/lib/postgresql/17 " in (folder / "60-standby.sh").read_text()
    # the other cluster still builds from source
    assert (tmp_path / "out/pitr1/clusters/pg168104/35-build.sh").exists()


@pytest.mark.parametrize("lines, field, message", [
    ('  version: "17.6"\n  binaries: /usr/lib/postgresql/17/bin\n'
     "  source: {file: postgresql-17.6.tar.bz2, sha256: " + "a" * 64 + "}\n",
     "postgres.source", "postgres.source is for a build from source, but postgres.binaries"),
    ('  version: "17.6"\n  binaries: /usr/lib/postgresql/17/bin\n  configure:\n    - --with-icu\n',
     "postgres.configure", "postgres.configure is for a build from source"),
    ('  version: "17.6"\n  binaries: usr/lib/postgresql/17/bin\n', "postgres.binaries",
     "'usr/lib/postgresql/17/bin' is not allowed here"),
    ('  version: "17.6"\n  binaries: /usr/lib/postgresql/17\n', "postgres.binaries",
     "give the bin folder of the installation"),
    ('  version: "17.6"\n  binaries: /usr/lib/postgresql/17/bin/../bin\n', "postgres.binaries",
     "must not contain '.' or '..' segments"),
    ('  version: "17.6"\n  binaries: /usr/$(id)/bin\n', "postgres.binaries", "is not allowed here"),
    ('  version: "17"\n  binaries: /usr/lib/postgresql/17/bin\n', "postgres.version",
     "'17' is not a full version"),
    ('  version: "17.6"\n  binaries: /usr/lib/postgresql/17/bin\n  extensions:\n'
     "    - {name: pgfincore, file: pgfincore-1.2.tar.gz, sha256: " + "a" * 64 + "}\n",
     "postgres.extensions.0.file", "extension pgfincore: file is for a build from source"),
    ('  version: "17.6"\n  extensions:\n    - name: pgfincore\n', "postgres.extensions.0",
     "extension pgfincore: file and sha256 of its source tarball are needed"),
])
def test_inconsistent_postgres_installs_are_refused(specs_copy, lines, field, message):
    cluster = packaged(specs_copy, lines)
    errors = errors_of(specs_copy)
    assert any(e.startswith(f"{cluster}:") and f": {field}: " in e and message in e
               for e in errors), errors

def test_the_default_restore_port_colliding_with_another_cluster_is_refused(specs_copy):
    # pg168104's restore port defaults to 19211 + 1000: another cluster's standby port there
    edit(specs_copy / "clusters/pg168121.yaml", "port: 19212", "port: 20211")
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 2
    line = line_of(specs_copy / "clusters/pg168104.yaml", "port: 19211")
    assert re.search(rf"pg168121.yaml:\d+: port: port 20211 is already used at .*pg168104.yaml:{line} "
                     r"\(the default restore port \(port \+ 1000; set restore.port\) there\)", result.stderr)


def test_restore_ports_of_two_clusters_must_differ(specs_copy):
    for name in ("pg168104", "pg168121"):
        path = specs_copy / f"clusters/{name}.yaml"
        path.write_text(path.read_text() + "restore:\n  port: 25000\n")
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 2
    assert re.search(r"pg168121.yaml:\d+: restore.port: port 25000 is already used at .*pg168104.yaml:\d+",
                     result.stderr)


def test_unset_max_slot_wal_keep_size_warns_without_failing_the_build(specs_copy, tmp_path):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "  max_slot_wal_keep_size: 20GB\n", "")
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stderr
    line = line_of(cluster, "primary:")
    assert (f"{specs_copy}/clusters/pg168121.yaml:{line}: primary.max_slot_wal_keep_size: warning: "
            "not set: the primary gets 10GB") in result.stderr
    built = pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"))
    assert built.returncode == 0 and "warning: not set" in built.stderr
    conf = (tmp_path / "out/pitr1/clusters/pg168121/primary/pitr-archive.conf").read_text()
    assert "max_slot_wal_keep_size = '10GB'" in conf
    # 9.0 has no such setting: no warning for it, nothing in its settings
    assert "pg168104.yaml" not in result.stderr.replace(
        [l for l in result.stderr.splitlines() if "primary.ha_partner: warning" in l][0], "")
    assert "max_slot_wal_keep_size" not in (tmp_path / "out/pitr1/clusters/pg168104/primary/pitr-archive.conf").read_text()


def test_archive_call_timeout_is_checked_and_warns_past_a_minute_of_shutdown(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    for value in ("0", "3601", "ten"):
        edit(cluster, "max_slot_wal_keep_size: 20GB", f"max_slot_wal_keep_size: 20GB\n  archive_call_timeout: {value}")
        result = pitr_bundle("validate", str(specs_copy))
        assert result.returncode == 2
        assert re.search(r"pg168121.yaml:\d+: primary.archive_call_timeout: ", result.stderr), result.stderr
        edit(cluster, f"\n  archive_call_timeout: {value}", "")
    # 9 s: a fast shutdown waits up to 58 s, no warning; 10 s: 64 s, a warning, the spec valid
    for value, warned in ((9, False), (10, True)):
        edit(cluster, "max_slot_wal_keep_size: 20GB", f"max_slot_wal_keep_size: 20GB\n  archive_call_timeout: {value}")
        result = pitr_bundle("validate", str(specs_copy))
        assert result.returncode == 0, result.stderr
        assert ("primary.archive_call_timeout: warning: 10 s: with the backup host gone, a fast shutdown "
                "of the primary may wait about 64 s" in result.stderr) == warned, result.stderr
        edit(cluster, f"\n  archive_call_timeout: {value}", "")


def test_wal_safety_fields_are_checked(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "max_slot_wal_keep_size: 20GB", "max_slot_wal_keep_size: lots\n  archive_queue_max: 5 GB\n  archive_timeout: -1")
    cluster.write_text(cluster.read_text() + "archive:\n  pitr_window_days: 0\n")
    errors = pitr_bundle("validate", str(specs_copy)).stderr
    for field in ("primary.max_slot_wal_keep_size", "primary.archive_queue_max", "primary.archive_timeout",
                  "archive.pitr_window_days"):
        assert re.search(rf"pg168121.yaml:\d+: {re.escape(field)}: ", errors), (field, errors)

def test_the_archive_alarm_and_the_drill_lag_must_be_above_archive_timeout(specs_copy):
    """The monitor's archive freshness agrees with archive_timeout: a quiet primary archives
    only that often, so an alarm at or below it would ring on a healthy host."""
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "max_slot_wal_keep_size: 20GB", "max_slot_wal_keep_size: 20GB\n  archive_timeout: 1200")
    edit(cluster, "port: 19212\n", "port: 19212\nmonitor: {archive_warn_minutes: 20}\ndrill: {target_lag_minutes: 15}\n")
    errors = errors_of(specs_copy)
    assert any(re.search(r"pg168121.yaml:\d+: monitor.archive_warn_minutes: 20 min is not above "
                         r"archive_timeout \(1200 s\)", e) for e in errors), errors
    assert any(re.search(r"pg168121.yaml:\d+: drill.target_lag_minutes: 15 min is not above "
                         r"archive_timeout \(1200 s\)", e) for e in errors), errors
    edit(cluster, "archive_timeout: 1200", "archive_timeout: 840")  # 14 min: below both
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stderr


def test_monitor_warn_thresholds_may_not_exceed_crit(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "port: 19212\n", "port: 19212\nmonitor: {slot_retained_warn_mb: 9000, archive_crit_minutes: 2000}\n")
    host = specs_copy / "hosts/pitr1.yaml"
    edit(host, "nfs:\n", "monitor: {archive_share_warn: 80, archive_share_crit: 60}\nnfs:\n")
    errors = errors_of(specs_copy)
    assert any("pitr1.yaml" in e and "monitor: archive_share_warn is above archive_share_crit" in e
               for e in errors), errors
    # the archive look-up reads the newest day folders only: a day is the longest threshold
    assert any("monitor.archive_crit_minutes: must be at most 1440, not " in e
               for e in errors), errors


def test_drill_fields_are_checked(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "port: 19212\n", "port: 19212\ndrill: {schedule: '61 5 * * 0', port: 80}\n")
    errors = errors_of(specs_copy)
    assert any("drill.schedule: minute: '61' is outside 0-59" in e for e in errors), errors
    assert any("drill.port: must be at least 1024, not 80" in e for e in errors), errors


def test_a_snapshot_schedule_that_cannot_meet_the_rto_is_refused_with_the_fix(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    with open(cluster, "a") as spec:
        spec.write("archive:\n  wal_mb_per_hour: 4000\nrestore:\n  rto_seconds: 600\n")
    (error,) = errors_of(specs_copy)
    # the default daily snapshot: 24 h of WAL (96000 MB) at 20 MB/s is 4800 s
    assert error.startswith(f"{cluster}:{line_of(cluster, 'rto_seconds: 600')}: restore.rto_seconds: "
                            "600 s cannot be met: snapshots.schedule ('1 8 * * *') waits up to 1440 min")
    assert "96000 MB of WAL" in error and "takes 4800 s" in error
    assert "Take a snapshot at least every 180 min" in error


def test_a_snapshot_schedule_that_meets_the_rto_passes(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    with open(cluster, "a") as spec:
        spec.write("archive:\n  wal_mb_per_hour: 4000\nrestore:\n  rto_seconds: 600\n"
                   "snapshots:\n  schedule: '1 */3 * * *'\n")
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("schedule, gap", [
    ("1 8 * * *", 1440), ("*/15 * * * *", 15), ("0 */4 * * *", 240), ("17 5 * * 0", 10080),
    ("0 8 * * 1-5", 4320), ("30 2,14 * * *", 720), ("0 8 1 * *", 44640), ("0 0 1 1 *", 527040),
    ("0 8 13 * fri", 10080),
])
def test_longest_gap_between_snapshots(schedule, gap):
    assert longest_gap_minutes(schedule) == gap


# --- messages a DBA reads: pydantic's wording and regex patterns never reach the user ---------

def test_schema_errors_in_plain_words(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "port: 19212\n", "port: 19212\nsnapshots: {keep: {daily: -1}, prefix: 'bad prefix!', "
         "schedul: '1 8 * * *'}\ndrill: {enabled: maybe, timeout_minutes: ten}\n"
         "archive: {extra_clients: 10.0.0.1}\n")
    edit(specs_copy / "hosts/pitr1.yaml", "type: raidz1", "type: raid5")
    errors = "\n".join(errors_of(specs_copy))
    for expected in [
        "snapshots.keep.daily: must be at least 0, not -1",
        "snapshots.prefix: 'bad prefix!' is not allowed here: it must be letters, digits and "
        "_ . : -, starting with a letter, at most 31 characters",
        "snapshots.schedul: unknown key (did you mean schedule?)",
        "drill.enabled: must be true or false, not 'maybe'",
        "drill.timeout_minutes: must be a whole number, not 'ten'",
        "archive.extra_clients: must be a list (lines starting with '- ', or [a, b]), not '10.0.0.1'",
        "pool.vdevs.0.type: must be 'raidz1', 'raidz2', 'raidz3' or 'mirror', not 'raid5'",
    ]:
        assert expected in errors, errors
    assert "Input should" not in errors and "^" not in errors and "pattern" not in errors


def test_every_pattern_of_the_schema_is_said_in_words():
    """The JSON Schema's patterns are the schema's: each has words for validate's messages."""
    import json

    from generator.schema import MODELS, PATTERN_WORDS

    def patterns(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            for value in node.values():
                yield from patterns(value)
        elif isinstance(node, list):
            for value in node:
                yield from patterns(value)

    found = {p for model in MODELS.values() for p in patterns(model.model_json_schema())}
    assert found and found <= set(PATTERN_WORDS), sorted(found - set(PATTERN_WORDS))
    assert json.dumps(PATTERN_WORDS)  # plain text


def test_an_unknown_key_far_from_any_names_the_known_ones(specs_copy):
    host = specs_copy / "hosts/pitr1.yaml"
    edit(host, "nfs:\n", "nfs:\n  zzz: 1\n")
    (error,) = errors_of(specs_copy)
    assert error.endswith("nfs.zzz: unknown key (known keys here: exports_file, options, ports, "
                          "ports_file, ports_format)")


def test_an_unknown_host_far_from_any_names_the_known_ones(specs_copy):
    edit(specs_copy / "clusters/pg168121.yaml", "host: pitr1", "host: backup-east")
    (error,) = errors_of(specs_copy)
    assert "host: no host spec named backup-east (hosts: pitr1)" in error


# --- the PITR window against the keep counts -----------------------------------------------

def test_a_pitr_window_the_keep_counts_cannot_serve_is_refused_naming_the_count(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    with open(cluster, "a") as spec:
        spec.write("archive:\n  pitr_window_days: 14\nsnapshots:\n  keep: {daily: 3, weekly: 0, monthly: 0}\n")
    (error,) = errors_of(specs_copy)
    assert f"pg168121.yaml:{line_of(cluster, 'pitr_window_days')}: archive.pitr_window_days: " in error
    assert ("a 14-day window is more than the snapshots kept can serve: with snapshots.schedule "
            "'1 8 * * *' and snapshots.keep (3 daily), the oldest snapshot kept is only 2 days old"
            in error), error
    assert "Raise snapshots.keep.daily to 15, or weekly to 4, or monthly to 3" in error


@pytest.mark.parametrize("keep", ["{daily: 15, weekly: 0, monthly: 0}", "{daily: 3, weekly: 4, monthly: 0}",
                                  "{daily: 0, weekly: 0, monthly: 3}"])
def test_the_keep_counts_validate_names_are_enough(specs_copy, keep):
    """The failing twin: each count the message names does serve the window."""
    cluster = specs_copy / "clusters/pg168121.yaml"
    with open(cluster, "a") as spec:
        spec.write(f"archive:\n  pitr_window_days: 14\nsnapshots:\n  keep: {keep}\n")
    assert pitr_bundle("validate", str(specs_copy)).returncode == 0


def test_the_window_follows_the_schedule():
    """Hourly snapshots keeping 24 hourly reach 23 hours back just after a snapshot, not two
    days; every 6 hours with 7 daily, just after midnight's, the 7th day back's last snapshot
    (18:00) is 5 days 6 hours old: 7 days need the 9th day's."""
    from generator.retention import cover

    none = {"hourly": 0, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}
    assert cover("0 * * * *", {**none, "hourly": 25}, 1).minutes >= 1440
    hourly = cover("0 * * * *", {**none, "hourly": 24}, 2)
    assert hourly.minutes == 23 * 60 and hourly.enough["hourly"] == 49
    six = cover("0 */6 * * *", {**none, "daily": 7}, 7)
    assert six.minutes == 5 * 1440 + 6 * 60 and six.enough["daily"] == 9


def test_ha_partner_before_10_warns_that_the_standby_cannot_follow(specs_copy):
    """9.0's libpq names one host: validate says what happens after a failover, and the 17
    cluster (multi-host conninfo) gets no such warning."""
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stderr
    cluster = specs_copy / "clusters/pg168104.yaml"
    line = line_of(cluster, "  ha_partner:")
    assert (f"{cluster}:{line}: primary.ha_partner: warning: PostgreSQL 9.0's libpq connects to one "
            "host: the standby streams from primary.address 192.168.1.104 only") in result.stderr
    assert "pg168121.yaml" not in result.stderr


@pytest.mark.parametrize("lines, field, message", [
    ("    mode: verify-full\n", "replication.tls",
     "mode verify-full checks the server's certificate against a CA: give ca_file (a copy of "
     "the primary's CA certificate on the backup host)"),
    ("    mode: verify-ca\n", "replication.tls", "mode verify-ca checks the server's certificate"),
    ("    mode: require\n    ca_file: /etc/ca.crt\n", "replication.tls",
     "mode require does not check the server's certificate, yet libpq would check it against "
     "ca_file: say verify-ca or verify-full, or leave ca_file out"),
    ("    mode: prefer\n", "replication.tls.mode",
     "must be 'require', 'verify-ca' or 'verify-full', not 'prefer'"),
    ("    mode: verify-full\n    ca_file: tls/ca.crt\n", "replication.tls.ca_file",
     "'tls/ca.crt' is not allowed here: it must be an absolute path"),
])
def test_replication_tls_is_checked(specs_copy, lines, field, message):
    cluster = specs_copy / "clusters/pg168121.yaml"
    text = cluster.read_text()
    start = text.index("  tls:\n")
    end = text.index("standby:")
    cluster.write_text(text[:start] + "  tls:\n" + lines + text[end:])
    (error,) = errors_of(specs_copy)
    assert error.startswith(f"{specs_copy}/clusters/pg168121.yaml:"), error
    assert re.match(r"^\S+:\d+: ", error), error
    assert f": {field}: {message}" in error, error


def test_replication_tls_require_without_a_ca_and_none_at_all(specs_copy, tmp_path):
    """require: hostssl, sslmode=require and no sslrootcert; no tls: host lines, no sslmode."""
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "    mode: verify-full\n    ca_file: /etc/pitr-bundle/tls/pg168121-ca.crt\n",
         "    mode: require\n")
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"), check=True)
    folder = tmp_path / "out/pitr1/clusters"
    assert "\nhostssl replication replicator " in (folder / "pg168121/primary/pg_hba.conf.lines").read_text()
    standby = (folder / "pg168121/60-standby.sh").read_text()
    assert "application_name=pg168121 target_session_attrs=read-write sslmode=require'\n" in standby
    assert "readonly TLS_MODE=require TLS_CA_FILE=''" in standby
    other = folder / "pg168104"
    assert "\nhost replication postgres " in (other / "primary/pg_hba.conf.lines").read_text()
    assert "sslmode=" not in (other / "60-standby.sh").read_text()
    assert "readonly TLS_MODE='' TLS_CA_FILE=''" in (other / "60-standby.sh").read_text()
    assert "current_setting('ssl')" not in (other / "primary/45-apply-on-primary.sh").read_text()


def test_archive_method_standby_is_accepted_with_a_slot_from_95(specs_copy):
    edit(specs_copy / "clusters/pg168121.yaml", "replication:", "archive: {method: standby}\nreplication:")
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stderr


def _methods(specs: Path, out: Path) -> dict[str, str]:
    pitr_bundle("build", str(specs), "-o", str(out), check=True)
    facts = json.loads((out / "pitr1/MANIFEST.json").read_text())["facts"]["clusters"]
    return {c["name"]: c["archive"]["method"] for c in facts}


def test_archive_method_defaults_to_standby_from_95_with_a_slot(specs_copy, tmp_path):
    """Unset: the example's 17 cluster (a slot) archives through its standby, its 9.0 one over
    NFS, silently; 9.5+ without a slot stays on NFS and the warning says what a slot would
    change; archive.method: nfs keeps NFS without a word."""
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0 and "replication.slot: warning" not in result.stderr, result.stderr
    assert _methods(specs_copy, tmp_path / "a") == {"pg168104": "nfs", "pg168121": "standby"}
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "  slot: pitr1_pg168121\n", "")
    assert _methods(specs_copy, tmp_path / "b") == {"pg168104": "nfs", "pg168121": "nfs"}
    warned = pitr_bundle("validate", str(specs_copy))
    assert warned.returncode == 0, warned.stderr
    assert (f"{cluster}:{line_of(cluster, 'replication:')}: replication.slot: warning: not set: WAL "
            "reaches the archive over NFS (the primary mounts the backup host, its root writes "
            "there); with a slot (e.g. slot: pitr_pg168121) the backup standby archives") in warned.stderr
    edit(cluster, "replication:", "archive: {method: nfs}\nreplication:")
    assert "replication.slot: warning" not in pitr_bundle("validate", str(specs_copy)).stderr


def test_archive_method_standby_needs_95(specs_copy):
    """The 9.0 cluster has no archive_mode = always: its WAL can only come over NFS."""
    cluster = specs_copy / "clusters/pg168104.yaml"
    edit(cluster, "replication:", "archive: {method: standby}\nreplication:")
    (error,) = errors_of(specs_copy)
    assert error == (f"{cluster}:{line_of(cluster, 'method: standby')}: archive.method: standby needs "
                     "PostgreSQL 9.5 or later (archive_mode = always); 9.0.17 archives over NFS: "
                     "set archive.method: nfs")


def test_archive_method_standby_needs_a_slot(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "  slot: pitr1_pg168121\n", "")
    edit(cluster, "replication:", "archive: {method: standby}\nreplication:")
    (error,) = errors_of(specs_copy)
    assert error.startswith(f"{cluster}:{line_of(cluster, 'method: standby')}: archive.method: standby "
                            "needs replication.slot: ")
    assert error.endswith("add replication.slot (e.g. slot: pitr_pg168121)")


@pytest.mark.parametrize("value", ["NFS", "receivewal", "standby; reboot", "''"])
def test_archive_method_other_values_are_refused(specs_copy, value):
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "replication:", f"archive: {{method: {value}}}\nreplication:")
    (error,) = errors_of(specs_copy)
    assert f"{cluster}:{line_of(cluster, 'method:')}: archive.method: " in error, error
