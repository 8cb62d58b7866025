"""`pitr-bundle review BUNDLE`: what a first reviewer must read, each line once.

Every script carries its own copy of the preamble and of the blocks shared by its kind (it must
run alone on the host), so a bundle of two clusters repeats the same lines dozens of times.
Here each shared block is printed once, with its sha256 and every place that carries it, and
each file only with its own lines; a one-line placeholder stands where a block was.

Blocks are found in the bundle itself, not taken from the templates: a reviewer must trust
what is in the files, byte for byte, and the templates' conditionals (`{% if %}` inside the
preamble) make an include's text differ between files anyway. A line belongs to a block when a
run of at least MIN_BLOCK_LINES identical lines around it stands in another file too; a file is
cut where the set of files sharing its lines changes, and the pieces of identical text found in
two files or more become the blocks. The cutting is a heuristic (it decides how few lines a
reviewer reads); the output is exact whatever it decides: a block is shown where its text is
byte for byte, so each file can be put back together from the output (tests/test_review.py).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from generator.diff import Side, describe

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


def _sharing_sets(docs: dict[tuple[str, int], list[int]]) -> dict[tuple[str, int], list[int]]:
    """Per piece of text (a file's path, its first line) and per line, a number naming the set
    of files that hold a run of MIN_BLOCK_LINES identical lines through it (0: no other file
    does). Lines are compared as numbers, windows of lines as tuples of them: exact."""
    holders: dict[tuple[int, ...], set[str]] = defaultdict(set)
    for (path, _), ids in docs.items():
        for i in range(len(ids) - MIN_BLOCK_LINES + 1):
            holders[tuple(ids[i:i + MIN_BLOCK_LINES])].add(path)
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
    for key, ids in docs.items():
        around: list[set[int]] = [set() for _ in ids]
        for i in range(len(ids) - MIN_BLOCK_LINES + 1):
            number = window_set.get(tuple(ids[i:i + MIN_BLOCK_LINES]))
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


def _runs(label: list[int]) -> list[tuple[int, int]]:
    """[start, end) of the runs of equal labels."""
    runs, start = [], 0
    for i in range(1, len(label) + 1):
        if i == len(label) or label[i] != label[start]:
            runs.append((start, i))
            start = i
    return runs


def _cut(pieces: list[Piece], path: str, labels, found, blocks) -> list[Piece]:
    """A file's pieces with its own pieces cut where the sharing changes, the cut-outs found in
    two files or more made (or matched to) blocks; own lines next to own lines stay one piece."""
    out: list[Piece] = []
    for piece in pieces:
        label = labels.get((path, piece.start))
        runs = _runs(label) if label else [(0, len(piece.lines))]
        for a, b in runs:
            text = tuple(piece.lines[a:b])
            block = piece.block
            if label and label[a] and b - a >= MIN_BLOCK_LINES and len(found[text]) > 1:
                block = blocks.setdefault(text, Block(f"S{len(blocks) + 1}", list(text)))
                block.places.append((path, piece.start + a))
            if block is None and out and out[-1].block is None:
                out[-1].lines += text
            else:
                out.append(Piece(piece.start + a, list(text), block))
    return out


MAX_PASSES = 4  # a pass finds blocks inside what the one before left as a file's own lines


def review_side(side: Side) -> Review:
    files, unreadable = {}, {}
    for path, (content, _mode) in sorted(side.files.items()):
        try:
            files[path] = [Piece(1, split_lines(content.decode("utf-8")))]
        except UnicodeDecodeError:
            unreadable[path] = hashlib.sha256(content).hexdigest()
    line_id: dict[str, int] = {}
    blocks: dict[tuple[str, ...], Block] = {}
    # Where two files share a run but also, around it, runs with different files, the cut
    # pieces differ and stay own lines; the next pass looks at only those and cuts again.
    for _ in range(MAX_PASSES):
        docs = {(path, piece.start): [line_id.setdefault(line, len(line_id)) for line in piece.lines]
                for path, pieces in files.items() for piece in pieces
                if piece.block is None and len(piece.lines) >= MIN_BLOCK_LINES}
        labels = _sharing_sets(docs)
        found: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for (path, start), label in labels.items():
            lines = next(p.lines for p in files[path] if p.start == start)
            for a, b in _runs(label):
                if label[a] and b - a >= MIN_BLOCK_LINES:
                    found[tuple(lines[a:b])].add(path)
        before = sum(len(block.places) for block in blocks.values())
        # sorted by path: block names follow the order of the files
        files = {path: _cut(pieces, path, labels, found, blocks) for path, pieces in files.items()}
        if sum(len(block.places) for block in blocks.values()) == before:
            break
    return Review(list(blocks.values()), files, unreadable, side)


def _shown(line: str) -> str:
    """A line as printed: always one line of output, a missing final newline said as diff does."""
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def review_text(review: Review, label: str) -> str:
    out = [f"# review of {label}: {len(review.files) + len(review.unreadable)} files; "
           f"each shared block once, then each file's own lines\n"]
    for block in review.blocks:
        count = len(block.lines)
        out.append(f"\n== shared block {block.name}: {count} lines, sha256 {block.sha256}, "
                   f"carried byte for byte by {len(block.places)} files:\n")
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
