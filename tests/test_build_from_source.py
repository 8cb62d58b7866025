"""The generated build script (clusters/<cluster>/35-build.sh) for real: it builds PostgreSQL 15
from Debian's source of postgresql-15 for bookworm with Debian's own configure line, imported
with `pitr-bundle import-pg-config --configure` from the real `pg_config` of Debian's package
(tests/fixtures/pg_config/debian-15.txt; without --configure it would print `binaries:`, the
packages' bin folder, since the primary's PostgreSQL is packaged).

The line is used whole but for ONE of its 61 options; the other 60 are kept byte for byte:
`--with-llvm` (LLVM_CONFIG=/usr/bin/llvm-config-14, CLANG=/usr/bin/clang-14), ICU, systemd,
selinux, gssapi, ldap, tcl, perl, python, dtrace, TAP tests, lz4, zstd, values with spaces
('CFLAGS=-g -O2 ...', '--with-extra-version= (Debian 15.18-0+deb12u1)', 'MKDIR_P=/bin/mkdir -p')
and `${prefix}` values.

Dropped: `--runstatedir=/run`. PostgreSQL's release tarballs (Debian's orig tarball is one)
ship a configure made by Autoconf 2.69, which has no --runstatedir and stops with
"unrecognized option: `--runstatedir=/run'"; Debian regenerates configure with Autoconf 2.71
(debian/patches/autoconf2.69 + dh_autoreconf), and its debhelper adds the option. PostgreSQL
never reads runstatedir, so the build is the same without it: an operator importing a Debian or
Ubuntu pg_config has to delete that one line from the spec, as this test does.

What becomes of the primary's --prefix and install-folder options (Debian's literal
/usr/lib/postgresql/15/bin and the like) is configure_for_backup_host's business: the test
holds the installed `pg_config --configure` to exactly what that function and
autoconf_recorded say, and checks that everything landed under the backup prefix in the layout
the bundle's other scripts use ($PGHOME/bin, $PGHOME/lib).

tests/backends/fetch-postgres-source.sh fetches the source (`apt-get source --download-only
postgresql-15/bookworm`, private apt setup) and installs the Debian packages the line needs
(about 30 s when all are missing). The build takes about 10 minutes on 2 idle cores (LLVM
bitcode doubles the compiling; 13-16 minutes with other load). It needs root (the script runs its steps as the cluster's OS
user through runuser) but no ZFS: the spec's datasets are plain folders under a temporary
directory. PITR_KEEP_BUILD=1 keeps that directory and the OS user for a look afterwards.

Tier: the source build is `slow` (tests/run runs it, `tests/run --fast` skips it); the refusals
(tampered or missing tarball) and the dry run before a build use a tiny tarball and are fast.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, backend_missing, pitr_bundle
from generator.cluster_plan import autoconf_recorded, configure_for_backup_host
from generator.pgconfig import option_value, parse_pg_config

FIXTURE = REPO / "tests/fixtures/pg_config/debian-15.txt"
FETCH = REPO / "tests/backends/fetch-postgres-source.sh"
BUILD_TIMEOUT = 3600  # seconds; the build takes 10-16 minutes on 2 cores


def need_root_tools() -> None:
    if os.geteuid() != 0:
        backend_missing("building with the cluster's OS user needs root (useradd, runuser)")
    for tool in ("useradd", "userdel", "runuser"):
        if shutil.which(tool) is None:
            backend_missing(f"{tool} not found")


# --- the spec set --------------------------------------------------------------------------


@dataclass
class Rig:
    base: Path  # a temporary folder every user may traverse (pytest's tmp_path is 0700)
    specs: Path
    bundle: Path  # out/<host>
    cluster: str
    version: str
    pg_home: Path  # <pg_home mountpoint>/<cluster>
    soft_bak: Path
    prefix: Path
    pghome_link: Path

    @property
    def script(self) -> Path:
        return self.bundle / f"clusters/{self.cluster}/35-build.sh"


def imported_section() -> str:
    """The `postgres:` section exactly as `pitr-bundle import-pg-config --configure` prints it."""
    result = pitr_bundle("import-pg-config", "--configure", str(FIXTURE), check=True)
    assert result.stdout.startswith("postgres:\n"), result.stdout
    return result.stdout


def write_specs(rig_base: Path, specs: Path, cluster: str, section: str, version: str,
                source_file: str, source_sha256: str) -> None:
    """A host spec whose datasets mount under rig_base (no ZFS involved: the build script only
    needs folders) and one cluster spec with the imported postgres section pasted in."""
    mnt = rig_base / "mnt"
    (specs / "hosts").mkdir(parents=True)
    (specs / "clusters").mkdir()
    disks = [rig_base / f"disks/disk{i}" for i in range(3)]  # never touched: no pool script runs
    (specs / "hosts/test.yaml").write_text(textwrap.dedent(f"""\
        name: test
        address: 127.0.0.1
        pool:
          name: pbs
          device_paths: any
          mountpoint: {mnt}/pbs
          vdevs:
            - type: raidz1
              disks: [{", ".join(map(str, disks))}]
        datasets:
          pg_home: {{name: pbs/pg_home, mountpoint: {mnt}/pg_home}}
          pg_arch: {{name: pbs/pg_arch, mountpoint: {mnt}/pg_arch}}
          pg_log: {{name: pbs/pg_log, mountpoint: {mnt}/pg_log}}
        """))
    # paste the import as an operator would, set the version of the tarball at hand, add the
    # source tarball and the build settings
    section, count = re.subn(r'(?m)^  version: "[^"\n]*"$', f'  version: "{version}"', section)
    assert count == 1, section
    section += textwrap.indent(textwrap.dedent(f"""\
        source: {{file: {source_file}, sha256: {source_sha256}}}
        contrib: true
        make_jobs: 2
        """), "  ")
    (specs / f"clusters/{cluster}.yaml").write_text(textwrap.dedent(f"""\
        name: {cluster}
        host: test
        dataset: pbs/{cluster}
        mountpoint: {mnt}/{cluster}
        port: 25433
        primary: {{address: 127.0.0.1, port: 5432}}
        """) + section)


def make_rig(tmp_path: Path, tarball: Path, version: str, spec_sha256: str | None = None,
             section: str | None = None) -> Rig:
    """Specs, bundle, OS user, pg_home/<cluster>/soft_bak with the tarball in it. The caller
    removes it with remove_rig (also when the test fails)."""
    cluster = "pbs" + secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix="pitr-build-"))
    base.chmod(0o755)
    rig = Rig(base=base, specs=tmp_path / "specs", bundle=tmp_path / "out/test", cluster=cluster,
              version=version, pg_home=base / "mnt/pg_home" / cluster,
              soft_bak=base / "mnt/pg_home" / cluster / "soft_bak",
              prefix=base / "mnt/pg_home" / cluster / f"pgsql{version}",
              pghome_link=base / "mnt/pg_home" / cluster / "pgsql")
    sha256 = spec_sha256 or hashlib.sha256(tarball.read_bytes()).hexdigest()
    write_specs(base, rig.specs, cluster, section if section is not None else imported_section(),
                version, tarball.name, sha256)
    pitr_bundle("build", str(rig.specs), "-o", str(tmp_path / "out"), check=True)
    assert rig.script.is_file()
    # the cluster's user (30-user.sh would make it the same way), and its folders as 30-user.sh
    # makes them: pg_home (the dataset's mountpoint) belongs to root, <cluster> and soft_bak
    # to the user, 0750
    subprocess.run(["useradd", "-m", "-U", "-s", "/bin/bash", "-c", "pitr-bundle build test",
                    cluster], check=True)
    (base / "mnt/pg_home").mkdir(parents=True)
    (base / "mnt/pg_home").chmod(0o755)
    for folder in (rig.pg_home, rig.soft_bak):
        folder.mkdir()
        shutil.chown(folder, cluster, cluster)
        folder.chmod(0o750)
    shutil.copyfile(tarball, rig.soft_bak / tarball.name)
    (rig.soft_bak / tarball.name).chmod(0o644)
    return rig


def remove_rig(rig: Rig) -> None:
    if os.environ.get("PITR_KEEP_BUILD"):
        print(f"PITR_KEEP_BUILD: keeping {rig.base} and user {rig.cluster}")
        return
    subprocess.run(["userdel", "-r", rig.cluster], capture_output=True)
    shutil.rmtree(rig.base, ignore_errors=True)


def run_build(rig: Rig, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(rig.script), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def tree_state(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, owner, size, mtime and link target."""
    state = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        state[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                            os.readlink(path) if path.is_symlink() else None)
    return state


