"""`pitr-bundle review BUNDLE`: what a first reviewer must read, each line once.

Every script carries its own copy of the preamble and of the blocks shared by its kind (it must
run alone on the host), so a bundle of two clusters repeats the same lines dozens of times.
Here each shared block is printed once, with its sha256 and every place that carries it, and
each file only with its own lines; a one-line placeholder stands where a block was.

Blocks are found in the bundle itself, not taken from the templates: a reviewer must trust
what is in the files, byte for byte, and the templates' conditionals (`{% if %}` inside the
preamble) make an include's text differ between files anyway. A line belongs to a block when a
run of at least MIN_BLOCK_LINES identical lines around it stands in another file too; a file is
cut where the set of files sharing its lines changes, then every piece around any block found
inside it (so that the same lines are cut the same way in every file), and the pieces of
identical text found in two files or more become the blocks. The cutting is a heuristic (it
decides how few lines a reviewer reads); the output is exact whatever it decides: a block is
shown where its text stands byte for byte, so each file can be put back together from the
output (tests/test_review.py). CPU: 1 s for the example bundle, 4 s for a 50-cluster host.
"""

from __future__ import annotations

import hashlib
import sys
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

from generator.diff import Side, describe
from generator.errors import UsageError

MIN_BLOCK_LINES = 6  # shorter runs (a `fi`, a blank line, a `}`) are cheaper to read in place


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n" (the last may lack one); unlike str.splitlines, only "\\n" ends
    a line, so joining them gives back the text exactly."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@dataclass
