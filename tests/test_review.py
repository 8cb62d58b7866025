"""pitr-bundle review BUNDLE: each shared block once, then each file's own lines. The review
must lose nothing: every file of the bundle is put back together from the output alone and
compared byte for byte."""

from __future__ import annotations

import hashlib
import re

import pytest

from conftest import EXAMPLE_SPECS, pitr_bundle
from generator.contents import entries

BLOCK = re.compile(r"^== shared block (S\d+): (\d+) lines, sha256 ([0-9a-f]{64}), "
                   r"carried byte for byte in (\d+) places of (\d+) files:$")
PLACE = re.compile(r"^   (\S+):(\d+)-(\d+)$")
FILE = re.compile(r"^== file (\S+)  \(.*\): (\d+) lines, (\d+) of its own$")
LINE = re.compile(r"^ *(\d+) \| (.*)$", re.S)
PLACEHOLDER = re.compile(r"^       \[shared block (S\d+): lines (\d+)-(\d+)\]$")
FIGURES = re.compile(r"^a reviewer reads ([\d,]+) lines \(([\d,]+) shared lines in (\d+) blocks, "
                     r"shown once; ([\d,]+) lines of the files' own\), of ([\d,]+) lines in the bundle$")
NO_NEWLINE = "\\ No newline at end of file\n"


def number(text: str) -> int:
    return int(text.replace(",", ""))


def parse(output: str):
    """The blocks (name -> header facts, text, places) and the files put back together."""
    blocks, files = {}, {}
    current = None  # the block or file whose lines follow
    lines = [line + "\n" for line in output.split("\n")[:-1]]
    for i, line in enumerate(lines):
        if line == NO_NEWLINE:
            continue
        content = LINE.match(line)
        if content:
            text = content.group(2)
            if i + 1 < len(lines) and lines[i + 1] == NO_NEWLINE:
                text = text[:-1]
            current["text"].append(text)
            current["numbers"].append(int(content.group(1)))
        elif match := BLOCK.match(line.rstrip("\n")):
            current = blocks[match.group(1)] = {
                "lines": int(match.group(2)), "sha256": match.group(3),
                "count": int(match.group(4)), "files": int(match.group(5)), "places": [],
                "text": [], "numbers": []}
        elif match := PLACE.match(line.rstrip("\n")):
            current["places"].append((match.group(1), int(match.group(2)), int(match.group(3))))
        elif match := FILE.match(line.rstrip("\n")):
            current = files[match.group(1)] = {
                "lines": int(match.group(2)), "own": int(match.group(3)), "text": [],
                "numbers": [], "blocks": []}
        elif match := PLACEHOLDER.match(line.rstrip("\n")):
            name, start, end = match.group(1), int(match.group(2)), int(match.group(3))
            current["text"] += blocks[name]["text"]
            current["numbers"] += range(start, end + 1)
            current["blocks"].append((name, start, end))
    return blocks, files


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("review")
    pitr_bundle("build", str(EXAMPLE_SPECS), "-o", str(out / "out"), check=True)
    return out / "out/pitr1"


@pytest.fixture(scope="module")
def reviewed(example):
    result = pitr_bundle("review", str(example), check=True)
    return result.stdout


def test_every_file_comes_back_byte_for_byte_from_the_review(example, reviewed):
    blocks, files = parse(reviewed)
    on_disk, _ = entries(example)
    assert sorted(files) == on_disk
    for path, parsed in files.items():
        content = (example / path).read_bytes()
        assert "".join(parsed["text"]).encode() == content, path
        assert parsed["numbers"] == list(range(1, parsed["lines"] + 1)), path
    assert blocks, "the example's scripts share their preamble: there must be blocks"


def test_each_block_is_what_its_header_and_places_say(example, reviewed):
    blocks, files = parse(reviewed)
    for name, block in blocks.items():
        text = "".join(block["text"]).encode()
        assert hashlib.sha256(text).hexdigest() == block["sha256"], name
        assert len(block["text"]) == block["lines"] == len(block["numbers"])
        assert block["count"] == len(block["places"]) >= 2
        assert len({path for path, _, _ in block["places"]}) == block["files"] >= 2
        for path, start, end in block["places"]:
            assert (name, start, end) in files[path]["blocks"]
            lines = re.findall(rb"[^\n]*\n|[^\n]+$", (example / path).read_bytes())
            assert b"".join(lines[start - 1:end]) == text, (name, path)
    placed = sorted((name, path, start, end) for path, f in files.items()
                    for name, start, end in f["blocks"])
    listed = sorted((name, path, start, end) for name, b in blocks.items()
                    for path, start, end in b["places"])
    assert placed == listed


def test_the_figures_add_up(example, reviewed):
    blocks, files = parse(reviewed)
    reads, shared, count, own, total = (number(x) for x in
                                        FIGURES.match(reviewed.splitlines()[-1]).groups())
    assert count == len(blocks)
    assert shared == sum(b["lines"] for b in blocks.values())
    assert own == sum(f["own"] for f in files.values())
    assert reads == shared + own
    assert total == sum(f["lines"] for f in files.values())
    assert reads < total * 0.7  # the preamble alone repeats in every script


def test_tarball_file_output_and_determinism(example, reviewed, tmp_path):
    again = pitr_bundle("review", str(example), check=True).stdout
    assert again == reviewed
    tarball = pitr_bundle("review", str(example.parent / "pitr1.tar.gz"), check=True).stdout
    assert tarball.split("\n", 1)[1] == reviewed.split("\n", 1)[1]  # all but the label
    target = tmp_path / "review.txt"
    to_file = pitr_bundle("review", str(example), "-o", str(target), check=True)
    assert target.read_text() == reviewed
    assert to_file.stdout == reviewed.splitlines()[-1] + "\n"  # the figures only


def test_a_missing_bundle_is_a_usage_error(tmp_path):
    result = pitr_bundle("review", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no such bundle folder or tarball" in result.stderr


def test_odd_lines_come_back_too():
    """A last line without a newline, carriage returns and form feeds (str.splitlines would cut
    there), a block twice in one file, and a file that is not UTF-8 text."""
    from generator.diff import Side
    from generator.review import review_side, review_text
    shared = "".join(f"shared line {n}\r\x0c\n" for n in range(8))
    files = {"a.sh": "#!/bin/bash\n" + shared + "a's own\n" + shared + "no newline",
             "b.sh": shared + "b's own\n",
             "c.bin": b"\xff\xfe binary".decode("latin-1")}
    side = Side({path: (text.encode("latin-1" if path == "c.bin" else "utf-8"), 0o644)
                 for path, text in files.items()}, {})
    output = review_text(review_side(side), "crafted")
    blocks, parsed = parse(output)
    assert {path: "".join(f["text"]) for path, f in parsed.items()} == \
        {"a.sh": files["a.sh"], "b.sh": files["b.sh"]}
    assert [b["places"] for b in blocks.values()] == [[("a.sh", 2, 9), ("a.sh", 11, 18),
                                                       ("b.sh", 1, 8)]]
    assert "== file c.bin: not UTF-8 text, not shown; sha256 " in output