def pg_config(rig: Rig, *args: str) -> str:
    result = subprocess.run([str(rig.prefix / "bin/pg_config"), *args], capture_output=True,
                            text=True, check=True)
    return result.stdout.rstrip("\n")


# --- fast: refusals and the dry run, with a tiny tarball -------------------------------------


@pytest.fixture
def tiny_tarball(tmp_path) -> Path:
    """A stand-in for the source tarball: the layout of a real one, a few bytes of content."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"stand-in for the PostgreSQL 15.18 sources\n"
        info = tarfile.TarInfo("postgresql-15.18/README")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "postgresql-15.18.tar.bz2"
    path.write_bytes(bz2.compress(raw.getvalue()))
    return path


@pytest.fixture
def tiny_rig(tmp_path, tiny_tarball):
    need_root_tools()
    rig = make_rig(tmp_path, tiny_tarball, "15.18")
    yield rig
    remove_rig(rig)


def test_a_tampered_tarball_is_refused_with_exit_3(tiny_rig):
    tarball = tiny_rig.soft_bak / "postgresql-15.18.tar.bz2"
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed
    tarball.write_bytes(bytes(data))
    before = tree_state(tiny_rig.base)
    result = run_build(tiny_rig)
    assert result.returncode == 3, result.stderr
    assert "sha256" in result.stderr
    assert hashlib.sha256(bytes(data)).hexdigest() in result.stderr  # names what it found
    assert "refusing to build" in result.stderr
    assert tree_state(tiny_rig.base) == before


def test_a_missing_tarball_is_refused_with_exit_3(tiny_rig):
    (tiny_rig.soft_bak / "postgresql-15.18.tar.bz2").unlink()
    before = tree_state(tiny_rig.base)
    result = run_build(tiny_rig)
    assert result.returncode == 3, result.stderr
    assert "is missing" in result.stderr
    assert tree_state(tiny_rig.base) == before


def test_dry_run_before_a_build_changes_nothing(tiny_rig):
    before = tree_state(tiny_rig.base)
    result = run_build(tiny_rig, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry-run: would run in" in result.stderr
    assert "./configure" in result.stderr
    assert tree_state(tiny_rig.base) == before


# --- slow: the real build --------------------------------------------------------------------


@pytest.fixture(scope="module")
def debian_source() -> tuple[Path, str, float]:
    """(orig tarball, its sha256, seconds the fetch script took) from fetch-postgres-source.sh."""
    need_root_tools()
    start = time.monotonic()
    result = subprocess.run(["bash", str(FETCH)], capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        backend_missing(f"{FETCH.name} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    sha256, path = result.stdout.strip().splitlines()[-1].split("  ", 1)
    tarball = Path(path)
    assert re.fullmatch(r"[0-9a-f]{64}", sha256) and tarball.is_file(), result.stdout
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == sha256
    return tarball, sha256, seconds


def tarball_version(tarball: Path) -> str:
    """15.18 from Debian's postgresql-15_15.18.orig.tar.bz2."""
    match = re.fullmatch(r"postgresql-\d+_(\d+\.\d+)\.orig\.tar\.(?:bz2|gz|xz)", tarball.name)
    assert match, tarball.name
    return match[1]


