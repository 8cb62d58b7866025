"""`pitr-bundle check`: checksums, shellcheck at all severities, and the shipped bats suites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import pitr_bundle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    pitr_bundle("build", "specs", "-o", str(out), check=True)
    return out / "pitr1"


def test_example_bundle_passes_shellcheck_and_bats(example_bundle):
    result = pitr_bundle("check", str(example_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksums: ok" in result.stdout
    assert "shellcheck:" in result.stdout and "clean" in result.stdout
    assert "bats: ok" in result.stdout
    assert "not ok" not in result.stdout + result.stderr


def test_check_refuses_a_bundle_with_a_changed_byte(example_bundle, tmp_path):
    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    script = copy / "host/10-pool.sh"
    script.write_bytes(script.read_bytes().replace(b"zpool create", b"zpool creatE", 1))
    result = pitr_bundle("check", str(copy), "--no-bats")
    assert result.returncode == 1
    assert "SHA256SUMS mismatch: host/10-pool.sh" in result.stderr


def test_shellcheck_findings_fail_the_check(example_bundle, tmp_path):
    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    script = copy / "host/20-datasets.sh"
    script.write_text(script.read_text().replace('main "$@"', 'echo $UNQUOTED\nmain "$@"'))
    result = pitr_bundle("check", str(copy), "--no-bats")
    assert result.returncode == 1
    assert "SC2086" in result.stdout or "SC2154" in result.stdout


# the fault test of each script role (generator/suites/*faults.bats); a new role needs one
FAULT_TESTS = {
    "pool": "the pool script",
    "datasets": "the datasets script",
    "nfs-exports": "the NFS exports script",
    "vip": "the VIP script",
    "monitor": "the monitoring installer",
    "user": "the user script",
    "build": "the build script",
    "primary": "the primary-side script",
    "basebackup": "the base backup script",
    "standby": "the standby script",
    "snapshot": "the snapshot script",
    "snapshot-cron": "the snapshot-cron installer",
    "restore": "the restore script",
}
CHANGES_NOTHING = {"verify", "binaries"}  # binaries: checks an installation, changes nothing


def test_every_script_role_has_a_fault_test(example_bundle):
    manifest = json.loads((example_bundle / "MANIFEST.json").read_text())
    roles = {f["role"] for f in manifest["files"] if f["path"].endswith(".sh")}
    suites = "".join(p.read_text() for p in (REPO / "generator/suites").glob("*faults.bats"))
    missing = sorted(role for role in roles - CHANGES_NOTHING if role not in FAULT_TESTS)
    assert not missing, f"script roles without a fault test: {missing}"
    for role in roles - CHANGES_NOTHING:
        assert f'@test "faults: {FAULT_TESTS[role]}' in suites, role


def test_a_cluster_on_installed_binaries_passes_shellcheck_and_its_suites(tmp_path):
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    cluster = specs / "clusters/pg168121.yaml"
    text = cluster.read_text()
    start, end = text.index("postgres:\n"), text.index("primary:\n")
    cluster.write_text(text[:start] + 'postgres:\n  version: "17.6"\n  binaries: /usr/pgsql-17/bin\n'
                       "  extensions:\n    - name: pg_stat_statements\n" + text[end:])
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    result = pitr_bundle("check", str(tmp_path / "out/pitr1"), "--filter", "^binaries: |snapshot: the pre")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok 1 binaries: an installation of the primary's version" in result.stdout
    assert "# skip this cluster is built from source" in result.stdout  # pg168104's run


# --- shellcheck in batches: each failing file named, the cache per file content ----------------

def _break(path: Path, line: str) -> None:
    path.write_text(path.read_text().replace('main "$@"', f'{line}\nmain "$@"'))


def test_a_batch_names_each_failing_file_and_keeps_the_others_clean(example_bundle, tmp_path):
    from generator.audit import shellcheck_batch, tool

    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    primary = copy / "clusters/pg168121/primary"
    batch = [copy / "verify.sh", primary / "pitr-archive-wal.sh", primary / "pitr-archive-mount.sh",
             copy / "clusters/pg168104/primary/pitr-archive-mount.sh"]
    _break(batch[0], "echo $UNQUOTED")
    _break(batch[2], "if then")
    result = shellcheck_batch(tool("shellcheck"), batch)
    assert result.clean == [batch[1], batch[3]]
    named = {name for name, _ in result.report}
    assert named == {str(batch[0]), str(batch[2])}
    text = "\n".join(t for _, t in result.report)
    assert f"{batch[0]}:" in text and "[SC2086]" in text and "echo $UNQUOTED" in text
    assert f"{batch[2]}:" in text and "[SC1073]" in text


def test_shellcheck_caches_per_file_content_and_rechecks_only_what_changed(
        example_bundle, tmp_path, monkeypatch, capsys):
    from generator import audit

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(audit, "BATCH_MAX", 3)
    monkeypatch.setattr(audit, "_batches",  # several files per run, however few the files
                        lambda todo, jobs: [todo[i:i + 3] for i in range(0, len(todo), 3)])
    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    small = sorted((p for p in audit.read_manifest(copy).shell_files()
                    if p.stat().st_size < 6000 and 'main "$@"' in p.read_text()), key=str)
    assert len(small) >= 4, small
    twin = copy / "twin.sh"  # the same content twice: checked once, both named
    paths = small + [twin]
    _break(small[0], "echo $UNQUOTED")
    shutil.copyfile(small[0], twin)
    checked = []
    real_batch = audit.shellcheck_batch
    monkeypatch.setattr(audit, "shellcheck_batch",
                        lambda sc, batch: checked.extend(batch) or real_batch(sc, batch))

    assert audit.run_shellcheck(paths) == 1
    out = capsys.readouterr().out
    assert f"{small[0]}:" in out and "[SC2086]" in out
    assert f"the same content, so the same findings: {twin}" in out
    assert len(checked) == len(paths) - 1  # the twin was not checked a second time
    clean = list((tmp_path / "cache/pitr-bundle/shellcheck-clean").iterdir())
    assert len(clean) == len(small) - 1  # every clean file of the batch remembered

    checked.clear()
    assert audit.run_shellcheck(paths) == 1  # still broken: checked again, still named
    assert checked == [small[0]] and f"{small[0]}:" in capsys.readouterr().out

    shutil.copyfile(example_bundle / small[0].relative_to(copy), small[0])
    shutil.copyfile(small[0], twin)
    checked.clear()
    assert audit.run_shellcheck(paths) == 0
    assert checked == [small[0]]
    checked.clear()
    assert audit.run_shellcheck(paths) == 0 and checked == []  # all clean and remembered


def test_shellcheck_that_cannot_run_on_a_batch_caches_none_of_it(tmp_path, monkeypatch, capsys):
    from generator import audit

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = tmp_path / "good.sh"
    good.write_text("#!/usr/bin/env bash\necho ok\n")
    result = audit.shellcheck_batch(audit.tool("shellcheck"), [good, tmp_path / "missing.sh"])
    assert result.clean == [] and "missing.sh" in result.report[0][1]
