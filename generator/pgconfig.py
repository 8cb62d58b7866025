"""Turn what an operator copies from a primary (pg_config output, or config.log) into the
configure options for building the same PostgreSQL on the backup host.

The CONFIGURE value is shell-quoted by autoconf ('--with-x' 'CFLAGS=-g -O2'), so it is split
with POSIX shell rules (shlex) and never on spaces; every option is kept byte for byte,
including `${prefix}` that configure expands itself, and environment assignments.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import yaml

from generator.errors import PitrBundleError


class PgConfigError(PitrBundleError):
    """The pasted pg_config / config.log text cannot be turned into configure options."""

    exit_code = 2


@dataclass(frozen=True)
class PgConfig:
    configure_args: tuple[str, ...]
    version: str | None  # "9.0.17", "15.18"; None when the text does not say
    source_form: str  # "pg_config" | "configure-value" | "config.log"
    bindir: str | None = None  # pg_config's BINDIR: where the primary's programs are
    version_suffix: str = ""  # what VERSION says after the number: "(Debian 16.4-1.pgdg120+1)"


# `pg_config` prints "NAME = value"; Debian's CONFIGURE value starts with a space.
_NAME_LINE = re.compile(r"^\s*([A-Z][A-Z0-9_-]*) =(.*)$")
# config.log: "  $ ./configure --prefix=..." (autoconf writes "$ $0 $@"); any path to configure.
_CONFIGURE_CMD = re.compile(r"^\s*(?:\$\s+)?(?:\S*/)?configure(?:\s|$)")
# Only where a version is stated: "VERSION = PostgreSQL 15.18 (Debian ...)", `pg_config
# --version` ("PostgreSQL 9.0.17"), config.log's "It was created by PostgreSQL configure 9.0.17,".
_VERSION = re.compile(r"^\s*(?:VERSION = PostgreSQL|PostgreSQL|It was created by PostgreSQL "
                      r"configure) ([0-9][^\s,]*)", re.MULTILINE)
# configure's own spellings of --prefix: it accepts every abbreviation down to --p, and -prefix.
_PREFIX_WORD = re.compile(r"^(?:-prefix|--p|--pr|--pre|--pref|--prefi|--prefix)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# pg_config's VERSION value: " PostgreSQL 16.4 (Debian 16.4-1.pgdg120+1)"; packagers add the suffix
_VERSION_VALUE = re.compile(r"^\s*PostgreSQL\s+\S+\s*(.*?)\s*$")


def _split(value: str, lineno: int, line: str) -> list[str]:
    try:
        return shlex.split(value, posix=True)  # comments=False: '#' inside values is data
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise PgConfigError(f"line {lineno}: cannot split with shell quoting rules ({exc}): "
                            f"{line.strip()}") from None


def _only(found: list[tuple[int, str]], what: str) -> tuple[int, str]:
    # Two different candidates mean two builds were pasted: guessing could build the wrong one.
    if len({line for _, line in found}) > 1:
        raise PgConfigError(f"{what} appears on lines {', '.join(str(n) for n, _ in found)}; "
                            "paste the one of the primary's build only")
    return found[0]


def _value_of(named, name: str) -> str | None:
    """The value of pg_config's `name` line; None without one."""
    found = [(n, line) for n, line, m in named if m[1] == name]
    return _NAME_LINE.match(_only(found, name)[1])[2] if found else None


def parse_pg_config(text: str) -> PgConfig:
    """Read (a) full pg_config output, (b) only its CONFIGURE value (`pg_config --configure`),
    or (c) the configure command line from config.log. Lines around it (prompts, markdown
    fences) are ignored in forms (a) and (c).

    Form (c) caveat: autoconf writes that line unquoted, so a value with spaces given to the
    original configure ('CFLAGS=-g -O2') cannot be told apart from two options there;
    prefer pg_config output when the build used such values.
    """
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    named = [(n, line, m) for n, line in lines if (m := _NAME_LINE.match(line))]
    match = _VERSION.search(text)
    version = match[1] if match else None

    configure = [(n, line) for n, line, m in named if m[1] == "CONFIGURE"]
    if configure:
        n, line = _only(configure, "CONFIGURE")
        bindir = _value_of(named, "BINDIR")
        suffix = _VERSION_VALUE.match(_value_of(named, "VERSION") or "")
        return PgConfig(tuple(_split(_NAME_LINE.match(line)[2], n, line)), version, "pg_config",
                        bindir=bindir.strip() if bindir else None,
                        version_suffix=suffix[1] if suffix else "")
    if named:
        raise PgConfigError(f"line {named[0][0]}: pg_config output without a CONFIGURE line; "
                            "copy all of pg_config's output, or `pg_config --configure`")

    commands = [(n, line) for n, line in lines if _CONFIGURE_CMD.match(line)]
    if commands:
        n, line = _only(commands, "a configure command")
        words = _split(line, n, line)
        words = words[1:] if words[0] == "$" else words
        return PgConfig(tuple(words[1:]), version, "config.log")

    filled = [(n, line) for n, line in lines if line.strip()]
    if not filled:
        raise PgConfigError("no configure information: the text is empty")
    if len(filled) > 1:
        raise PgConfigError(f"line {filled[0][0]}: no CONFIGURE line and no configure command "
                            "found; paste pg_config's output or `pg_config --configure`")
    n, line = filled[0]
    args = _split(line, n, line)
    # An empty list is a real answer only in form (a) ("CONFIGURE = "); here it is junk.
    if not args or not (args[0].startswith("-") or _ASSIGNMENT.match(args[0])):
        raise PgConfigError(f"line {n}: does not look like configure options "
                            f"(expected '--option' or 'NAME=value'): {line.strip()}")
    return PgConfig(tuple(args), version, "configure-value")


