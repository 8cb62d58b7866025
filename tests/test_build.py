"""Building bundles: what is written, reproducibility, --check, golden files, integrity."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, pitr_bundle
from generator.bundle import bundle_of
from generator.model import derive
from generator.plan import plan_host
from generator.validate import load_and_validate
from test_validate import edit

GOLDEN = REPO / "tests/golden"
REFRESH = os.environ.get("PITR_REFRESH_GOLDEN") == "1"


@pytest.fixture
def built(specs_copy, tmp_path):
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    return out


def test_build_reports_new_then_identical(specs_copy, tmp_path):
    out = tmp_path / "out"
    first = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    assert all(line.startswith("new ") for line in first.stdout.splitlines()), first.stdout
    second = pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    assert all(line.startswith("identical ") for line in second.stdout.splitlines())
    assert f"new        {out}/pitr1/host/10-pool.sh" in first.stdout


def test_build_is_byte_identical_across_builds(specs_copy, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    files_a = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel


def test_changed_spec_reports_changed_files_only(specs_copy, built):
    edit(specs_copy / "clusters/pg168121.yaml", "mountpoint: /pg168121", "mountpoint: /pg168122")
    result = pitr_bundle("build", str(specs_copy), "-o", str(built), check=True)
    changed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("changed")}
    assert f"{built}/pitr1/host/20-datasets.sh" in changed
    assert f"{built}/pitr1/host/10-pool.sh" not in changed


def test_check_mode_writes_nothing_and_exits_1_on_difference(specs_copy, built):
    before = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    assert pitr_bundle("build", str(specs_copy), "-o", str(built), "--check").returncode == 0
    edit(specs_copy / "clusters/pg168104.yaml", "port: 19211", "port: 19311")
    result = pitr_bundle("build", str(specs_copy), "-o", str(built), "--check")
    assert result.returncode == 1
    assert "bundle differs from the specs" in result.stdout
    assert {p: p.read_bytes() for p in built.rglob("*") if p.is_file()} == before


def test_nothing_is_written_when_any_spec_is_bad(specs_copy, tmp_path):
    edit(specs_copy / "clusters/pg168121.yaml", "port: 19212", "port: 1")
    out = tmp_path / "out"
    result = pitr_bundle("build", str(specs_copy), "-o", str(out))
    assert result.returncode == 2
    assert "nothing was written" in result.stderr
    assert not out.exists()


def test_manifest_lists_every_file_with_role_cluster_hash_and_mode(built):
    bundle = built / "pitr1"
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert manifest["generator"] == "pitr-bundle" and manifest["host"] == "pitr1"
    roles = {f["role"] for f in manifest["files"]}
    assert {"pool", "datasets", "nfs-exports"} <= roles
    for entry in manifest["files"]:
        path = bundle / entry["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert f"{path.stat().st_mode & 0o7777:04o}" == entry["mode"]
        assert entry["mode"] == ("0750" if path.suffix == ".sh" else "0640")
        assert "cluster" in entry


def test_sha256sums_verifies_with_sha256sum(built):
    result = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=built / "pitr1",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MANIFEST.json: OK" in result.stdout


def test_no_file_is_world_accessible(built):
    for path in (built / "pitr1").rglob("*"):
        assert path.stat().st_mode & 0o007 == 0, path


def test_tarball_holds_the_bundle_with_modes_and_no_timestamps(built):
    with tarfile.open(built / "pitr1.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        for path in (built / "pitr1").rglob("*"):
            name = f"pitr1/{path.relative_to(built / 'pitr1')}"
            member = members[name]
            assert member.mtime == 0 and member.uid == 0
            if path.is_file():
                assert tar.extractfile(member).read() == path.read_bytes()
                assert member.mode == path.stat().st_mode & 0o7777


def test_scripts_carry_provenance_strict_mode_and_end_with_main(built):
    manifest = json.loads((built / "pitr1/MANIFEST.json").read_text())
    specs = {s["name"]: s["sha256"] for s in manifest["specs"]}
    for entry in manifest["files"]:
        if not entry["path"].endswith(".sh"):
            continue
        text = (built / "pitr1" / entry["path"]).read_text()
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "Generated by pitr-bundle" in text
        assert f"hosts/pitr1.yaml sha256:{specs['hosts/pitr1.yaml']}" in text
        assert "set -Eeuo pipefail" in text
        assert text.rstrip().endswith('main "$@"')


def test_the_primary_unit_follows_the_data_dir_layout_unless_the_spec_names_it(specs_copy, tmp_path):
    """primary.systemd_unit's documented defaults: RHEL/PGDG's postgresql-<major>.service,
    Debian's postgresql@<version>-<name>.service for its layout; the NFS path's boot mount unit
    is ordered Before= it (pg168104's; pg168121 archives through its standby) and --restart
    restarts it."""
    def unit_of(cluster: str) -> str:
        out = tmp_path / "out"
        pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
        script = (out / f"pitr1/clusters/{cluster}/primary/45-apply-on-primary.sh").read_text()
        assert ("\nBefore=$PG_UNIT\n" in script) == (cluster == "pg168104")
        facts = json.loads((out / "pitr1/MANIFEST.json").read_text())["facts"]["clusters"]
        unit = next(c for c in facts if c["name"] == cluster)["primary"]["systemd_unit"]
        assert f"\nreadonly PG_UNIT={unit}\n" in script
        return unit

    assert unit_of("pg168121") == "postgresql-17.service"  # /var/lib/pgsql/17/data
    assert unit_of("pg168104") == "postgresql-9.0.service"  # /pgdata/pg_root: not Debian's
    cluster = specs_copy / "clusters/pg168121.yaml"
    edit(cluster, "data_dir: /var/lib/pgsql/17/data", "data_dir: /var/lib/postgresql/17/main")
    assert unit_of("pg168121") == "postgresql@17-main.service"
    edit(cluster, "data_dir: /var/lib/postgresql/17/main", "data_dir: /var/lib/postgresql/17/main\n  systemd_unit: pg-own.service")
    assert unit_of("pg168121") == "pg-own.service"


def test_files_from_an_earlier_build_that_are_gone_are_removed(specs_copy, built):
    stale = built / "pitr1/host/99-old.sh"
    manifest_path = built / "pitr1/MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"].append({"path": "host/99-old.sh", "role": "pool"})
    manifest_path.write_text(json.dumps(manifest))
    stale.write_text("old")
    result = pitr_bundle("build", str(specs_copy), "-o", str(built), check=True)
    assert f"removed    {stale}" in result.stdout
    assert not stale.exists()


@pytest.mark.parametrize("host", ["pitr1", "pitr2"])
def test_golden_bundle(built, host):
    """The example bundles (the backup host and its replica), file by file. Refresh with
    PITR_REFRESH_GOLDEN=1 after a reviewed change."""
    bundle = built / host
    produced = {str(p.relative_to(bundle)): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    golden = GOLDEN / host
    if REFRESH:
        import shutil
        shutil.rmtree(golden, ignore_errors=True)
        for rel, content in produced.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_bytes(content)
    expected = {str(p.relative_to(golden)): p.read_bytes() for p in golden.rglob("*") if p.is_file()}
    assert sorted(produced) == sorted(expected), "file list differs: PITR_REFRESH_GOLDEN=1 to refresh"
    for rel in produced:
        assert produced[rel] == expected[rel], f"{rel} differs from tests/golden (PITR_REFRESH_GOLDEN=1)"


# MANIFEST.json, SHA256SUMS and README.md list every file (README every cluster): they
# change with any file, whatever their specs
INDEXES = {"MANIFEST.json", "SHA256SUMS", "README.md"}
# a spec's values changed at once (each a value some file renders), its digest with them
PERTURBATIONS = {
    "cluster": [(r"(?m)^port: (\d+)", lambda m: f"port: {int(m[1]) + 100}"),
                (r"(?m)^(dataset|mountpoint): (\S+)", lambda m: f"{m[1]}: {m[2]}x"),
                (r"(?m)^  (address|ha_partner): (\d+\.\d+\.\d+)\.(\d+)",
                 lambda m: f"  {m[1]}: {m[2]}.{int(m[3]) + 50}"),
                (r"\Z", lambda m: "snapshots:\n  schedule: 7 3 * * *\ndrill:\n  schedule: 3 4 * * 1\n"
                                  "monitor:\n  archive_warn_minutes: 25\n")],
    "host": [(r"(?m)^    mountd: (\d+)", lambda m: f"    mountd: {int(m[1]) + 1}"),
             (r"\Z", lambda m: "scrub:\n  schedule: 0 2 2 * *\n")],
}


def perturb(spec: Path) -> None:
    text = spec.read_text()
    for pattern, replacement in PERTURBATIONS[spec.parent.name.rstrip("s")]:
        text, count = re.subn(pattern, replacement, text)
        # a replica host has no NFS ports of its own
        assert count or "replica_of:" in text, f"{pattern} not in {spec}"
    spec.write_text(text)


PROVENANCE_LINE = re.compile(rb"(?m)^#   (\S+) sha256:([0-9a-f]{64})\n")


def unnamed(content: bytes) -> bytes:
    """A file without its header's lines naming specs."""
    return PROVENANCE_LINE.sub(b"", content)


def bundle_and_sources(specs: Path) -> tuple[dict[str, bytes], dict[str, set[str]]]:
    """The bundles' files (in process) as HOST/PATH, and the specs each planned file is made
    from."""
    files, sources = {}, {}
    for host in load_and_validate(specs):
        files.update({f"{host.name}/{f.path}": f.content for f in bundle_of(derive(host))})
        sources.update({f"{host.name}/{p.path}": {s.name for s in p.sources}
                        for p in plan_host(derive(host))})
    return files, sources


@pytest.mark.parametrize("variant", [None, ("pg168104", "retired: true"),
                                     ("pg168121", "archive: {method: standby}")])
def test_a_file_changes_only_with_the_specs_it_names(specs_copy, variant):
    """Each spec's values changed in turn: every file whose provenance does not name that
    spec stays byte for byte the same, so a header never leaves out a spec whose values
    the file renders. Also with a retired cluster (its retire scripts read no other
    cluster) and one that archives from its standby (no NFS export of it)."""
    if variant:
        cluster, setting = variant
        edit(specs_copy / f"clusters/{cluster}.yaml", "host: pitr1\n", f"host: pitr1\n{setting}\n")
    before, sources = bundle_and_sources(specs_copy)
    digests = {p.relative_to(specs_copy).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in specs_copy.rglob("*.yaml")}
    for path, content in before.items():
        named = dict(PROVENANCE_LINE.findall(content))
        if named:  # the header names the plan's sources with their digests, no other spec
            assert {n.decode(): d.decode() for n, d in named.items()} == \
                {name: digests[name] for name in sources[path]}, path
    assert {n for names in sources.values() for n in names} == set(digests)
    for spec in sorted(specs_copy.rglob("*.yaml")):
        name, original = spec.relative_to(specs_copy).as_posix(), spec.read_text()
        perturb(spec)
        after, _ = bundle_and_sources(specs_copy)
        spec.write_text(original)
        assert set(after) == set(before)
        unaffected = [p for p in before if p.split("/", 1)[1] not in INDEXES and name not in sources[p]]
        assert [p for p in unaffected if after[p] != before[p]] == [], name
        assert any(after[p] != before[p] for p in sources if name in sources[p]), name
        if name.startswith("clusters/"):  # a host file names a cluster to render its values
            named_only = [p for p in sources if name in sources[p] and "/clusters/" not in p
                          and unnamed(after[p]) == unnamed(before[p])]
            assert named_only == [], name


def test_a_port_change_leaves_the_other_cluster_and_the_host_files_that_do_not_read_it(
        specs_copy, tmp_path):
    """The issue's proof: clusters/pg168104.yaml's port changed, two builds compared."""
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "a"), check=True)
    edit(specs_copy / "clusters/pg168104.yaml", "port: 19211", "port: 19311")
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "b"), check=True)
    a, b = tmp_path / "a/pitr1", tmp_path / "b/pitr1"
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    changed = {f for f in files if (a / f).read_bytes() != (b / f).read_bytes()}
    ours = {f for f in files if f.startswith("clusters/pg168104/")}
    assert changed - ours == INDEXES | {
        "host/monitor.sh",  # checks the standby on its port
        "host/status.sh",  # asks the standby its replay on its port
        # render the cluster's dataset, primaries, archive: the spec's new digest in the header
        "host/20-datasets.sh", "host/15-vip.sh", "host/40-nfs-exports.sh",
        # replica pitr2 copies the cluster: its send command names the dataset and prefix
        "host/pitr-send-pitr2.sh", "host/26-replica-sender-pitr2.sh"}
    assert not any(f.startswith("clusters/pg168121/") for f in changed)
    for unread in ("verify.sh", "host/10-pool.sh", "host/scrub.cron", "host/80-install-monitor.sh",
                   "host/81-install-status.sh"):
        assert unread in files and unread not in changed