class Block:
    name: str  # S1, S2 ..., in order of first appearance
    lines: list[str]
    places: list[tuple[str, int]] = field(default_factory=list)  # (path, first line)

    @property
    def sha256(self) -> str:
        return hashlib.sha256("".join(self.lines).encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class Piece:
    """A run of a file's lines: its own (block is None) or the place of a shared block."""
    start: int  # 1-based line of the file
    lines: list[str]
    block: Block | None = None


@dataclass
class Review:
    blocks: list[Block]
    files: dict[str, list[Piece]]  # text files, by path
    unreadable: dict[str, str]  # path -> sha256 of files that are not UTF-8 text
    side: Side

    @property
    def total_lines(self) -> int:
        return sum(len(p.lines) for pieces in self.files.values() for p in pieces)

    @property
    def shared_lines(self) -> int:
        return sum(len(b.lines) for b in self.blocks)

    @property
    def own_lines(self) -> int:
        return sum(len(p.lines) for pieces in self.files.values() for p in pieces if not p.block)


def _sharing_sets(docs: dict[tuple[str, int], str]) -> dict[tuple[str, int], list[int]]:
    """Per piece of a file (its path, its place in the file) and per line, a number naming the
    set of files that hold a run of MIN_BLOCK_LINES identical lines through it (0: no other
    file does). A piece is a string of one character per line, so a run is a substring."""
    holders: dict[str, set[str]] = defaultdict(set)
    for (path, _), text in docs.items():
        for i in range(len(text) - MIN_BLOCK_LINES + 1):
            holders[text[i:i + MIN_BLOCK_LINES]].add(path)
    # the same sets recur over thousands of lines: number each once, join numbers, not sets
    sets: list[frozenset] = [frozenset()]
    set_number: dict[frozenset, int] = {frozenset(): 0}

    def number_of(paths: frozenset) -> int:
        if paths not in set_number:
            set_number[paths] = len(sets)
            sets.append(paths)
        return set_number[paths]

    window_set = {window: number_of(frozenset(paths))
                  for window, paths in holders.items() if len(paths) > 1}
    joined: dict[frozenset, int] = {}
    labels = {}
    for key, text in docs.items():
        around: list[set[int]] = [set() for _ in text]
        for i in range(len(text) - MIN_BLOCK_LINES + 1):
            number = window_set.get(text[i:i + MIN_BLOCK_LINES])
            if number:
                for line in range(i, i + MIN_BLOCK_LINES):
                    around[line].add(number)
        label = []
        for numbers in around:
            if frozenset(numbers) not in joined:
                joined[frozenset(numbers)] = number_of(frozenset().union(*(sets[n] for n in numbers)))
            label.append(joined[frozenset(numbers)])
        labels[key] = label
    return labels


def _runs(text: str, label: list[int]) -> list[str]:
    """The text cut where the label changes."""
    runs, start = [], 0
    for i in range(1, len(label) + 1):
        if i == len(label) or label[i] != label[start]:
            runs.append(text[start:i])
            start = i
    return runs


def _carried(files: dict[str, list[str]]) -> list[str]:
    """The pieces long enough to be blocks that two files or more hold, longest first."""
    holders: dict[str, set[str]] = defaultdict(set)
    for path, pieces in files.items():
        for piece in pieces:
            if len(piece) >= MIN_BLOCK_LINES:
                holders[piece].add(path)
    return sorted((piece for piece, paths in holders.items() if len(paths) > 1),
                  key=lambda piece: (-len(piece), piece))


def _split(piece: str, blocks: list[str], lengths: list[int]) -> list[str]:
    """The piece cut around the longest block it holds, if any, when what is left on each side
    is nothing or long enough to be a block itself: a shorter part would be read again in each
    file that carries it. blocks: longest first; lengths: their lengths, negated."""
    for block in blocks[bisect_left(lengths, MIN_BLOCK_LINES - len(piece)):]:
        at = piece.find(block)
        if at >= 0:
            parts = [part for part in (piece[:at], block, piece[at + len(block):]) if part]
            if all(len(part) >= MIN_BLOCK_LINES for part in parts):
                return parts
    return [piece]


MAX_PASSES = 4  # a pass looks again at what the one before left as a file's own lines


def _pieces(files: dict[str, str]) -> dict[str, list[str]]:
    """Each file (a string of one character per line, its number) cut into pieces: where the
    set of files sharing its lines changes; then, until nothing moves, every piece around any
    block found inside it: where two files share a run but one of them also shares a longer or
    shorter run with a third file, the same lines are cut differently at first, and would be
    read twice. What is left as a file's own lines is looked at again in the next pass."""
    cut = {path: [text] for path, text in files.items()}
    for _ in range(MAX_PASSES):
        carried = set(_carried(cut))
        labels = _sharing_sets({(path, i): piece for path, pieces in cut.items()
                                for i, piece in enumerate(pieces)
                                if piece not in carried and len(piece) >= MIN_BLOCK_LINES})
        before, cut = cut, {path: [run for i, piece in enumerate(pieces)
                                   for run in _runs(piece, labels.get((path, i), [0] * len(piece)))]
                            for path, pieces in cut.items()}
        while True:
            blocks = _carried(cut)
            lengths = [-len(block) for block in blocks]
            splits = {piece: _split(piece, blocks, lengths)
                      for pieces in cut.values() for piece in pieces}
            if all(len(parts) == 1 for parts in splits.values()):
                break
            cut = {path: [part for piece in pieces for part in splits[piece]]
                   for path, pieces in cut.items()}
        if cut == before:
            return cut
    return cut


def review_side(side: Side) -> Review:
    texts, unreadable = {}, {}
    for path, (content, _mode) in sorted(side.files.items()):
        try:
            texts[path] = split_lines(content.decode("utf-8"))
        except UnicodeDecodeError:
            unreadable[path] = hashlib.sha256(content).hexdigest()
    # one character per distinct line: runs of lines compare, hash and search as strings
    line_id: dict[str, str] = {}
    if len({line for lines in texts.values() for line in lines}) > sys.maxunicode:
        raise UsageError(f"more than {sys.maxunicode:,} distinct lines: too large to review")
    cut = _pieces({path: "".join(line_id.setdefault(line, chr(len(line_id))) for line in lines)
                   for path, lines in texts.items()})
    carried = set(_carried(cut))
    blocks: dict[str, Block] = {}
    files: dict[str, list[Piece]] = {}
    for path, pieces in cut.items():  # sorted by path: block names follow the files' order
        files[path], start = [], 1
        for piece in pieces:
            lines = texts[path][start - 1:start - 1 + len(piece)]
            block = None
            if piece in carried:
                block = blocks.setdefault(piece, Block(f"S{len(blocks) + 1}", lines))
                block.places.append((path, start))
            if block is None and files[path] and files[path][-1].block is None:
                files[path][-1].lines += lines  # own lines next to own lines: one piece
            else:
                files[path].append(Piece(start, lines, block))
            start += len(piece)
    return Review(list(blocks.values()), files, unreadable, side)


def _shown(line: str) -> str:
    """A line as printed: always one line of output, a missing final newline said as diff does."""
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def review_text(review: Review, label: str) -> str:
    out = [f"# review of {label}: {len(review.files) + len(review.unreadable)} files; "
           f"each shared block once, then each file's own lines\n"]
    for block in review.blocks:
        count = len(block.lines)
        files = len({path for path, _ in block.places})
        out.append(f"\n== shared block {block.name}: {count} lines, sha256 {block.sha256}, "
                   f"carried byte for byte in {len(block.places)} places of {files} files:\n")
        out += [f"   {path}:{start}-{start + count - 1}\n" for path, start in block.places]
        out += [f"{number:>6} | {_shown(line)}" for number, line in enumerate(block.lines, 1)]
    for path, pieces in review.files.items():
        own = sum(len(p.lines) for p in pieces if not p.block)
        total = sum(len(p.lines) for p in pieces)
        entry = review.side.roles.get(path)
        out.append(f"\n== file {path}  ({describe(path, entry)}): {total} lines, "
                   f"{own} of its own\n")
        for piece in pieces:
            if piece.block:
                end = piece.start + len(piece.lines) - 1
                out.append(f"       [shared block {piece.block.name}: lines {piece.start}-{end}]\n")
            else:
                out += [f"{number:>6} | {_shown(line)}"
                        for number, line in enumerate(piece.lines, piece.start)]
    for path, digest in review.unreadable.items():
        out.append(f"\n== file {path}: not UTF-8 text, not shown; sha256 {digest}\n")
    out.append(f"\na reviewer reads {review.shared_lines + review.own_lines:,} lines "
               f"({review.shared_lines:,} shared lines in {len(review.blocks)} blocks, shown once; "
               f"{review.own_lines:,} lines of the files' own), of {review.total_lines:,} lines "
               f"in the bundle\n")
    return "".join(out)
