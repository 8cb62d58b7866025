"""Quoting for the places a spec value lands: a shell word, a postgresql.conf string. Its own
module because both the plan (comment lines of a script) and the templates (filters) use it."""

from __future__ import annotations

import re
import shlex

# a value holding one of these needs bash's $'...' form (see shell_quote)
_NEEDS_ANSI_C = re.compile(r"['$`\x00-\x1f\x7f]")


def shell_quote(value) -> str:
    """One shell word that bash reads back as exactly `value`. Plain single quotes where they
    suffice; bash's $'...' when the value holds a single quote, a control character (a
    newline stays visible as \\x0a) or what looks like an expansion ($, `), so that
    shellcheck has nothing to misread and a reviewer sees at once that nothing expands."""
    text = str(value)
    if not _NEEDS_ANSI_C.search(text):
        return shlex.quote(text)
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def pg_conf_quote(value) -> str:
    """A postgresql.conf string literal: single quotes doubled, backslashes doubled."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"