def test_spec_reference_is_current():
    """docs/spec-reference.md is generated from the schema: every field, its default and its
    description, so the reference cannot drift from what validate accepts."""
    result = pitr_bundle("schema", "--markdown", check=True)
    assert result.stdout == (REPO / "docs/spec-reference.md").read_text(), \
        "run: pitr-bundle schema --markdown > docs/spec-reference.md"
    for field in ("`pool.vdevs[].disks`", "`snapshots.keep.daily`", "`archive.method`"):
        assert field in result.stdout


@pytest.mark.parametrize("kind", ["host", "cluster"])
def test_published_schema_is_current(kind):
    result = pitr_bundle("schema", kind, check=True)
    published = (REPO / f"schema/{kind}.schema.json").read_text()
    assert json.loads(result.stdout) == json.loads(published), \
        f"run: pitr-bundle schema {kind} > schema/{kind}.schema.json"
    assert result.stdout == published


def test_schema_forbids_unknown_keys():
    schema = json.loads((REPO / "schema/host.schema.json").read_text())
    assert schema["additionalProperties"] is False


def test_cli_usage_errors_exit_2_without_traceback():
    result = pitr_bundle("build")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = pitr_bundle("check", "/nonexistent")
    assert result.returncode == 2 and "no such bundle folder or tarball" in result.stderr


