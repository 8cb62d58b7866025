"""The text of a generated script with its inert letters and digits blotted out, so that
scripts that differ only there are shellchecked once (audit.run_shellcheck).

Why findings cannot differ between two scripts with the same blotted text: shellcheck reads
letters and digits as meaning in many places (command and option names, `exit 300` or
`return 300`, octal `08` in arithmetic, `tr 'a-z'`, a `# shellcheck` directive), even inside
single quotes (`exit '300'` is a finding). So quotes alone do not make a value harmless; the
place does. Only these places are blotted, where shellcheck reads no letter or digit:
- the body of a here-document with a quoted delimiter (`cat <<'EOF'`): literal text, never
  parsed; of an unquoted one, a line without `$`, backquote or backslash (nothing expands);
- a comment line (`#` first on the line, outside any quote or here-document) without `$`,
  backquote or backslash (but one last on the line after a blank, as a command shown with its
  continuation lines has: it escapes only the newline, whatever letters stand before it),
  unless it is a `# shellcheck` directive or a shebang (`#!`);
- the value of an assignment on a line made only of assignments (`readonly A=x B='y z'`,
  `local`, `export`, `declare`, with their `\\` continuation lines), and the elements of a
  multi-line array assignment (`NAME=(` ... `)`), when the value is a plain word,
  single-quoted or $'...' (whose escapes are kept): shellcheck carries no literal value from
  an assignment to a use, and inside the value it looks only at punctuation (globs, braces,
  `~`, quotes, `=`: SC2125, SC2088, SC2089, SC2191), which blotting keeps.
Blotting maps each ASCII letter or digit to `x` and keeps every other character, so lines and
columns do not move. Anything this reader is not sure of (a multi-line quoted string, a
trailing comment, a here-document that does not end, a line it cannot split into words) is
kept as it is: that costs a shellcheck run of its own, never a missed finding. The quote
reader is line-based and reads $(...) as plain text: generated scripts pair their quotes
within such a line; a misread there could only let a string's inner line pass for a comment.
tests/test_check.py: a value that makes shellcheck complain in one cluster's script is still
reported, naming that cluster's file, and blotting changes nothing outside these places."""

from __future__ import annotations

import re

_BLOT = str.maketrans(dict.fromkeys(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "x"))
# a here-document start ending its line: cat <<'EOF', cat <<-"EOF", cat <<\EOF, cat <<EOF
_HEREDOC = re.compile(r"(?<!<)<<(-?)\s*(?:'(\w+)'|\"(\w+)\"|\\(\w+)|(\w+))\s*$")
_DIRECTIVE = re.compile(r"^\s*#\s*shellcheck\b")
_EXPANDS = re.compile(r"[$`\\]")
# one shell word: quoted parts, escapes and plain characters
_WORD = re.compile(r"(?:\$'(?:[^'\\]|\\.)*'|'[^']*'|\"(?:[^\"\\]|\\.)*\"|\\.|[^\s'\"\\])+")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?=)(.*)", re.S)
_ASSIGNMENT_START = re.compile(r"\s*(?:(?:readonly|local|export|declare)\s|[A-Za-z_]\w*\+?=)")
_ARRAY_START = re.compile(r"\s*(?:(?:readonly|local|declare)(?:\s+-[A-Za-z]+)*\s+)?"
                          r"[A-Za-z_]\w*\+?=\(\s*$")
