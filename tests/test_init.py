"""pitr-bundle init: a first set of specs from a few flags and each primary's pg_config (or
SHOW server_version). What it writes validates and builds, for packaged and source-built
primaries; what would not validate is not written; hostile values are refused."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, pitr_bundle

FIXTURES = REPO / "tests/fixtures/pg_config"
DISKS = ",".join(f"/dev/disk/by-id/ata-TEST_{n}" for n in range(1, 7))


def init(folder: Path, *args: str):
    return pitr_bundle("init", str(folder), "--host", "backup1", "--address", "10.0.0.5",
                       "--disks", DISKS, *args)


def test_packaged_and_source_built_primaries_validate_and_build(tmp_path):
    specs = tmp_path / "specs"
    result = init(specs,
                  "--cluster", "sales=10.0.0.21", "--server-version", "sales=16.4 (Debian 16.4-1.pgdg120+1)",
                  "--cluster", "hr=10.0.0.22:5433", "--pg-config", f"hr={FIXTURES / 'rhel-pgdg-16.txt'}",
                  "--cluster", "books=10.0.0.23", "--pg-config", f"books={FIXTURES / 'npm-17.txt'}",
                  "--data-dir", "books=/srv/pg/books",
                  "--cluster", "legacy=10.0.0.24", "--pg-config", f"legacy={FIXTURES / 'runbook-9.0.17.txt'}",
                  "--data-dir", "legacy=/srv/pg/legacy")
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(specs).as_posix() for p in specs.rglob("*.yaml")) == [
        "clusters/books.yaml", "clusters/hr.yaml", "clusters/legacy.yaml", "clusters/sales.yaml",
        "hosts/backup1.yaml"]
    sales = yaml.safe_load((specs / "clusters/sales.yaml").read_text())
    assert sales["postgres"] == {"version": "16.4", "binaries": "/usr/lib/postgresql/16/bin"}
    assert sales["primary"]["data_dir"] == "/var/lib/postgresql/16/main"
    assert sales["replication"]["slot"] == "backup1_sales"
    hr = yaml.safe_load((specs / "clusters/hr.yaml").read_text())
    assert hr["postgres"]["binaries"] == "/usr/pgsql-16/bin" and hr["primary"]["port"] == 5433
    assert hr["primary"]["data_dir"] == "/var/lib/pgsql/16/data"
    books = yaml.safe_load((specs / "clusters/books.yaml").read_text())
    assert books["postgres"]["configure"] and "binaries" not in books["postgres"]
    legacy = yaml.safe_load((specs / "clusters/legacy.yaml").read_text())
    assert legacy["postgres"]["version"] == "9.0.17" and "slot" not in legacy["replication"]
    assert [c["port"] for c in (sales, hr, books, legacy)] == [15432, 15433, 15434, 15435]
    assert pitr_bundle("validate", str(specs)).returncode == 0
    built = pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out/backup1/clusters/sales/35-check-binaries.sh").exists()
    assert (tmp_path / "out/backup1/clusters/books/35-build.sh").exists()


def test_what_would_not_validate_is_not_written(tmp_path):
    specs = tmp_path / "specs"
    # too few disks for the raidz2: validate's file:line: field, and nothing written
    result = pitr_bundle("init", str(specs), "--host", "backup1", "--address", "10.0.0.5",
                         "--disks", "/dev/disk/by-id/ata-ONE", "--cluster", "sales=10.0.0.21",
                         "--server-version", "sales=16.4 (Debian 16.4-1.pgdg120+1)")
    assert result.returncode == 2
    assert f"{specs}/hosts/backup1.yaml:" in result.stderr and "disks" in result.stderr
    assert not specs.exists() or not any(specs.rglob("*.yaml"))
    assert "Traceback" not in result.stderr


def test_existing_specs_are_never_overwritten_and_new_ones_must_fit_them(tmp_path):
    specs = tmp_path / "specs"
    assert init(specs, "--cluster", "sales=10.0.0.21",
                "--server-version", "sales=16.4 (Debian 16.4-1.pgdg120+1)").returncode == 0
    before = (specs / "clusters/sales.yaml").read_text()
    again = init(specs, "--cluster", "sales=10.0.0.21",
                 "--server-version", "sales=16.4 (Debian 16.4-1.pgdg120+1)")
    assert again.returncode == 2 and "already has" in again.stderr
    assert (specs / "clusters/sales.yaml").read_text() == before


def test_what_it_cannot_know_is_asked_for(tmp_path):
    # a bare version says nothing of how PostgreSQL was installed
    bare = init(tmp_path / "a", "--cluster", "sales=10.0.0.21", "--server-version", "sales=16.4")
    assert bare.returncode == 2 and "--pg-config sales=FILE" in bare.stderr
    # a source build's data folder is nowhere in pg_config
    built = init(tmp_path / "b", "--cluster", "books=10.0.0.23",
                 "--pg-config", f"books={FIXTURES / 'npm-17.txt'}")
    assert built.returncode == 2 and "--data-dir books=PATH" in built.stderr
    none = init(tmp_path / "c")
    assert none.returncode == 2 and "--cluster NAME=ADDRESS" in none.stderr
    stray = init(tmp_path / "d", "--cluster", "sales=10.0.0.21", "--pg-config", "other=/x")
    assert stray.returncode == 2 and "no --cluster gives" in stray.stderr
    for result in (bare, built, none, stray):
        assert "Traceback" not in result.stderr


def test_hostile_values_are_refused_by_validate_and_nothing_is_written(tmp_path):
    for hostile in ("sales$(reboot)=10.0.0.21", "sales=10.0.0.21;reboot", "sales=10.0.0.21\nx: 1",
                    "../../escaped=10.0.0.21", "sales=10.0.0.21\"\nx: 1"):
        folder = tmp_path / str(abs(hash(hostile)))
        name = hostile.split("=")[0]
        result = init(folder, "--cluster", hostile,
                      "--server-version", f"{name}=16.4 (Debian 16.4-1.pgdg120+1)")
        assert result.returncode == 2, hostile
        assert "Traceback" not in result.stderr
        assert not any(folder.rglob("*.yaml")) if folder.exists() else True
        assert not (tmp_path / "escaped.yaml").exists() and not Path("/tmp/escaped.yaml").exists()


def test_the_readme_quick_start_runs_as_written(tmp_path):
    """README's quick start: its init command (with a real Debian pg_config as sales.pg_config),
    then validate and build of what it wrote."""
    text = (REPO / "README.md").read_text()
    start = text.index("       pitr-bundle init my-specs")
    block = text[start:text.index("\n\n", start)]
    command = " ".join(line.strip().rstrip("\\") for line in block.splitlines())
    (tmp_path / "sales.pg_config").write_text((FIXTURES / "debian-15.txt").read_text())
    argv = shlex.split(command)
    assert argv[:2] == ["pitr-bundle", "init"]
    result = subprocess.run([sys.executable, "-m", "generator", *argv[1:]], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert pitr_bundle("validate", str(tmp_path / "my-specs")).returncode == 0
    assert pitr_bundle("build", str(tmp_path / "my-specs"), "-o", str(tmp_path / "out")).returncode == 0


def test_the_host_suites_pass_on_a_bundle_of_init_specs(tmp_path):
    """The shipped host suites on a bundle other than the example's: packaged 16 and a source
    build of 17 (the status suite once split a packaged cluster's SQL with Python's shlex, which
    does not read bash's $'...' quoting)."""
    specs = tmp_path / "specs"
    assert init(specs, "--cluster", "sales=10.0.0.21",
                "--server-version", "sales=16.4 (Debian 16.4-1.pgdg120+1)",
                "--cluster", "books=10.0.0.23", "--pg-config", f"books={FIXTURES / 'npm-17.txt'}",
                "--data-dir", "books=/srv/pg/books").returncode == 0
    pitr_bundle("build", str(specs), "-o", str(tmp_path / "out"), check=True)
    checked = pitr_bundle("check", str(tmp_path / "out/backup1"), "--filter", "^status")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "bats: ok" in checked.stdout + checked.stderr