def test_verify_sh_and_each_script_refuse_a_changed_byte(built, tmp_path):
    import shutil
    bundle = tmp_path / "copy"
    shutil.copytree(built / "pitr1", bundle)
    assert subprocess.run(["bash", str(bundle / "verify.sh")], capture_output=True).returncode == 0
    script = bundle / "host/20-datasets.sh"
    script.write_bytes(script.read_bytes().replace(b"# Creates the shared", b"# Creates thE shared", 1))
    verify = subprocess.run(["bash", str(bundle / "verify.sh")], capture_output=True, text=True)
    assert verify.returncode == 1 and "CHANGED host/20-datasets.sh" in verify.stderr
    altered = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert altered.returncode == 3
    assert "does not match the bundle's SHA256SUMS" in altered.stderr
    intact = subprocess.run([str(bundle / "host/10-pool.sh"), "--help"], capture_output=True, text=True)
    assert intact.returncode == 0, intact.stderr


def test_no_secret_can_enter_a_spec(specs_copy):
    edit(specs_copy / "clusters/pg168121.yaml", "  user: replicator\n", "  user: replicator\n  password: hunter2\n")
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 2 and "replication.password: unknown key" in result.stderr


def test_cron_schedules_cron_would_reject_are_refused(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    for bad, message in [("61 8 * * *", "minute: '61' is outside 0-59"),
                         ("1 8 * *", "a cron schedule has 5 fields"),
                         ("1 8 * * mon-fri", "day of week: 'mon' is not allowed"),
                         ("*/0 8 * * *", "minute: bad step")]:
        text = cluster.read_text()
        cluster.write_text(text + f"snapshots: {{schedule: '{bad}'}}\n")
        result = pitr_bundle("validate", str(specs_copy))
        assert result.returncode == 2 and f"snapshots.schedule: {message}" in result.stderr, result.stderr
        cluster.write_text(text)


# --- the tarball: tarfile's PAX format, nothing of the machine or the moment in it ----------

def test_tarball_is_reproducible_and_says_nothing_of_the_build(monkeypatch):
    """Members in a fixed order (folders parents first, then the files as given), each
    root:root with mtime 0 and its mode; gzip mtime 0 and no file name; the same bytes at
    another time and under another umask; long and non-ASCII names survive (PAX headers)."""
    import gzip
    import time

    from generator.bundle import BundleFile, tarball

    names = ["a.sh", "x" * 94, "x" * 95, "d" * 93 + "/f", "d" * 94 + "/f", "é/non-ascii.sh",
             "clusters/c1/primary/sudoers", "sp ace/and'quote.sh", "z/" + "n" * 200]
    sizes = [0, 1, 511, 512, 513, 10240, 3 << 20]  # empty, block edges, more than the buffer
    files = sorted((BundleFile(name, bytes([65 + i % 26]) * sizes[i % len(sizes)],
                               0o750 if i % 2 else 0o640) for i, name in enumerate(names)),
                   key=lambda f: f.path)
    first = tarball("h", files)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    old_umask = os.umask(0o002)
    try:
        assert tarball("h", files) == first
    finally:
        os.umask(old_umask)
    assert first[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no flags (no file name)
    assert first[4:8] == bytes(4)  # gzip mtime 0
    assert len(gzip.decompress(first)) % (20 * 512) == 0  # whole tar records
    folders = ["h", "h/clusters", "h/clusters/c1", "h/clusters/c1/primary", "h/" + "d" * 93,
               "h/" + "d" * 94, "h/sp ace", "h/z", "h/é"]
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == folders + [f"h/{f.path}" for f in files]
        for member in members:
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == \
                (0, 0, 0, "root", "root"), member.name
        for member, f in zip(members[len(folders):], files):
            assert member.isfile() and member.mode == f.mode
            assert tar.extractfile(member).read() == f.content
        assert all(m.isdir() and m.mode == 0o750 for m in members[:len(folders)])


def test_example_tarball_is_the_same_from_two_processes(tmp_path):
    """Two builds of the example specs, in separate processes, give the same tarball bytes."""
    for name in ("a", "b"):
        pitr_bundle("build", str(REPO / "specs"), "-o", str(tmp_path / name), check=True)
    assert (tmp_path / "a/pitr1.tar.gz").read_bytes() == (tmp_path / "b/pitr1.tar.gz").read_bytes()


def test_sha256sums_lists_every_other_file_of_the_bundle():
    from generator import bundle
    from generator.validate import load_and_validate

    host = load_and_validate(REPO / "specs")[0]
    files = bundle.build_bundle(host)
    sums = {line.split("  ")[1]: line.split("  ")[0]
            for line in next(f for f in files if f.path == "SHA256SUMS").content.decode().splitlines()}
    assert sums == {f.path: hashlib.sha256(f.content).hexdigest()
                    for f in files if f.path != "SHA256SUMS"}


def test_shell_quote_gives_words_bash_reads_back_exactly():
    """Real bash reads every quoted value back byte for byte; $'...' exactly when the value
    holds a quote, an expansion sign or a control character."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from generator.quoting import shell_quote

    def bash_reads(values: list[str]) -> list[str]:
        words = " ".join(shell_quote(v) for v in values)
        out = subprocess.run(["bash", "-c", f"printf '%s\\0' {words}"], capture_output=True,
                             check=True).stdout
        return out.decode("utf-8", "surrogateescape").split("\0")[:-1]

    fixed = ["plain", "it's", "$HOME", "`id`", "a\nb", "\x7f", "tab\there", "é ü", "5432",
             "back\\slash", "semi;colon", "--opt=a b", "$(touch /tmp/x)"]
    assert bash_reads(fixed) == fixed
    for value in fixed:
        special = any(ch in "'$`" or ord(ch) < 32 or ord(ch) == 127 for ch in value)
        assert shell_quote(value).startswith("$'") == special, value

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                            min_size=1), min_size=1, max_size=5))
    def round_trip(values):
        assert bash_reads(values) == values

    round_trip()


def test_write_bundle_in_threads_reports_writes_and_fixes_modes(tmp_path):
    from concurrent.futures import Future

    from generator import write
    from generator.bundle import BundleFile

    files = [BundleFile(f"clusters/c{i // 10:02d}/{'primary/' if i % 3 else ''}f{i}.sh",
                        f"content {i}\n".encode() * (i % 7), 0o750 if i % 2 else 0o640)
             for i in range(300)]
    files += [BundleFile("MANIFEST.json", b"{}", 0o640), BundleFile("SHA256SUMS", b"", 0o640)]
    files.sort(key=lambda f: f.path)
    bundle_dir, tar_path = tmp_path / "out/h", tmp_path / "out/h.tar.gz"
    tar = Future()
    tar.set_result(b"tarball")
    report = write.write_bundle(bundle_dir, files, tar_path, tar)
    assert {status for status, _ in report} == {"new"} and len(report) == 303
    for f in files:
        target = bundle_dir / f.path
        assert target.read_bytes() == f.content and target.stat().st_mode & 0o7777 == f.mode
    assert tar_path.read_bytes() == b"tarball" and tar_path.stat().st_mode & 0o7777 == 0o640
    for folder in [bundle_dir, *(p for p in bundle_dir.rglob("*") if p.is_dir())]:
        assert folder.stat().st_mode & 0o7777 == 0o750, folder
    assert not [p for p in bundle_dir.rglob(".*")], "a temporary file was left behind"

    (bundle_dir / files[0].path).chmod(0o644)  # same bytes, another mode
    (bundle_dir / files[1].path).write_bytes(b"edited")
    (bundle_dir / files[2].path).unlink()
    report = write.write_bundle(bundle_dir, files, tar_path, b"tarball")
    changed = {path for status, path in report if status != "identical"}
    assert changed == {str(bundle_dir / f.path) for f in files[:3]}
    assert dict(report)["new"] == str(bundle_dir / files[2].path)
    for f in files[:3]:
        target = bundle_dir / f.path
        assert target.read_bytes() == f.content and target.stat().st_mode & 0o7777 == f.mode


def test_a_failed_write_is_raised(tmp_path):
    from generator import write
    from generator.bundle import BundleFile

    files = [BundleFile(f"d/f{i:03d}", b"x", 0o640) for i in range(200)]
    (tmp_path / "h/d/f150").mkdir(parents=True)  # a folder where a file goes
    (tmp_path / "h/MANIFEST.json").write_text("{}")  # of an earlier build
    with pytest.raises(OSError):
        write.write_bundle(tmp_path / "h", files, tmp_path / "h.tar.gz", b"t")
    assert not (tmp_path / "h.tar.gz").exists()


@pytest.mark.parametrize("version, amcheck, checksums, verify", [
    ("10.23", "extension", "PG_CHECKSUMS=0", False), ("12.22", "extension", "PG_CHECKSUMS=1", False),
    ("13.23", "extension", "PG_CHECKSUMS=1", True), ("14.20", "pg_amcheck", "PG_CHECKSUMS=1", True)])
def test_the_checks_of_drills_and_base_backups_follow_the_version(specs_copy, tmp_path, version, amcheck,
                                                                   checksums, verify):
    """pgversions' facts: pg_amcheck from 14 (the amcheck extension from 10), pg_checksums from
    12, pg_verifybackup of the base backup from 13; the example's 9.0 cluster has none."""
    edit(specs_copy / "clusters/pg168121.yaml", 'version: "17.6"', f'version: "{version}"')
    out = tmp_path / "out"
    pitr_bundle("build", str(specs_copy), "-o", str(out), check=True)
    for cluster, expected in (("pg168121", (amcheck, checksums, verify)), ("pg168104", ("none", "PG_CHECKSUMS=0", False))):
        drill = (out / f"pitr1/clusters/{cluster}/drill.sh").read_text()
        backup = (out / f"pitr1/clusters/{cluster}/50-basebackup.sh").read_text()
        assert f"\nreadonly AMCHECK={expected[0]}\n" in drill
        assert f"\nreadonly {expected[1]}\n" in drill
        assert ('"$PGHOME/bin/pg_verifybackup" --manifest-path' in backup) == expected[2]
        assert ("writes no backup manifest" in backup) != expected[2]


def test_the_bundle_readme_names_every_secret_and_file_the_operator_brings(specs_copy, tmp_path):
    """The run order's inputs in one place: the replication password per cluster (its role and
    nodes, the three scripts that take it), the TLS CA file, the 9.0 ssh key, the source
    tarballs a source build needs (named once the spec names them)."""
    specs = specs_copy
    edit(specs / "clusters/pg168121.yaml", "  configure:\n",
         "  source: {file: postgresql-17.6.tar.bz2, sha256: " + "a" * 64 + "}\n  configure:\n")
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    readme = (tmp_path / "out/pitr1/README.md").read_text()
    section = readme[readme.index("## What the scripts ask for"):readme.index("## Operations")]
    for expected in ("`PITR_REPLICATION_PASSWORD`", "`45-apply-on-primary.sh`", "`50-basebackup.sh`",
                     "`60-standby.sh`",
                     "`pg168104`: role `postgres` on 192.168.1.104 and 192.168.1.105 (an existing superuser",
                     "`pg168121`: role `replicator` on 192.168.1.121 and 192.168.1.122\n",
                     "**The CA certificate**", "**An ssh key**", "`/pg_home/<cluster>/soft_bak/`",
                     "`pg168121`: `postgresql-17.6.tar.bz2`",
                     "`pg168104`: PostgreSQL 9.0.17's source (the spec names none yet"):
        assert expected in section, expected
