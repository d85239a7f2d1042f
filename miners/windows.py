"""The lines of a long Elixir file that a change can reach, so that only they are parsed (pure).

Parsing is most of function extraction's cost, and a commit usually touches a few functions
of a long module. Formatted Elixir shows its structure in its indentation: a module opens at
column 0 with `defmodule … do`, its items (definitions, attributes, `describe` blocks,
nested modules) start at column 2, and it closes with `end` at column 0. So the items a
change touches can be found from the text alone, and tree-sitter parses only them plus the
module's opening and closing lines (its `included_ranges`), with every position still that
of the whole file.

A window is closed under what makes function units whole: every item defining a name that
an item in the window defines, or whose name's first and last definitions enclose a window
item (an attribute between two clauses), joins it; definitions outside modules join across
top-level items, as they share the module name ""; and both versions cover the same
unchanged lines, so a unit seen in one version is seen whole in the other. The outline is a
guess from text: the caller parses the whole file when there is no window, and again when
the windowed parse has an error or not the shape the outline assumed, so a wrong guess
costs time, not answers.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from tree_sitter import Point, Range

# Below this size a file is parsed whole: outlining it would cost more than it saves.
MIN_WINDOW_BYTES = 4096
# A window this large a share of the file saves too little to be worth its parse setup.
_MAX_SHARE = 0.6
_MAX_ROUNDS = 6

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# Line patterns start at the newline before the line (the text is read with one prepended):
# a literal first character lets the regex engine skip ahead instead of trying every byte.
_HEREDOC = re.compile(rb'"""|\'\'\'')
_TOP = re.compile(rb"\n[^\s#][^\n]*")
_BODY = re.compile(rb"\n  [^\s#][^\n]*")
# Lines that continue an item rather than start one.
_CONTINUES = re.compile(rb"\s*(?:end\b|else\b|after\b|rescue\b|catch\b|do\b|[)\]}>|\"']|\|>)")
_MODULE = re.compile(rb"(?:defmodule|defprotocol|defimpl)\b[^\n]*\bdo[ \t]*(?:#[^\n]*)?$")
_MODULE_START = re.compile(rb"(?:defmodule|defprotocol|defimpl)\b")
_DEF = re.compile(rb"\n[ \t]*(?:def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|"
                  rb"defn|defnp)(?:[ \t]+|\()([a-z_][A-Za-z0-9_]*[?!]?)?")

Interval = tuple[int, int]  # 0-based lines, both ends included


@dataclass(frozen=True)
class Block:
    """A run of changed lines: [old_start, old_end) became [new_start, new_end), 0-based."""

    old_start: int
    old_end: int
    new_start: int
    new_end: int


def changed_blocks(diff: str | None) -> list[Block]:
    """The changed line runs of a unified diff, read from its hunk bodies."""
    blocks: list[Block] = []
    old = new = 0
    in_hunk = False
    opened: tuple[int, int] | None = None
    for line in (diff or "").split("\n"):
        tag = line[:1]
        if in_hunk and tag == "\\":  # "\ No newline at end of file" leaves the run open
            continue
        if in_hunk and tag in ("-", "+"):
            if opened is None:
                opened = (old, new)
            old, new = (old + 1, new) if tag == "-" else (old, new + 1)
            continue
        if opened is not None:
            blocks.append(Block(opened[0], old, opened[1], new))
            opened = None
        if in_hunk and tag == " ":
            old, new = old + 1, new + 1
        elif m := _HUNK.match(line):
            a, b, c, d = m.groups()
            old = int(a) - 1 if b != "0" else int(a)
            new = int(c) - 1 if d != "0" else int(c)
            in_hunk = True
        else:
            in_hunk = False
    if opened is not None:
        blocks.append(Block(opened[0], old, opened[1], new))
    return blocks


def _rows(data: bytes, positions: list[int], row: int = 0, at: int = 0) -> list[int]:
    """0-based line numbers of ascending byte positions, counting on from (row, at)."""
    rows = []
    for position in positions:
        row += data.count(b"\n", at, position)
        at = position
        rows.append(row)
    return rows


def _outside(rows: list[int], spans: list[Interval]) -> list[bool]:
    """For ascending rows, whether each lies outside the ascending spans."""
    out, k = [], 0
    for row in rows:
        while k < len(spans) and spans[k][1] < row:
            k += 1
        out.append(not (k < len(spans) and spans[k][0] <= row))
    return out


def _close(keys: list[frozenset[bytes]], chosen: set[int]) -> None:
    """Add to the chosen items every item of a name that is defined in one of them or whose
    first and last definitions enclose one (an attribute between two clauses): the items
    that make up the function units the chosen ones take part in."""
    spans: dict[bytes, list[int]] = {}
    for j, names in enumerate(keys):
        for name in names:
            spans.setdefault(name, []).append(j)
    grown = True
    while grown:
        grown = False
        for items in spans.values():
            if not chosen.issuperset(items) and any(items[0] <= j <= items[-1] for j in chosen):
                chosen.update(items)
                grown = True


