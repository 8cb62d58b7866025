"""Hostile values in every string field of the example specs, one at a time: each is either
refused with file:line:field, or arrives literally in a bundle that passes bash -n and
shellcheck, and whose scripts, run in --dry-run with recording stubs on PATH, never run it."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLE_SPECS, pitr_bundle
from generator.bundle import build_bundle
from generator.errors import SpecError
from generator.inert import blot_inert
from generator.validate import load_and_validate

STUBBED = ["zpool", "zfs", "blkid", "realpath", "getent", "groupadd", "useradd", "runuser", "install",
           "chown", "systemctl", "mount", "mountpoint", "visudo", "exportfs", "logger", "flock", "sudo",
           "rsync", "ssh", "ln", "rm", "mv", "cp", "find", "tar", "make", "pg_ctl", "psql"]
SHELLCHECKED: set[str] = set()  # hashes of blotted texts already shellchecked clean
PENDING = Path(os.environ.get("TMPDIR", "/tmp")) / f"pitr-hostile-{os.getpid()}"


def shellcheck_pending() -> None:
    """shellcheck every script collected since the last call: two processes, one batch."""
    files = sorted(PENDING.glob("*.sh")) if PENDING.exists() else []
    if not files:
        return
    shellcheck = Path(sys.executable).parent / "shellcheck"
    procs = [subprocess.Popen([str(shellcheck), "--shell=bash", "--severity=style", *map(str, part)],
                              stdout=subprocess.PIPE, text=True) for part in (files[0::2], files[1::2]) if part]
    outputs = [(proc, proc.communicate()[0]) for proc in procs]
    shutil.rmtree(PENDING)
    for proc, out in outputs:
        assert proc.returncode == 0, out
    SHELLCHECKED.update(f.stem for f in files)
COUNTS = {"refused": 0, "accepted": 0}


def payloads(marker: Path) -> list[str]:
    touch = f"touch {marker}"
    return ["'", '"', f"a;{touch}", f"a && {touch}", f"a | {touch}", f"$({touch})", f"`{touch}`",
            f"a\n{touch}", "%p %f %%", "#not a comment", "-rf", "a b", "ü€ non-ascii", "",
            "x" * 5000, f"'; {touch}; '", f'"; {touch}; "', f"\\'; {touch} #"]


def string_fields(data, at=()):
    """Key paths of every string in a spec (list items included)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from string_fields(value, at + (key,))
    elif isinstance(data, list):
        # items of one list are alike (disks, configure options): the first stands for all
        for index, value in enumerate(data[:1]):
            yield from string_fields(value, at + (index,))
    elif isinstance(data, str):
        yield at


def set_at(data, at, value):
    for key in at[:-1]:
        data = data[key]
    data[at[-1]] = value


def base_specs() -> dict[str, dict]:
    """The example specs, plus the free-text fields they leave out (and the scrub's)."""
    specs = {}
    for path in sorted(EXAMPLE_SPECS.rglob("*.yaml")):
        specs[str(path.relative_to(EXAMPLE_SPECS))] = yaml.safe_load(path.read_text())
    specs["hosts/pitr1.yaml"]["scrub"] = {"schedule": "0 3 1 * *", "time_zone": "UTC", "mailto": "root"}
    cluster = specs["clusters/pg168121.yaml"]
    cluster["snapshots"] = {"pre_hook": "psql -c checkpoint"}
    cluster["drill"] = {"sanity_query": "select count(*) from pg_class"}
    cluster["archive"] = {"method": "nfs"}  # spelled out: the field gets hostile values too
    cluster["standby"]["settings"]["work_mem"] = "4MB"
    cluster["primary"].update(systemd_unit="postgresql-17.service",  # the defaults, spelled out
                              archive_script="/usr/local/sbin/pitr-archive-wal-pg168121",
                              archive_mount="/pgarch/pg168121")
    cluster["postgres"]["extensions"] = [{"name": "pgfincore", "file": "pgfincore-1.2.tar.gz",
                                          "sha256": "0" * 64, "make_args": ["CFLAGS=-O2"]}]
    # the other cluster on installed binaries, for the fields only that mode has
    specs["clusters/pg168104.yaml"]["postgres"] = {
        "version": "9.0.17", "binaries": "/usr/pgsql-9.0/bin", "extensions": [{"name": "pgfincore"}]}
    return specs