_ARRAY_END = re.compile(r"\s*\)\s*$")
_PLAIN_VALUE = re.compile(r"(?:[A-Za-z0-9_@%+=:,./-]|'[^']*')*")
_ANSI_VALUE = re.compile(r"\$'(?:[^'\\]|\\.)*'")
# inside $'...', an escape (\x27, \n, \047) says which character it is: kept as it is
_ANSI_ESCAPE = re.compile(r"\\(?:x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}"
                          r"|[0-7]{1,3}|c.|.)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAGS = re.compile(r"-[A-Za-z]+")
_DECLARATIONS = {"readonly", "local", "export", "declare"}
# the pieces of a line of code, to follow quotes that stay open at its end
_CODE_TOKEN = re.compile(r"(?P<closed>\$'(?:[^'\\]|\\.)*'|'[^']*'|\"(?:[^\"\\]|\\.)*\"|\\.)"
                         r"|(?P<ansi>\$'(?:[^'\\]|\\.)*\\?$)|(?P<single>'[^']*$)"
                         r"|(?P<double>\"(?:[^\"\\]|\\.)*\\?$)|(?P<comment>(?:^|(?<=\s))#.*)"
                         r"|[^'\"\\#$]+|.")
_STRING_END = {"'": re.compile(r"[^']*'"), "$'": re.compile(r"(?:[^'\\]|\\.)*'"),
               '"': re.compile(r"(?:[^\"\\]|\\.)*\"")}
_OPEN = {"ansi": "$'", "single": "'", "double": '"'}


def _blot(text: str) -> str:
    return text.translate(_BLOT)


def _blot_value(value: str) -> str | None:
    """A plain, single-quoted or $'...' value blotted, its quotes and escapes kept; None
    for anything else (an expansion, a double-quoted part)."""
    if _PLAIN_VALUE.fullmatch(value):
        return _blot(value)
    if _ANSI_VALUE.fullmatch(value):
        pieces, pos = ["$'"], 2
        for escape in _ANSI_ESCAPE.finditer(value, 2, len(value) - 1):
            pieces += [_blot(value[pos:escape.start()]), escape.group()]
            pos = escape.end()
        return "".join(pieces) + _blot(value[pos:-1]) + "'"
    return None


def _scan(line: str, state: str | None) -> str | None:
    """The quote still open at the end of `line` ("'", "$'", '"') or None, given the one
    open at its start. A comment ends the line; $(...) is read as plain text."""
    if state is None and "'" not in line and '"' not in line and "\\" not in line:
        return None
    pos = 0
    if state:
        match = _STRING_END[state].match(line)
        if match is None:
            return state
        pos = match.end()
    for token in _CODE_TOKEN.finditer(line, pos):
        kind = token.lastgroup
        if kind == "comment":
            return None
        if kind in _OPEN:
            return _OPEN[kind]
    return None


def _words(text: str) -> list[re.Match] | None:
    """The shell words of `text` (backslash-newlines read as blanks), or None when some
    character belongs to no word."""
    flat = text.replace("\\\n", "  ")  # the same length: positions carry over
    matches = list(_WORD.finditer(flat))
    pos = 0
    for match in matches:
        if flat[pos:match.start()].strip():
            return None
        pos = match.end()
    return None if flat[pos:].strip() else matches


def _rebuild(text: str, matches: list[re.Match], new_words: list[str]) -> str:
    out, pos = [], 0
    for match, new in zip(matches, new_words):
        out.append(text[pos:match.start()] + new)
        pos = match.end()
    return "".join(out) + text[pos:]


def _assignment_line(joined: str) -> str | None:
    """A logical line (with its backslash-newlines) made only of assignments, after an
    optional declaration builtin, its -flags and bare names: their plain values blotted.
    None for any other line."""
    matches = _words(joined)
    if not matches:
        return None
    words = [m.group() for m in matches]
    out, k = [], 0
    declared = words[0] in _DECLARATIONS
    if declared:
        out.append(words[0])
        k = 1
        while k < len(words) and _FLAGS.fullmatch(words[k]):
            out.append(words[k])
            k += 1
    if k == len(words):
        return None
    for word in words[k:]:
        match = _ASSIGNMENT.fullmatch(word)
        if match is None:
            if declared and _NAME.fullmatch(word):
                out.append(word)  # `local name`: declared, no value
                continue
            return None
        name, op, value = match.groups()
        blotted = _blot_value(value)
        out.append(name + op + (value if blotted is None else blotted))
    return _rebuild(joined, matches, out)


def _array_elements(line: str) -> str | None:
    """A line of array elements (between `NAME=(` and `)`), each plain, single-quoted or
    $'...': blotted. None for any other line."""
    matches = _words(line)
    if not matches:
        return None
    blotted = [_blot_value(m.group()) for m in matches]
    return None if None in blotted else _rebuild(line, matches, blotted)


def blot_inert(text: str) -> str:
    """`text` with the letters and digits of its inert places blotted (see the module's
    docstring); the same length, line for line."""
    lines = text.split("\n")
    out = list(lines)
    count = len(lines)
    i, state = 0, None  # state: the quote open at the start of line i (a multi-line string)
    in_array = False
    while i < count:
        line = lines[i]
        if state:  # inside a string that spans lines: kept as it is
            state = _scan(line, state)
            i += 1
            continue
        stripped = line.lstrip()
        if stripped.startswith("#"):
            shown = line[:-2] if line.endswith(" \\") else line  # a shown continuation
            if not line.startswith("#!") and not _DIRECTIVE.match(line) and not _EXPANDS.search(shown):
                out[i] = line[:len(line) - len(stripped)] + "#" + _blot(stripped[1:])
            i += 1
            continue
        if in_array:
            if _ARRAY_END.fullmatch(line):
                in_array = False
            else:
                blotted = _array_elements(line)
                if blotted is None:
                    in_array = False  # not a plain list after all: read on as code
                    state = _scan(line, None)
                else:
                    out[i] = blotted
            i += 1
            continue
        if "<<" in line:
            heredoc = _HEREDOC.search(line)
            if heredoc and "#" not in line[:heredoc.start()] \
                    and _scan(line[:heredoc.start()], None) is None:
                dash, quoted1, quoted2, escaped, bare = heredoc.groups()
                delimiter = quoted1 or quoted2 or escaped or bare
                end = i + 1
                while end < count and (lines[end].lstrip("\t") if dash else lines[end]) != delimiter:
                    end += 1
                if end == count:
                    return text  # a here-document that does not end: blot nothing
                for k in range(i + 1, end):
                    if bare is None or not _EXPANDS.search(lines[k]):
                        out[k] = _blot(lines[k])
                i = end + 1
                continue
        if _ARRAY_START.fullmatch(line):
            in_array = True
            i += 1
            continue
        end = i + 1  # the logical line: physical lines ending in a backslash continue
        while end < count and lines[end - 1].endswith("\\"):
            end += 1
        for k in range(i, end):
            state = _scan(lines[k], state)
        if state is None and _ASSIGNMENT_START.match(line):
            blotted = _assignment_line("\n".join(lines[i:end]))
            if blotted is not None:
                out[i:end] = blotted.split("\n")
        i = end
    return "\n".join(out)