@pytest.mark.slow
def test_build_script_builds_postgres_15_with_debians_configure_line(debian_source, tmp_path):
    tarball, sha256, fetch_seconds = debian_source
    version = tarball_version(tarball)
    section = imported_section()
    # the CLI hands over the real line whole and exact: 61 options, as autoconf quoted them
    assert yaml.safe_load(section)["postgres"]["configure"] == \
        list(parse_pg_config(FIXTURE.read_text()).configure_args)
    # the one option the release tarball's configure (Autoconf 2.69) refuses: see the docstring
    section, dropped = re.subn(r"(?m)^    - --runstatedir=/run\n", "", section)
    assert dropped == 1, section
    imported = yaml.safe_load(section)["postgres"]["configure"]
    assert len(imported) == 60
    for option in ("--with-llvm", "--with-extra-version= (Debian 15.18-0+deb12u1)",
                   "--includedir=${prefix}/include", "MKDIR_P=/bin/mkdir -p",
                   "CFLAGS=-g -O2 -fstack-protector-strong -Wformat -Werror=format-security "
                   "-fno-omit-frame-pointer"):
        assert option in imported

    rig = make_rig(tmp_path, tarball, version, spec_sha256=sha256, section=section)
    try:
        expected = autoconf_recorded(configure_for_backup_host(imported, str(rig.prefix)))

        log = rig.base / "build.log"
        start = time.monotonic()
        first = run_build(rig, timeout=BUILD_TIMEOUT)
        build_seconds = time.monotonic() - start
        log.write_text(first.stdout + first.stderr)
        print(f"\nfetch-postgres-source.sh: {fetch_seconds:.0f} s; "
              f"35-build.sh (configure, make, install, contrib): {build_seconds:.0f} s")
        assert first.returncode == 0, (f"35-build.sh: exit {first.returncode}, log {log} "
                                       f"(PITR_KEEP_BUILD=1 keeps it):\n{first.stderr[-4000:]}")

        # the layout every other script of the bundle relies on: $PGHOME/bin (PATH, pg_ctl,
        # initdb, pg_basebackup) and $PGHOME/lib (as_user's LD_LIBRARY_PATH: the build has
        # --disable-rpath, so without it psql & co. would load the host's own libpq)
        assert (rig.prefix / "bin/pg_config").is_file(), "no <prefix>/bin/pg_config"
        assert (rig.prefix / "bin/pg_ctl").is_file() and (rig.prefix / "bin/initdb").is_file()
        assert (rig.prefix / "lib/libpq.so.5").exists(), "no <prefix>/lib/libpq.so.5"
        # the installed build says it is the primary's build: PostgreSQL 15 records autoconf's
        # argument string with its leading space, older majors print it without
        recorded = pg_config(rig, "--configure")
        assert recorded in (expected, " " + expected)
        assert recorded.lstrip(" ") == expected
        extra = option_value(imported, "--with-extra-version") or ""
        assert pg_config(rig, "--version") == f"PostgreSQL {version}{extra}"
        # everything `make install` wrote is under the prefix (nothing in Debian's /usr/...
        # folders); sysconfdir stays the primary's (only read at run time)
        for option in ("--bindir", "--libdir", "--pkglibdir", "--includedir",
                       "--includedir-server", "--sharedir", "--docdir", "--mandir", "--localedir"):
            assert pg_config(rig, option).startswith(f"{rig.prefix}/"), option
        assert pg_config(rig, "--sysconfdir") == "/etc/postgresql-common"
        assert rig.pghome_link.is_symlink() and os.readlink(rig.pghome_link) == str(rig.prefix)
        # contrib, and the LLVM JIT provider with its bitcode
        pkglibdir = Path(pg_config(rig, "--pkglibdir"))
        sharedir = Path(pg_config(rig, "--sharedir"))
        assert (pkglibdir / "pg_stat_statements.so").is_file()
        assert (sharedir / "extension/pg_stat_statements.control").is_file()
        assert (pkglibdir / "llvmjit.so").is_file()
        assert (pkglibdir / "bitcode/postgres.index.bc").is_file()
        assert (rig.prefix / "bin/postgres").stat().st_uid == pwd.getpwnam(rig.cluster).pw_uid
        assert not (rig.soft_bak / "build").exists()  # the work folder is gone

        # a second run finds the build in place and changes nothing
        before = tree_state(rig.base)
        start = time.monotonic()
        again = run_build(rig)
        again_seconds = time.monotonic() - start
        assert again.returncode == 0, again.stderr
        assert "already built" in again.stderr
        assert "already linked" in again.stderr
        assert "run:" not in again.stderr
        assert again_seconds < 30
        assert tree_state(rig.base) == before

        # dry runs change nothing, also when asked to rebuild
        for args in (["--dry-run"], ["--dry-run", "--rebuild"]):
            result = run_build(rig, *args)
            assert result.returncode == 0, result.stderr
            assert tree_state(rig.base) == before, args
        assert "already built" in run_build(rig, "--dry-run").stderr
        rebuild = run_build(rig, "--dry-run", "--rebuild").stderr
        assert "dry-run: would run in" in rebuild and "./configure" in rebuild
        print(f"second run: {again_seconds:.1f} s")
    finally:
        remove_rig(rig)
