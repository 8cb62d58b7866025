"""Recognise a primary whose PostgreSQL came from packages (Debian's or Ubuntu's .debs, PGDG's
RPMs on RHEL) in its pg_config output, and write the `postgres:` section that installs the same
packages on the backup host (`binaries:`) instead of rebuilding them from source.

Why: a packaged build's CONFIGURE is the packager's: some 60 options with the package layout's
literal folders and build-host flags (rpmbuild's -specs=/usr/lib/rpm/redhat/...). Building that
on the backup host is slow and fragile, while the same packages of the same major, in the
primary's minor release or a newer one, replay its WAL; 35-check-binaries.sh checks exactly that.

Only text the patterns below admit is quoted in the section's comments: a pasted value with a
character YAML reads as a line break (U+0085, U+2028) must not end a comment early.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from generator.pgconfig import PgConfig, option_value, postgres_yaml, spec_section


@dataclass(frozen=True)
class Family:
    name: str  # "Debian/Ubuntu"
    where: str  # the backup hosts that use its layout: "Debian or Ubuntu"
    bin_folder: str  # where its packages put the programs; {major}: "16", "9.6"
    packages: str  # what the backup host installs; {nodot}: the major without its dot


DEBIAN = Family("Debian/Ubuntu", "Debian or Ubuntu", "/usr/lib/postgresql/{major}/bin",
                "postgresql-{major}")
RHEL = Family("RHEL/PGDG", "RHEL with PGDG's RPMs", "/usr/pgsql-{major}/bin",
              "postgresql{nodot}-server and postgresql{nodot}-contrib from PGDG's repository")
_OTHER = {DEBIAN: RHEL, RHEL: DEBIAN}

_MAJOR = r"([1-9][0-9]*|[1-9]\.[0-9])"  # "16"; "9.6" before 10
_DEBIAN_BIN = re.compile(rf"/usr/lib/postgresql/{_MAJOR}/bin/?")
_RHEL_BIN = re.compile(rf"/usr/pgsql-{_MAJOR}/bin/?")
_RHEL_PREFIX = re.compile(rf"/usr/pgsql-{_MAJOR}/?")
# what Debian's packaging passes as --with-extra-version, and VERSION then ends with
_DEBIAN_SUFFIX = re.compile(r"\((Debian|Ubuntu) ([0-9][0-9A-Za-z.+~:-]*)\)")
# the upstream release of a package version: "16.4" of "16.4-1.pgdg120+1"
_UPSTREAM = re.compile(r"([0-9]+(?:\.[0-9]+)+)-")
_RPM_SPECS = re.compile(r"-specs=/usr/lib/rpm/redhat/[A-Za-z0-9_.-]+")
_RELEASE = re.compile(r"([1-9]\.[0-9]|[1-9][0-9]+)\.[0-9]+")  # its major: 16.4 -> 16, 9.6.24 -> 9.6


@dataclass(frozen=True)
class _Marker:
    family: Family
    evidence: str
    major: str | None = None
    release: str | None = None


@dataclass(frozen=True)
class Packaged:
    family: Family
    major: str
    release: str | None  # the primary's exact release, when the text says it
    evidence: tuple[str, ...]

    @property
    def bin_folder(self) -> str:
        return self.family.bin_folder.format(major=self.major)


def _markers(pg: PgConfig) -> list[_Marker]:
    """What says where the programs are or whose package this is. rpmbuild's flags alone say
    neither (Red Hat's own packages put them in /usr/bin): they only back an RHEL marker."""
    found = []
    bindir = option_value(pg.configure_args, "--bindir")
    for label, path in (("BINDIR = ", pg.bindir), ("--bindir=", bindir)):
        for family, pattern in ((DEBIAN, _DEBIAN_BIN), (RHEL, _RHEL_BIN)):
            if path and (m := pattern.fullmatch(path)):
                found.append(_Marker(family, label + m[0], major=m[1]))
    prefix = option_value(pg.configure_args, "--prefix")
    if prefix and (m := _RHEL_PREFIX.fullmatch(prefix)):
        found.append(_Marker(RHEL, f"--prefix={m[0]}", major=m[1]))
    extra = option_value(pg.configure_args, "--with-extra-version")
    for label, suffix in (("VERSION's ", pg.version_suffix), ("--with-extra-version= ", extra)):
        if suffix and (m := _DEBIAN_SUFFIX.fullmatch(suffix.strip())):
            upstream = _UPSTREAM.match(m[2])
            found.append(_Marker(DEBIAN, label + m[0], release=upstream and upstream[1]))
    if any(marker.family is RHEL for marker in found):
        for word in pg.configure_args:
            if word.startswith("CFLAGS=") and (m := _RPM_SPECS.search(word)):
                found.append(_Marker(RHEL, f"CFLAGS with {m[0]} (rpmbuild's flags)"))
                break
    return found


def recognise(pg: PgConfig) -> Packaged | str | None:
    """Packaged for a packaged build; None without any package marker (a source build); else
    the sentence why the markers found do not settle the bin folder."""
    markers = _markers(pg)
    if not markers:
        return None
    evidence = tuple(dict.fromkeys(m.evidence for m in markers))
    families = {m.family for m in markers}
    if len(families) > 1:
        return f"markers of both Debian/Ubuntu and RHEL packages ({'; '.join(evidence)})"
    release = pg.version or next((m.release for m in markers if m.release), None)
    majors = {m.major for m in markers if m.major}
    stated = _RELEASE.match(release or "")
    if stated:
        majors.add(stated[1])
    if len(majors) != 1:
        what = f"different majors ({', '.join(sorted(majors))})" if majors else "no major"
        return f"package markers ({'; '.join(evidence)}) with {what}"
    family = families.pop()
    if pg.bindir and not any(m.evidence.startswith("BINDIR") for m in markers):
        return (f"package markers ({'; '.join(evidence)}), but BINDIR is not where "
                f"{family.name} packages put the programs")
    return Packaged(family, majors.pop(), release, evidence)


def _comment(text: str) -> str:
    """YAML comment lines: each line of `text` wrapped to 94 columns, an indented one (a
    command) kept whole."""
    lines = [wrapped for line in text.split("\n") for wrapped in
             ([line] if line.startswith(" ") else textwrap.wrap(line, 92, break_on_hyphens=False))]
    return "".join(f"# {line}\n" for line in lines)


def _packages(found: Packaged) -> str:
    names = found.family.packages.format(major=found.major, nodot=found.major.replace(".", ""))
    if found.family is not DEBIAN:
        return names
    # the Debian package version tells PGDG's builds (16.4-1.pgdg120+1) from the distribution's
    if any("pgdg" in evidence for evidence in found.evidence):
        return f"PGDG's {names}, from apt.postgresql.org"
    if any("(Debian " in e or "(Ubuntu " in e for e in found.evidence):
        return f"the distribution's {names}"
    return f"{names}, PGDG's or the distribution's as on the primary"


def packaged_section(found: Packaged) -> str:
    """The `postgres:` section of a packaged primary: its release and the bin folder of the
    same packages, with a comment that says why and how to get the configure options."""
    major, other = found.major, _OTHER[found.family]
    release = (f"release {found.release}" if _RELEASE.fullmatch(found.release or "")
               else "the primary's release")
    why = (f"Packaged build ({found.family.name}), detected from: {'; '.join(found.evidence)}.")
    how = (f"Nothing is built: the backup host should install the same packages "
           f"({_packages(found)}) of major {major}, {release} or a newer minor; "
           f"35-check-binaries.sh checks it. binaries is where the packages put the programs on "
           f"{found.family.where} (on {other.where}: {other.bin_folder.format(major=major)}).")
    instead = ("For the primary's configure options instead (a build from source):\n"
               "  pitr-bundle import-pg-config --configure FILE")
    extensions = ("  # extensions: [{name: pg_stat_statements}]  # the primary's; "
                  "35-check-binaries.sh checks their libraries\n")
    return (_comment(why) + _comment(how) + _comment(instead)
            + postgres_yaml(found.release, binaries=found.bin_folder) + extensions)


def import_section(pg: PgConfig, configure: bool = False) -> str:
    """What `import-pg-config` prints: binaries for a packaged build, else (or with
    configure=True) the primary's configure options as they are."""
    found = None if configure else recognise(pg)
    if isinstance(found, Packaged):
        return packaged_section(found)
    if found is not None:
        doubt = (f"Not taken for a packaged build: {found}. If the primary's PostgreSQL is "
                 "packaged, give postgres.binaries (its bin folder) instead of configure.")
        return _comment(doubt) + spec_section(pg)
    return spec_section(pg)
