"""`pitr-bundle check`: checksums, shellcheck at all severities, and the shipped bats suites."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import pitr_bundle
from generator.audit import tool
from generator.inert import blot_inert
from generator.views import View

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    pitr_bundle("build", "specs", "-o", str(out), check=True)
    return out / "pitr1"


def test_example_bundle_passes_shellcheck_and_every_bats_test(example_bundle):
    """CI runs the deep tier (every fault position, the simulated year) on every cluster."""
    result = pitr_bundle("check", "--deep", "--each-cluster", str(example_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksums: ok" in result.stdout
    assert "shellcheck:" in result.stdout and "clean" in result.stdout
    assert "bats: ok" in result.stdout
    assert "not ok" not in result.stdout + result.stderr
    assert "ok 1 faults: the pool script" in result.stdout
    assert result.stdout.count("over a simulated year of runs the kept set is exactly") == 2
    assert result.stdout.count("faults: the restore script") == 2  # on both clusters
    # the archive migration's NFS tests on pg168104, its standby ones on pg168121: none skipped
    assert "# skip no cluster of this bundle archives through method" not in result.stdout


def test_the_replica_bundle_passes_shellcheck_and_every_bats_test(example_bundle):
    """The example's replica pitr2 (no clusters of its own): its host suites, the replica's
    pull against pitr1's send command (the suites find the source's bundle beside it), the
    monitor's and pitr-status's copies, and the fault tests of its scripts."""
    result = pitr_bundle("check", "--deep", str(example_bundle.parent / "pitr2"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bats: ok" in result.stdout and "not ok" not in result.stdout + result.stderr
    ran = [line for line in result.stdout.splitlines() if line.startswith("ok ") and "# skip" not in line]
    for title in ("faults: the replication script", "faults: the replica key script",
                  "faults: the replication installer"):
        assert any(title in line for line in ran), title


def test_encrypted_datasets_pass_the_datasets_suite_and_its_fault_test(tmp_path):
    """The example's host spec with `encryption: {key: file}`: datasets.bats's encryption tests
    (which skip on the example) run, the archive migration's skip, and the datasets script's
    fault test passes with the encrypted creates and the key checks."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    host = specs / "hosts/pitr1.yaml"
    host.write_text(host.read_text() + "encryption:\n  key: file\n")
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    result = pitr_bundle("check", str(tmp_path / "out/pitr1"), "--deep", "--filter",
                         "^(datasets: |faults: the datasets script)")
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line for line in result.stdout.splitlines() if line.startswith("ok ") and "# skip" not in line]
    encryption = [line for line in ran if "datasets: encryption:" in line]
    assert len(encryption) == 4, result.stdout
    assert any("faults: the datasets script" in line for line in ran), result.stdout