def _names(padded: bytes, begin: int, end: int) -> frozenset[bytes]:
    """The function names defined between two offsets (b"" for a generated name)."""
    return frozenset(m.group(1) or b"" for m in _DEF.finditer(padded, begin, end))


@dataclass(frozen=True)
class _Module:
    opener: int
    closer: int
    items: list[int]  # first line of each item at column 2
    keys: list[frozenset[bytes]]  # names each item defines (b"" for a generated name)

    def picks(self, low: int, high: int) -> range:
        """The items holding lines low..high of the body."""
        return range(bisect_right(self.items, low) - 1, bisect_right(self.items, high))


class Outline:
    """Top-level items of an Elixir text and, for each module among them, its items."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.count = data.count(b"\n") + 1  # lines
        self.offsets = {0: 0, self.count: len(data)}  # line -> byte offset, where known
        padded = b"\n" + data  # a match's start is then the offset of its line in data
        heredocs = self._heredocs(data)
        found = list(_TOP.finditer(padded))
        rows = _rows(data, [m.start() for m in found])
        top = [(n, m) for n, m, keep in zip(rows, found, _outside(rows, heredocs), strict=True)
               if keep]
        self.offsets.update((n, m.start()) for n, m in top)
        self.top: list[int] = [n for n, m in top if not _CONTINUES.match(m.group(0))]
        self.modules: dict[int, _Module] = {}
        for i, (n, m) in enumerate(top):
            # The next column-0 line must be the module's `end`, and the module must not go
            # on after it (`end |> write_beam()`); else it is taken whole.
            following = top[i + 1] if i + 1 < len(top) else None
            after_end = top[i + 2][1].group(0) if i + 2 < len(top) else b"\n"
            if _MODULE.match(m.group(0), 1) and following and \
                    following[1].group(0).startswith(b"\nend") and \
                    not _CONTINUES.match(after_end):
                self.modules[n] = self._module(padded, n, m.start(), following, heredocs)
        # Definitions outside any module share the module name "" and so merge by name
        # across top-level items (`defexception … do def message … end` blocks, say).
        starts = {n: m for n, m in top}
        self.top_keys: list[frozenset[bytes]] = []
        for i, n in enumerate(self.top):
            end = self.offsets[self.top[i + 1]] if i + 1 < len(self.top) else len(data)
            begin = starts[n].start()
            self.top_keys.append(frozenset() if _MODULE_START.match(starts[n].group(0), 1)
                                 else _names(padded, begin, end))

    def _heredocs(self, data: bytes) -> list[Interval]:
        """The lines inside heredocs, delimiters excluded, as ascending spans."""
        found = list(_HEREDOC.finditer(data))
        spans: list[Interval] = []
        opened: tuple[int, bytes] | None = None
        for row, m in zip(_rows(data, [m.start() for m in found]), found, strict=True):
            begin, end = m.start(), m.end()
            line_end = data.find(b"\n", end)
            if opened is None:
                if not data[end:line_end if line_end >= 0 else len(data)].strip():
                    opened = (row, m.group(0))
            elif m.group(0) == opened[1] and \
                    not data[data.rfind(b"\n", 0, begin) + 1:begin].strip():
                if row > opened[0] + 1:
                    spans.append((opened[0] + 1, row - 1))
                opened = None
        if opened is not None:
            spans.append((opened[0] + 1, self.count))
        return spans

    def _module(self, padded: bytes, opener: int, at: int,
                closer: tuple[int, re.Match[bytes]], heredocs: list[Interval]) -> _Module:
        data, end = self.data, closer[1].start()
        for line, offset in ((opener, at), (closer[0], end)):
            following = data.find(b"\n", offset)  # where the line after a frame line starts
            self.offsets[line] = offset
            self.offsets[line + 1] = following + 1 if following >= 0 else len(data)
        found = list(_BODY.finditer(padded, at, end))
        rows = _rows(data, [m.start() for m in found], opener, at)
        items = []
        for n, m, keep in zip(rows, found, _outside(rows, heredocs), strict=True):
            if keep and not _CONTINUES.match(m.group(0)):
                items.append(n)
                self.offsets[n] = m.start()
        keys: list[set[bytes]] = [set() for _ in items]
        defs = list(_DEF.finditer(padded, at, end))
        rows = _rows(data, [m.start() for m in defs], opener, at)
        for n, m, keep in zip(rows, defs, _outside(rows, heredocs), strict=True):
            if keep and items and n >= items[0]:
                keys[bisect_right(items, n) - 1].add(m.group(1) or b"")
        return _Module(opener, closer[0], items, [frozenset(k) for k in keys])

    def select(self, touched: list[Interval]) -> tuple[list[Interval], list[int]]:
        """The lines of the items that hold the touched lines, closed over function names,
        and the module opening and closing lines that a parse of them needs."""
        picked: dict[int, set[int]] = {}  # top-level index of a module -> its chosen items
        whole: set[int] = set()  # top-level items taken whole
        body: list[Interval] = []
        last = self.count - 1
        for start, end in touched:
            start, end = max(start, 0), min(end, last)
            if start > end:
                continue
            if not self.top or start < self.top[0]:  # lines before the first item
                body.append((0, self.top[0] - 1 if self.top else last))
            for i in range(max(bisect_right(self.top, start) - 1, 0),
                           bisect_right(self.top, end)):
                low, high = max(start, self.top[i]), min(end, self._top_end(i))
                module = self.modules.get(self.top[i])
                if module is None or not module.items or low < module.items[0] or \
                        high >= module.closer:
                    whole.add(i)
                else:
                    picked.setdefault(i, set()).update(module.picks(low, high))
        _close(self.top_keys, chosen := whole | set(picked))
        whole |= chosen - set(picked)
        frame: list[int] = []
        for i in sorted(whole):
            body.append((self.top[i], self._top_end(i)))
            picked.pop(i, None)
        for i, items in picked.items():
            module = self.modules[self.top[i]]
            _close(module.keys, items)
            ends = [*module.items[1:], module.closer]
            body += [(module.items[j], ends[j] - 1) for j in items]
            frame += [module.opener, module.closer]
        return _merge(body), sorted(set(frame))

    def _top_end(self, i: int) -> int:
        return self.top[i + 1] - 1 if i + 1 < len(self.top) else self.count - 1

    def window(self, body: list[Interval], frame: list[int]) -> Window:
        """The byte ranges of these lines; every boundary is a line the outline placed."""
        ranges, size = [], 0
        for start, end in _merge(body + [(n, n) for n in frame]):
            begin, stop = self.offsets[start], self.offsets[min(end + 1, self.count)]
            if stop > begin:
                size += stop - begin
                ranges.append(Range(Point(start, 0), self._point(end + 1, stop), begin, stop))
        modules = tuple(zip(frame[::2], frame[1::2], strict=True))
        return Window(ranges, size / max(len(self.data), 1), modules)

    def _point(self, line: int, offset: int) -> Point:
        if line < self.count:
            return Point(line, 0)
        return Point(self.count - 1, offset - (self.data.rfind(b"\n", 0, offset) + 1))


def _merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _map(intervals: list[Interval], blocks: list[Block], forward: bool) -> list[Interval]:
    """The other version's lines for the unchanged lines among these (changed lines are
    touched on both sides already)."""
    sides = [((b.old_start, b.old_end), (b.new_start, b.new_end)) for b in blocks]
    if not forward:
        sides = [(there, here) for here, there in sides]
    out = []
    for start, end in intervals:
        cursor, delta = start, 0
        for here, there in sides:
            if here[0] > end:
                break
            if cursor < here[0]:
                out.append((cursor + delta, min(end, here[0] - 1) + delta))
            cursor = max(cursor, here[1])
            delta = there[1] - here[1]
        if cursor <= end:
            out.append((cursor + delta, end + delta))
    return out


@dataclass(frozen=True)
class Window:
    """What to parse of one version: byte ranges, each with its place in the whole file."""

    ranges: list[Range]
    share: float  # of the file's bytes
    # (opening line, closing line) of each module parsed in part: in a sound parse, each is
    # one top-level node from the one to the other (a stray `end` would close it early)
    modules: tuple[tuple[int, int], ...] = ()


def _consistent(blocks: list[Block], old_lines: int, new_lines: int) -> bool:
    """Whether the diff fits these two texts: as many unchanged lines on each side."""
    if any(b.old_end > old_lines or b.new_end > new_lines for b in blocks):
        return False
    return old_lines - sum(b.old_end - b.old_start for b in blocks) == \
        new_lines - sum(b.new_end - b.new_start for b in blocks)


def plan_windows(before: bytes, after: bytes, diff: str | None
                 ) -> tuple[Window, Window] | None:
    """Windows of both versions of a changed Elixir file, or None to parse them whole."""
    if min(len(before), len(after)) < MIN_WINDOW_BYTES:
        return None
    blocks = changed_blocks(diff)
    outlines = (Outline(before), Outline(after))
    if not blocks or not _consistent(blocks, outlines[0].count, outlines[1].count):
        return None
    touched = ([(b.old_start, b.old_end - 1) for b in blocks if b.old_end > b.old_start],
               [(b.new_start, b.new_end - 1) for b in blocks if b.new_end > b.new_start])
    chosen = (outlines[0].select(touched[0]), outlines[1].select(touched[1]))
    for _ in range(_MAX_ROUNDS):
        wider = (outlines[0].select(touched[0] + _map(chosen[1][0], blocks, False)),
                 outlines[1].select(touched[1] + _map(chosen[0][0], blocks, True)))
        if wider == chosen:
            windows = (outlines[0].window(*chosen[0]), outlines[1].window(*chosen[1]))
            return None if max(w.share for w in windows) > _MAX_SHARE else windows
        chosen = wider
    return None