def _takes_next_word(word: str) -> bool:
    """configure's two-word form (`--prefix /opt/pg`): only for options without `=`;
    --with-*/--enable-* (and their negations) never take the next word as their value."""
    return (word.startswith("-") and "=" not in word
            and not re.match(r"^--?(with|without|enable|disable)-", word))


def option_value(args, name: str) -> str | None:
    """Value of the last `name` option (configure lets the last one win): the text after `=`,
    or the next word in the two-word form; "" for a bare flag (`--with-perl`); None if absent."""
    value = None
    for i, word in enumerate(args):
        if word.startswith(name + "="):
            value = word[len(name) + 1:]
        elif word == name:
            nxt = args[i + 1] if i + 1 < len(args) else None
            takes = _takes_next_word(word) and nxt is not None and not nxt.startswith("-")
            value = nxt if takes and not _ASSIGNMENT.match(nxt) else ""
    return value


def rewrite_prefix(args, new_prefix: str) -> list[str]:
    """Replace every --prefix (one word, two words, or an abbreviation configure accepts) by
    one `--prefix=<new_prefix>` where the first stood, or at the front; all else untouched.
    Every spelling goes: a leftover `--pre=/old` later in the list would win inside configure."""
    if not new_prefix.startswith("/"):
        raise PgConfigError(f"--prefix must be an absolute path, not {new_prefix!r}")
    args = list(args)
    out: list[str] = []
    at = None
    i = 0
    while i < len(args):
        word = args[i]
        flag, eq, _ = word.partition("=")
        if _PREFIX_WORD.match(flag):
            if not eq:  # two-word form: the next word is the old path
                if i + 1 >= len(args):
                    raise PgConfigError(f"{word} at the end of the options has no value")
                i += 1
            at = len(out) if at is None else at
        else:
            out.append(word)
        i += 1
    out.insert(at or 0, f"--prefix={new_prefix}")
    return out


# Installation directories configure lets you set apart from --prefix. Given as literal paths
# (Debian: --bindir=/usr/lib/postgresql/15/bin) they survive rewrite_prefix and still point
# at the primary's layout; given as ${prefix}/... they follow the new prefix.
# the folders `make install` writes into ...
BUILD_INSTALL_DIRS = ("exec-prefix", "bindir", "sbindir", "libexecdir", "libdir", "includedir",
                      "oldincludedir", "datarootdir", "datadir", "infodir", "localedir", "mandir",
                      "docdir", "htmldir", "dvidir", "pdfdir", "psdir")
# ... and the ones only looked up at run time
_INSTALL_DIRS = BUILD_INSTALL_DIRS + ("sysconfdir", "sharedstatedir", "localstatedir", "runstatedir")


def fixed_install_dirs(args) -> list[str]:
    """The install-directory options whose (last) value is a literal path, not ${prefix}/...:
    the caller decides whether to refuse, warn, or rewrite them too."""
    found = []
    for name in _INSTALL_DIRS:
        value = option_value(args, f"--{name}")
        if value and not value.startswith("$"):
            found.append(f"--{name}={value}")
    return found


def render_configure_line(args) -> str:
    """One shell-quoted line for review; shlex.split() of it gives `args` back exactly."""
    return shlex.join(args)


class _Quoted(str):
    """A string the spec shows double-quoted: `version: "9.0"` must not become a float."""


class _SpecDumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent "- item" under its key


_SpecDumper.add_representer(
    _Quoted, lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style='"'))


_NO_VERSION_NOTE = "# the pasted text names no version: add postgres.version\n"


def postgres_yaml(version: str | None, **fields) -> str:
    """`postgres:` with version (quoted) first, then `fields` in their order; a note to add
    the version where it is unknown."""
    section: dict = {} if version is None else {"version": _Quoted(version)}
    section.update(fields)
    # allow_unicode=False: PyYAML would write U+0085/U+2028 raw, and YAML reads them as line
    # breaks; escaped, every string comes back exactly.
    text = yaml.dump({"postgres": section}, Dumper=_SpecDumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=False, width=float("inf"))
    return text if version is not None else _NO_VERSION_NOTE + text


def spec_section(pg: PgConfig) -> str:
    """The `postgres:` block to paste into a cluster spec. The primary's --prefix stays in the
    list as captured; the generator rewrites it for the backup host."""
    return postgres_yaml(pg.version, configure=list(pg.configure_args))