def test_a_world_variable_from_outside_reaches_no_suite(example_bundle, tmp_path, monkeypatch):
    """The suites keep their worlds under PITR_WORLD (test_helper.bash: world_setup_file); one
    left in the reviewer's environment must not become the place a suite writes its stubs."""
    stray = tmp_path / "stray"
    monkeypatch.setenv("PITR_WORLD", str(stray))
    monkeypatch.setenv("PITR_WORLD_SAVED", str(tmp_path / "stray.saved"))
    result = pitr_bundle("check", "--filter", "check-primary: a healthy|snapshot: takes",
                         str(example_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok 1 snapshot: takes") == 2
    assert "check-primary: a healthy" in result.stdout
    assert not stray.exists() and not (tmp_path / "stray.saved").exists()


def test_the_helpers_run_checks_python_not_the_first_on_path(example_bundle, tmp_path):
    """test_helper.bash starts the Python check gives it (PITR_PYTHON, check's own), not the
    `python3` first on PATH: a reviewer's may be a launcher (pyenv's shim) or missing from the
    system folders the stubbed PATH keeps (a Python only in a virtualenv)."""
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").write_text("#!/bin/sh\necho 'python3 from PATH' >&2\nexit 1\n")
    (shims / "python3").chmod(0o755)
    started = tmp_path / "started"
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\necho started >>{started}\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    suites = tmp_path / "suites"
    shutil.copytree(REPO / "generator/suites", suites)
    (suites / "python.bats").write_text(
        "load test_helper\n@test 'a fact' { [ \"$(query \"facts['pool']['name']\")\" = "
        + json.loads((example_bundle / "MANIFEST.json").read_text())["facts"]["pool"]["name"]
        + " ]; }\n")
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}", PITR_PYTHON=str(wrapper),
               PITR_BUNDLE_DIR=str(example_bundle), TMPDIR=str(tmp_path))
    result = subprocess.run([tool("bats"), "--formatter", "tap", str(suites / "python.bats")],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert started.read_text().count("started") == 1

def test_check_without_deep_leaves_the_tagged_tests_out_and_says_so(example_bundle):
    result = pitr_bundle("check", "--filter", "faults: the (user|pool) script|snapshot: takes",
                         str(example_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests tagged deep left out (check --deep)" in result.stderr  # the plan, once
    assert "faults:" not in result.stdout
    assert result.stdout.count("ok 1 snapshot: takes") == 2  # one per view: 9.0 and 17 differ
    assert "\r" not in result.stderr  # not a terminal: no redrawn status line
    deep = pitr_bundle("check", "--deep", "--filter", "faults: the (user|pool) script",
                       str(example_bundle))
    assert deep.returncode == 0 and deep.stdout.count("ok 1 faults: the user script") == 2
    assert "ok 1 faults: the pool script" in deep.stdout


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
    "status": "the status installer",
    "user": "the user script",
    "build": "the build script",
    "primary": "the primary-side script",
    "basebackup": "the base backup script",
    "standby": "the standby script",
    "snapshot": "the snapshot script",
    "snapshot-cron": "the snapshot-cron installer",
    "restore": "the restore script",
    "wal-retention": "the WAL retention script",

    "drill": "the restore drill",
    "drill-cron": "the drill installer",
    # a retired cluster's scripts (only in bundles with one: see test_retire.py)
    "retire": "the retire script",
    "primary-remove": "the primary-side removal",
    # changes nothing: its fault test makes each query or reading fail
    "check-primary": "the primary check",
    # a replica's source (pitr1) and the replica (pitr2)
    "replica-send": "the replica send command's confirm",
    "replica-sender": "the replica sender setup",
    "replica-key": "the replica key script",
    "replicate-install": "the replication installer",
    "replicate": "the replication script",
}
CHANGES_NOTHING = {"verify", "binaries"}  # binaries: checks an installation, changes nothing


def test_no_assertion_of_the_shipped_suites_is_one_that_cannot_fail():
    """`! cmd` anywhere but last in a bats test never fails it (bash -e ignores a negated
    command): shellcheck's SC2314 at severity error names each; write `! cmd || false`."""
    suites = sorted((REPO / "generator/suites").glob("*.bats"))
    result = subprocess.run([tool("shellcheck"), "-f", "gcc", "-S", "error", "--include=SC2314",
                             *map(str, suites)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_every_script_role_has_a_fault_test(example_bundle):
    roles = set()
    for bundle in (example_bundle, example_bundle.parent / "pitr2"):  # pitr2: the replica
        manifest = json.loads((bundle / "MANIFEST.json").read_text())
        roles |= {f["role"] for f in manifest["files"] if f["path"].endswith(".sh")}
    suites = "".join(p.read_text() for p in (REPO / "generator/suites").glob("*faults.bats"))
    missing = sorted(role for role in roles - CHANGES_NOTHING if role not in FAULT_TESTS)
    assert not missing, f"script roles without a fault test: {missing}"
    for role in roles - CHANGES_NOTHING:
        assert f'@test "faults: {FAULT_TESTS[role]}' in suites, role


def test_a_replica_source_sending_through_sudo_passes_the_replica_suites(tmp_path):
    """specs/hosts/pitr2.yaml with replica_of.send_privilege sudo (ZFS without delegation to
    users): pitr1's sender setup installs a sudo rule instead of `zfs allow`, the key's forced
    command runs the send command through sudo; the replica suites' sudo branch and the fault
    tests of the send command and its setup, which the example (delegation) never runs."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    host = specs / "hosts/pitr2.yaml"
    text = host.read_text()
    assert "replica_of:\n  host: pitr1\n" in text
    host.write_text(text.replace("replica_of:\n  host: pitr1\n", "replica_of:\n  host: pitr1\n  send_privilege: sudo\n", 1))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    result = pitr_bundle("check", str(tmp_path / "out/pitr1"), "--deep", "--filter",
                         "^(send command|sender setup|faults: the replica (send|sender))")
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line for line in result.stdout.splitlines() if line.startswith("ok ") and "# skip" not in line]
    assert any("sender setup, send_privilege sudo: a rule visudo accepts" in line for line in ran), result.stdout
    assert any("faults: the replica sender setup" in line for line in ran), result.stdout
    assert "# skip send_privilege sudo" in result.stdout  # the delegation-only test


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


def test_tls_on_a_cluster_before_9_5_passes_shellcheck_and_its_suites(tmp_path):
    """The example's 9.0 cluster asking for TLS: its hostssl, CA file and refusal branches,
    and check-primary's 'unknown before 9.5' (no pg_stat_ssl), which the example never runs."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    cluster = specs / "clusters/pg168104.yaml"
    text = cluster.read_text()
    cluster.write_text(text.replace("replication:\n", "replication:\n  tls: {mode: verify-ca, "
                                    "ca_file: /etc/pitr-bundle/tls/pg168104-ca.crt}\n", 1))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    result = pitr_bundle("check", str(tmp_path / "out/pitr1"), "--filter", "TLS")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# cluster-check-primary.bats on pg168104" in result.stdout, result.stdout
    runs = result.stdout.split("# cluster-")
    old = next(run for run in runs if run.startswith("check-primary.bats on pg168104"))
    # run, not skipped: its pre-9.5 branch
    assert any(line.startswith("ok ") and line.endswith(
        "check-primary: TLS asked for, the backup standby over TLS: OK, saying so (9.5+: pg_stat_ssl)")
        for line in old.splitlines()), old


# --- shellcheck in batches: each failing file named, the cache per file content ----------------

def _break(path: Path, line: str) -> None:
    path.write_text(path.read_text().replace('main "$@"', f'{line}\nmain "$@"'))


def test_a_batch_names_each_failing_file_and_keeps_the_others_clean(example_bundle, tmp_path):
    from generator.audit import shellcheck_batch, tool

    copy = tmp_path / "pitr1"
    shutil.copytree(example_bundle, copy)
    primary = copy / "clusters/pg168104/primary"
    batch = [copy / "verify.sh", primary / "pitr-archive-wal.sh", primary / "pitr-archive-mount.sh",
             copy / "clusters/pg168121/pitr-archive-wal.sh"]
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
    small, seen = [], set()  # small files, no two alike once blotted (each its own check)
    for p in sorted(audit.read_manifest(copy).shell_files(), key=str):
        if p.stat().st_size < 16000 and 'main "$@"' in p.read_text() \
                and blot_inert(p.read_text()) not in seen:
            seen.add(blot_inert(p.read_text()))
            small.append(p)
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
    clean = [p for p in (tmp_path / "cache/pitr-bundle/shellcheck-clean").iterdir()
             if not p.name.startswith("inert-")]
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


# --- shellcheck once per content up to inert places (generator/inert.py) -----------------------

def test_blotting_hides_only_what_shellcheck_does_not_read():
    text = "\n".join([
        "#!/usr/bin/env bash",
        "# cluster pg168121's scripts, port 19212",  # a comment: blotted
        "# shellcheck disable=SC2034 # a directive: kept",
        "readonly CLUSTER=pg168121 PORT=19212 \\",  # constants: values blotted
        "  NAME='a b' ESC=$'it\\'s\\x0a' GLOB=a*b",
        "local root=${BASH_SOURCE[0]%/*} self=clusters/pg168121/x.sh expected",
        "readonly OPTIONS=(",  # array elements: blotted
        "  -l",
        "  'pitr-bundle pg168121'",
        ")",
        "exit 300",  # a command's arguments: kept, even quoted
        "tr 'a-z' 'A-Z'",
        'info "port 19212"',
        "X=1 run 300",  # an assignment before a command: the line is kept
        "cat <<'EOF'",  # a quoted here-document: blotted
        "port = '19212' $((08))",
        "EOF",
        "cat <<EOF",  # an unquoted one: lines that expand kept
        "plain 19212",
        "$((08)) 19212",
        "EOF",
        "echo 'a",  # a string over two lines: kept
        "# not a comment 19212'",
        "main \"$@\"",
    ])
    blotted = blot_inert(text).split("\n")
    assert len(blot_inert(text)) == len(text)
    assert [line == original for line, original in zip(blotted, text.split("\n"))] == [
        True, False, True, False, False, False, True, False, False, True, True, True, True, True,
        True, False, True, True, False, True, True, True, True, True]
    assert blotted[3] == "readonly CLUSTER=xxxxxxxx PORT=xxxxx \\"
    assert blotted[4] == "  NAME='x x' ESC=$'xx\\'x\\x0a' GLOB=a*b"  # GLOB: not a plain value
    assert blotted[5] == "local root=${BASH_SOURCE[0]%/*} self=xxxxxxxx/xxxxxxxx/x.xx expected"
    assert blotted[8] == "  'xxxx-xxxxxx xxxxxxxx'"
    assert blot_inert("cat <<'EOF'\nno end") == "cat <<'EOF'\nno end"
    # a command shown in a comment, with its continuation: blotted, the backslash kept; any
    # other backslash, a $ or a backquote keeps the comment as it is
    assert blot_inert("#   ./configure --prefix=/pg17 \\") == "#   ./xxxxxxxxx --xxxxxx=/xxxx \\"
    for kept in ("# a\\b c", "# a \\n", "# $HOME \\", "# `id` x"):
        assert blot_inert(kept) == kept


def _fleet_specs(tmp_path: Path, hostile: list[str] | None = None) -> Path:
    """The example specs plus pg168122 and pg168123: copies of pg168121 with their own name,
    user, port, dataset, mountpoint and addresses; `hostile` configure words in pg168123."""
    import re

    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    source = (specs / "clusters/pg168121.yaml").read_text()
    for number in (122, 123):
        text = re.sub(r"168121", f"168{number}", source)
        text = text.replace("port: 19212", f"port: {19300 + number}")
        text = text.replace("192.168.1.121", f"192.168.1.{number + 10}")
        text = text.replace("192.168.1.122", f"192.168.1.{number + 20}")
        if hostile and number == 123:
            text = text.replace("    - --without-readline\n", "    - --without-readline\n" +
                                "".join(f"    - {word!r}\n" for word in hostile))
        (specs / f"clusters/pg168{number}.yaml").write_text(text)
    return specs


def test_a_value_that_makes_shellcheck_complain_is_reported_in_its_cluster_file(
        tmp_path, monkeypatch, capsys):
    """A configure word that lands at the start of a header comment line makes a directive
    that shellcheck rejects: the one cluster's build script is reported, by name, although
    the three clusters' scripts are otherwise alike (one check stands for the others)."""
    from generator import audit

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    specs = _fleet_specs(tmp_path, hostile=["LDFLAGS=" + "-L/opt/lib" * 8, "shellcheck", "foo=bar"])
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    assert "#     shellcheck foo=bar" in (bundle / "clusters/pg168123/35-build.sh").read_text()
    checked = []
    real_batch = audit.shellcheck_batch
    monkeypatch.setattr(audit, "shellcheck_batch",
                        lambda sc, batch: checked.extend(batch) or real_batch(sc, batch))
    paths = audit.read_manifest(bundle).shell_files()
    assert audit.run_shellcheck(paths) == 1
    out = capsys.readouterr().out
    assert f"{bundle}/clusters/pg168123/35-build.sh:" in out and "[SC1107]" in out
    assert "pg168121/35-build.sh" not in out and "pg168122/35-build.sh" not in out
    assert len(checked) < len(paths) - 10  # the alike scripts of the copies were not run
    assert bundle / "clusters/pg168123/35-build.sh" in checked


def test_clusters_alike_blot_to_the_same_scripts(tmp_path):
    """Clusters that differ only in their names, ports and addresses cost one shellcheck run
    per script role, not one per cluster: every value of theirs stands in an inert place."""
    pitr_bundle("build", str(_fleet_specs(tmp_path)), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    for script in sorted((bundle / "clusters/pg168121").rglob("*")):
        if script.is_file() and script.read_bytes().startswith(b"#!"):
            relative = script.relative_to(bundle / "clusters/pg168121")
            bodies = {blot_inert((bundle / "clusters" / name / relative).read_text())
                      for name in ("pg168121", "pg168122", "pg168123")}
            assert len(bodies) == 1, relative


def test_a_finding_in_scripts_alike_is_reported_for_each_of_them(tmp_path, monkeypatch, capsys):
    """Scripts that are alike once blotted, broken the same way: the first is checked, has
    findings, so each of the others is checked too and named with its own findings."""
    from generator import audit

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    pitr_bundle("build", str(_fleet_specs(tmp_path)), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    users = [bundle / f"clusters/pg1681{n}/30-user.sh" for n in (21, 22, 23)]
    assert len({blot_inert(p.read_text()) for p in users}) == 1
    for path in users:
        _break(path, "echo $UNQUOTED")
    assert audit.run_shellcheck(users) == 1
    out = capsys.readouterr().out
    for path in users:
        assert f"{path}:" in out and "echo $UNQUOTED" in out
    assert out.count("[SC2086]") == 3


# --- what a suite sees of a cluster, up to identity values (generator/shapes.py) ----------------

# every file and fact of a cluster (a suite that declared no narrower view would see more: the
# host's facts too); the tests below are about the abstraction of identity values
WHOLE_CLUSTER = View(None, None, ())


def _shapes(bundle: Path) -> list[list[str]]:
    from generator.audit import read_manifest, suites_text
    from generator.shapes import suite_runs

    manifest = read_manifest(bundle).data
    names = [c["name"] for c in manifest["facts"]["clusters"]]
    groups = suite_runs(bundle, manifest, {"all": WHOLE_CLUSTER}, suites_text())["all"]
    return [[names[i] for i in group] for group in groups]


def test_clusters_alike_up_to_names_ports_and_addresses_share_a_shape(tmp_path, example_bundle):
    assert _shapes(example_bundle) == [["pg168104"], ["pg168121"]]  # 9.0 and 17: two shapes
    pitr_bundle("build", str(_fleet_specs(tmp_path)), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    assert _shapes(bundle) == [["pg168104"], ["pg168121", "pg168122", "pg168123"]]
    # and what a shape stands for is a real difference: one changed byte splits it
    script = bundle / "clusters/pg168123/snapshot.sh"
    script.write_text(script.read_text().replace("KEEP_DAILY=7", "KEEP_DAILY=8", 1))
    assert _shapes(bundle) == [["pg168104"], ["pg168121", "pg168122"], ["pg168123"]]


def test_a_value_of_another_class_or_one_the_suites_name_gives_a_shape_of_its_own(tmp_path):
    specs = _fleet_specs(tmp_path)
    path = specs / "clusters/pg168122.yaml"  # 2000: a uid the suites write
    path.write_text(path.read_text().replace("port: 19422", "port: 2000"))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "a"), check=True)
    assert _shapes(tmp_path / "a/pitr1") == [["pg168104"], ["pg168121", "pg168123"], ["pg168122"]]
    path = specs / "clusters/pg168123.yaml"  # a user with an underscore: another class
    path.write_text(path.read_text().replace("user: replicator", "user: repl_cator"))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "b"), check=True)
    assert ["pg168123"] in _shapes(tmp_path / "b/pitr1")


def test_values_of_other_lengths_share_a_shape(tmp_path):
    """A fleet's addresses and ports differ in length (192.168.1.9 and 192.168.1.131, 9400 and
    19423): the lengths of opaque words split no shape; their character classes still do."""
    from generator.shapes import value_class

    specs = _fleet_specs(tmp_path)
    path = specs / "clusters/pg168123.yaml"
    path.write_text(path.read_text().replace("192.168.1.133", "192.168.1.9")
                    .replace("192.168.1.143", "10.2.30.1").replace("port: 19423", "port: 9400"))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    facts = json.loads((bundle / "MANIFEST.json").read_text())["facts"]["clusters"][3]
    assert (facts["name"], facts["primary"]["address"], facts["port"]) == ("pg168123", "192.168.1.9", 9400)
    assert _shapes(bundle) == [["pg168104"], ["pg168121", "pg168122", "pg168123"]]
    assert value_class("10.1.0.2") == value_class("192.168.10.130") == "0.0.0.0"
    assert value_class("pg_7") == "a_0" != value_class("pg7") and value_class("c0001") != value_class("0001")


def test_a_value_inside_a_longer_number_neither_splits_nor_counts_as_named(tmp_path):
    """The version 17.0 inside the host's virtual IP 10.17.0.199 is not the version: clusters on
    17.0, 17.4 and 17.6 share a shape; and the suites' address 10.0.0.9 does not name 10.0."""
    from generator.shapes import named_by

    specs = _fleet_specs(tmp_path)
    host = specs / "hosts/pitr1.yaml"
    host.write_text(host.read_text().replace("address: 192.168.1.199", "address: 10.17.0.199"))
    for name, version in (("pg168122", "17.0"), ("pg168123", "17.4")):
        path = specs / f"clusters/{name}.yaml"
        path.write_text(path.read_text().replace('version: "17.6"', f'version: "{version}"'))
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    assert "10.17.0.199/32" in (bundle / "clusters/pg168122/primary/pg_hba.conf.lines").read_text()
    assert _shapes(bundle) == [["pg168104"], ["pg168121", "pg168122", "pg168123"]]
    assert not named_by("10.0", "printf '/srv/other 10.0.0.9(ro)'") and not named_by("5432", "54321")
    assert named_by("5432", "port = 5432\n") and named_by("2000", "x:2000:") and named_by("10.0", "[[ $v == 10.0* ]]")


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, path + (index,))
    else:
        yield path, value


def _same_class_other(value):
    """Another value of the same character classes and length (a digit or letter changed)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if len(str(value + 1)) == len(str(value)) else value - 1
    text = str(value)
    for i in range(len(text) - 1, -1, -1):
        ch = text[i]
        if ch.isdigit() or ch.isascii() and ch.isalpha():
            other = {"9": "8", "z": "y", "Z": "Y"}.get(ch, chr(ord(ch) + 1))
            return text[:i] + other + text[i + 1:]
    return text + " "


def test_the_view_key_covers_every_fact_in_the_view(example_bundle):
    """Whatever fact of a cluster changes, even to a value of the same class, the key of a view
    that holds it changes: a suite cannot read a fact the grouping did not look at."""
    import copy

    from generator.audit import read_manifest, suites_text
    from generator.shapes import view_key

    manifest = read_manifest(example_bundle).data
    text = suites_text()
    for index, facts in enumerate(manifest["facts"]["clusters"]):
        key = view_key(example_bundle, manifest, index, WHOLE_CLUSTER, text)
        leaves = [(p, v) for p, v in _leaves(facts) if v is not None]
        assert len(leaves) > 30
        for path, value in leaves:
            changed = copy.deepcopy(manifest)
            target = changed["facts"]["clusters"][index]
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = _same_class_other(value)
            assert view_key(example_bundle, changed, index, WHOLE_CLUSTER, text) != key, path