BASE = base_specs()
_BASE_HASHES: dict[str, str] = {}
# every field of the host spec and of the PostgreSQL 17 cluster, and the 9.0 cluster's fields
# the other lacks (the two cluster specs share their schema)
_OTHER = set(string_fields(BASE["clusters/pg168121.yaml"]))
FIELDS = [(name, at) for name, data in BASE.items() for at in string_fields(data)
          if name != "clusters/pg168104.yaml" or at not in _OTHER]


def write_specs(root: Path, specs: dict[str, dict]) -> Path:
    folder = root / "specs"
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in specs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return folder


def make_stubs(root: Path) -> Path:
    stubs = root / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in STUBBED:
        path = stubs / name
        path.write_text('#!/bin/bash\nprintf "%s\\0" "$0" "$@" >>"$STUB_LOG"\nprintf "\\n" >>"$STUB_LOG"\n'
                        'case "$(basename "$0") $1" in "zpool list"|"zfs list"|"getent passwd") exit 1;; esac\n'
                        'exit 0\n')
        path.chmod(0o755)
    (stubs / "id").write_text("#!/bin/bash\necho 0\n")
    (stubs / "id").chmod(0o755)
    return stubs


def check_accepted(root: Path, specs_dir: Path, payload: str, marker: Path) -> None:
    hosts = load_and_validate(specs_dir)
    stubs = make_stubs(root)
    shutil.rmtree(root / "bundle", ignore_errors=True)
    for host in hosts:
        bundle = root / "bundle" / host.name  # one folder per host: the replica pitr2 too
        files = build_bundle(host)
        for f in files:
            (bundle / f.path).parent.mkdir(parents=True, exist_ok=True)
            (bundle / f.path).write_bytes(f.content)
            (bundle / f.path).chmod(f.mode)
        if not _BASE_HASHES:
            for base_host in load_and_validate(write_specs(root / "base", BASE)):
                _BASE_HASHES.update({(base_host.name, f.path): hashlib.sha256(f.content).hexdigest()
                                     for f in build_bundle(base_host)})
        # only the scripts the hostile value changed need checking and running
        scripts = [bundle / f.path for f in files if f.path.endswith(".sh")
                   and _BASE_HASHES.get((host.name, f.path)) != hashlib.sha256(f.content).hexdigest()]
        for script in scripts:
            parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert parsed.returncode == 0, f"{script.name}: bash -n: {parsed.stderr}"
        # shellchecked together, per field (see shellcheck_pending), once per blotted text: as
        # `check` does (generator/inert.py), since shellcheck's findings cannot differ between
        # scripts that differ only in inert places (every header's spec hash, a quoted value)
        for script in scripts:
            digest = hashlib.sha256(blot_inert(script.read_text()).encode()).hexdigest()
            if digest not in SHELLCHECKED:
                PENDING.mkdir(parents=True, exist_ok=True)
                shutil.copy(script, PENDING / f"{digest}.sh")
        env = {"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(root / "calls.log"), "LC_ALL": "C",
               "HOME": str(root)}
        for script in scripts:
            subprocess.run([str(script), "--dry-run", "--yes", "--latest"] if script.name == "restore.sh"
                           else [str(script), "--dry-run", "--yes"], env=env, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert not marker.exists(), f"a payload ran: {payload!r}"
    assert_literal(root / "bundle/pitr1", payload)


def bash_value(script: Path, name: str) -> list[str]:
    """The words of a readonly array or variable of a generated script, as bash reads them."""
    text = script.read_text()
    match = re.search(rf"^readonly {name}=(\(.*?^\)|.*?)$", text, re.S | re.M)
    assert match, f"{name} not in {script}"
    out = subprocess.run(["bash", "-c", f'{name}={match.group(1)}; printf "%s\\0" "${{{name}[@]}}"'],
                         capture_output=True, text=True, check=True).stdout
    return out.split("\0")[:-1]


def assert_literal(bundle: Path, payload: str) -> None:
    if payload == "":
        return
    configure = bash_value(bundle / "clusters/pg168121/35-build.sh", "CONFIGURE_ARGS")
    pre_hook = bash_value(bundle / "clusters/pg168121/snapshot.sh", "PRE_HOOK")
    standby = (bundle / "clusters/pg168121/60-standby.sh").read_text()
    sanity_query = bash_value(bundle / "clusters/pg168121/drill.sh", "SANITY_QUERY")
    found = (payload in configure or [payload] == pre_hook or [payload] == sanity_query
             or "'" + payload.replace("\\", "\\\\").replace("'", "''") + "'" in standby
             or payload in bash_value(bundle / "clusters/pg168121/35-build.sh", "CONFIGURE_ARGS"))
    build = (bundle / "clusters/pg168121/35-build.sh").read_text()
    found = found or f"build_extension \"$work\" pgfincore pgfincore-1.2.tar.gz {'0' * 64} " in build
    assert found, f"{payload!r} did not arrive literally"


def run_case(tmp_path: Path, name: str, at: tuple, payload: str, marker: Path) -> str:
    specs = copy.deepcopy(BASE)
    set_at(specs[name], at, payload)
    specs_dir = write_specs(tmp_path, specs)
    try:
        load_and_validate(specs_dir)
    except SpecError as exc:
        for problem in exc.problems:
            assert re.match(r"^\S+\.yaml(:\d+)?: (\S+: )?\S", str(problem)), str(problem)
        COUNTS["refused"] += 1
        return "refused"
    check_accepted(tmp_path, specs_dir, payload, marker)
    COUNTS["accepted"] += 1
    return "accepted"


@pytest.mark.parametrize("name, at", FIELDS, ids=[f"{n}:{'.'.join(map(str, a))}" for n, a in FIELDS])
def test_hostile_value_in_field(tmp_path, name, at):
    marker = tmp_path / "MARKER"
    outcomes = {}
    for payload in payloads(marker):
        outcomes[payload[:20]] = run_case(tmp_path, name, at, payload, marker)
        assert not marker.exists()
    shellcheck_pending()


def test_refusal_through_the_cli_names_file_line_field(tmp_path):
    specs = copy.deepcopy(BASE)
    specs["clusters/pg168104.yaml"]["dataset"] = "zp1/x; reboot"
    result = pitr_bundle("build", str(write_specs(tmp_path, specs)), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(r"clusters/pg168104.yaml:\d+: dataset: 'zp1/x; reboot' is not allowed", result.stderr)
    assert not (tmp_path / "out").exists()


FREE_TEXT = [("clusters/pg168121.yaml", ("postgres", "configure", 1)),
             ("clusters/pg168121.yaml", ("snapshots", "pre_hook")),
             ("clusters/pg168121.yaml", ("drill", "sanity_query")),
             ("clusters/pg168121.yaml", ("standby", "settings", "work_mem"))]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=80), field=st.sampled_from(FREE_TEXT))
def test_random_text_in_free_text_fields(tmp_path, text, field):
    marker = tmp_path / "MARKER"
    run_case(tmp_path, field[0], field[1], text + f"$(touch {marker})", marker)
    assert not marker.exists()
    shellcheck_pending()


def test_report_counts():
    """After the field tests of this session: both outcomes occurred (a schema that refused or
    accepted everything would mean the cases test nothing); prints the counts for the note."""
    if not COUNTS["refused"] + COUNTS["accepted"]:
        pytest.skip("run with the field tests to count their cases")
    print(f"\nhostile cases: {COUNTS['refused']} refused with file:line:field, "
          f"{COUNTS['accepted']} accepted and arrived literally, none ran")
    assert COUNTS["refused"] > 0 and COUNTS["accepted"] > 0
