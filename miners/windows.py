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
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tree_sitter import Point, Range

# Below this size a file is parsed whole: outlining it would cost more than it saves.
MIN_WINDOW_BYTES = 4096
# A window this large a share of the file saves too little to be worth its parse setup.
_MAX_SHARE = 0.6
_MAX_ROUNDS = 6

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_CHARLIST_DELIMITER = b"'''"
_HEREDOC_OPEN = re.compile(rb'("""|\'\'\')[ \t]*\n')
_STRING_OPEN = re.compile(rb'(""")[ \t]*\n')
_HEREDOC_CLOSE = {d: re.compile(rb"\n[ \t]*" + re.escape(d)) for d in (b'"""', b"'''")}
# Line patterns start at the newline before the line (the text is read with one prepended):
# a literal first character lets the regex engine skip ahead instead of trying every byte.
_TOP = re.compile(rb"\n[^\s#][^\n]*")
# Lines that continue an item rather than start one.
_CONTINUES = re.compile(rb"\s*(?:end\b|else\b|after\b|rescue\b|catch\b|do\b|[)\]}>|\"']|\|>)")
# The first line of a module item: at column 2, and not one that continues an item.
_ITEM = re.compile(rb"\n  (?![\s#]|(?:end|else|after|rescue|catch|do)\b|[)\]}>|\"']|\|>)")
_OPENS = re.compile(rb"[^\n]*\bdo[ \t]*(?:#[^\n]*)?$")
_MODULE = re.compile(rb"(?:defmodule|defprotocol|defimpl)\b[^\n]*\bdo[ \t]*(?:#[^\n]*)?$")
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


def line_numbers(data: bytes, positions: list[int], row: int = 0, at: int = 0) -> list[int]:
    """0-based line numbers of ascending byte positions, counting on from (row, at)."""
    rows = []
    for position in positions:
        row += data.count(b"\n", at, position)
        at = position
        rows.append(row)
    return rows


def name_spans(keys: list[frozenset[bytes]]) -> dict[bytes, list[int]]:
    """For each name, the items that define it, ascending."""
    spans: dict[bytes, list[int]] = {}
    for j, names in enumerate(keys):
        for name in names:
            spans.setdefault(name, []).append(j)
    return spans


def close_over_names(spans: dict[bytes, list[int]], chosen: set[int]) -> None:
    """Add to the chosen items every item of a name that is defined in one of them or whose
    first and last definitions enclose one (an attribute between two clauses): the items
    that make up the function units the chosen ones take part in."""
    grown = True
    while grown and chosen:
        grown = False
        ordered = sorted(chosen)
        low, high = ordered[0], ordered[-1]
        for items in spans.values():
            first, last = items[0], items[-1]
            if last < low or first > high:
                continue
            at = bisect_left(ordered, first)  # the first chosen item from the name's first on
            if ordered[at] <= last and not chosen.issuperset(items):
                chosen.update(items)
                grown = True


@dataclass(frozen=True)
class _Module:
    opener: int
    closer: int
    items: list[int]  # first line of each item at column 2
    spans: dict[bytes, list[int]]  # items defining each name (b"" for a generated name)

    def picks(self, low: int, high: int) -> range:
        """The items holding lines low..high of the body."""
        return range(bisect_right(self.items, low) - 1, bisect_right(self.items, high))


class Outline:
    """Top-level items of an Elixir text and, for each module among them, its items (read
    when a change reaches into the module)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.padded = b"\n" + data  # a line match's start is then its line's offset in data
        self.count = data.count(b"\n") + 1  # lines
        self.offsets = {0: 0, self.count: len(data)}  # line -> byte offset, where known
        self._heredocs = self._find_heredocs()
        top = self._lines(_TOP, 0, len(data))
        self.offsets.update((n, m.start()) for n, m in top)
        self.top: list[int] = [n for n, m in top if not _CONTINUES.match(m.group(0))]
        if not self.top or self.top[0] != 0:
            self.top.insert(0, 0)  # what comes before the first item is an item too
        # A block opened at column 0 must close at the next column-0 line; where one does
        # not (a stray unindented line inside a module), nothing here can be trusted. A
        # module that closes so, and does not go on after its `end` (`end |> write_beam()`),
        # can be read by items; any other is taken whole.
        self._shapes: dict[int, tuple[int, int]] = {}  # opener line -> (its offset, closer)
        self.trusted = True
        for i, (n, m) in enumerate(top):
            following = top[i + 1] if i + 1 < len(top) else None
            closes = following is not None and following[1].group(0).startswith(b"\nend")
            if _OPENS.match(m.group(0), 1) and not closes:
                self.trusted = False
            after_end = top[i + 2][1].group(0) if i + 2 < len(top) else b"\n"
            if following and closes and _MODULE.match(m.group(0), 1) and \
                    not _CONTINUES.match(after_end):
                self._shapes[n] = (m.start(), following[0])
        self._modules: dict[int, _Module | None] = {}
        self._top_spans: dict[bytes, list[int]] | None = None

    def _find_heredocs(self) -> list[tuple[int, int]]:
        """Byte spans of the lines inside heredocs (delimiter lines excluded), ascending.

        A heredoc opens with a delimiter that ends its line and closes at the next line
        that starts with the same delimiter.
        """
        data = self.data
        # Each search starts where the last one stopped, so the text is read once; in the
        # common case (no charlist heredocs) the opening search is for a literal, which the
        # regex engine does fastest.
        opening = _HEREDOC_OPEN if _CHARLIST_DELIMITER in data else _STRING_OPEN
        spans: list[tuple[int, int]] = []
        at = 0
        while opened := opening.search(data, at):
            inside = opened.end()  # the line after the opening one
            closed = _HEREDOC_CLOSE[opened.group(1)].search(data, inside - 1)
            if closed is None:
                spans.append((inside, len(data)))
                break
            if closed.start() + 1 > inside:
                spans.append((inside, closed.start() + 1))
            at = closed.end()
        return spans

    def _matches(self, pattern: re.Pattern[bytes], begin: int, end: int
                 ) -> list[re.Match[bytes]]:
        """Matches of a line pattern between two offsets, outside heredocs."""
        found: list[re.Match[bytes]] = []
        cursor = begin
        for inside_begin, inside_end in self._heredocs:
            if inside_end <= cursor or inside_begin >= end:
                continue
            found += pattern.finditer(self.padded, cursor, min(inside_begin, end))
            cursor = inside_end
        if cursor < end:
            found += pattern.finditer(self.padded, cursor, end)
        return found

    def _lines(self, pattern: re.Pattern[bytes], begin: int, end: int, row: int = 0
               ) -> list[tuple[int, re.Match[bytes]]]:
        """(line, match) of a line pattern between two offsets, outside heredocs; row is the
        line at begin."""
        found = self._matches(pattern, begin, end)
        rows = line_numbers(self.data, [m.start() for m in found], row, begin)
        return list(zip(rows, found, strict=True))

    def module(self, opener: int) -> _Module | None:
        """The items of the module opening on this line, or None when it is taken whole."""
        if opener not in self._modules:
            shape = self._shapes.get(opener)
            self._modules[opener] = self._read_module(opener, *shape) if shape else None
        return self._modules[opener]

    def _read_module(self, opener: int, at: int, closer: int) -> _Module | None:
        data, end = self.data, self.offsets[closer]
        for line, offset in ((opener, at), (closer, end)):
            following = data.find(b"\n", offset)  # where the line after a frame line starts
            self.offsets[line + 1] = following + 1 if following >= 0 else len(data)
        # A match starts at the offset of its line (see _TOP), so items and definitions are
        # placed by offset; only the items need line numbers.
        starts = [m.start() for m in self._matches(_ITEM, at, end)]
        if not starts:
            return None
        items = line_numbers(data, starts, opener, at)
        self.offsets.update(zip(items, starts, strict=True))
        keys: list[set[bytes]] = [set() for _ in items]
        for m in self._matches(_DEF, at, end):
            if m.start() >= starts[0]:
                keys[bisect_right(starts, m.start()) - 1].add(m.group(1) or b"")
        return _Module(opener, closer, items, name_spans([frozenset(k) for k in keys]))

    def _top_level_spans(self) -> dict[bytes, list[int]]:
        """Definitions outside any module share the module name "", so they merge by name
        across top-level items (`defexception … do def message … end` blocks, say)."""
        if self._top_spans is None:
            keys = []
            for i, n in enumerate(self.top):
                begin, row = self.offsets[n], n
                end = self.offsets[self.top[i + 1]] if i + 1 < len(self.top) else len(self.data)
                if n in self._shapes:  # only what follows the module's `end` is outside it
                    row = self._shapes[n][1]
                    begin = self.offsets[row]
                keys.append(frozenset(d.group(1) or b""
                                      for _, d in self._lines(_DEF, begin, end, row)))
            self._top_spans = name_spans(keys)
        return self._top_spans

    def select(self, touched: list[Interval]
               ) -> tuple[list[Interval], list[tuple[int, int]]]:
        """The lines of the items that hold the touched lines, closed over function names,
        and the (opening, closing) lines of each module read in part, which a parse of
        those items needs."""
        picked: dict[int, set[int]] = {}  # top-level index of a module -> its chosen items
        whole: set[int] = set()  # top-level items taken whole
        body: list[Interval] = []
        last = self.count - 1
        for start, end in touched:
            start, end = max(start, 0), min(end, last)
            if start > end:
                continue
            for i in range(max(bisect_right(self.top, start) - 1, 0),
                           bisect_right(self.top, end)):
                low, high = max(start, self.top[i]), min(end, self._top_end(i))
                module = self.module(self.top[i])
                if module is None or low < module.items[0] or high >= module.closer:
                    whole.add(i)
                else:
                    picked.setdefault(i, set()).update(module.picks(low, high))
        close_over_names(self._top_level_spans(), chosen := whole | set(picked))
        whole |= chosen - set(picked)
        modules: list[tuple[int, int]] = []
        for i in sorted(whole):
            body.append((self.top[i], self._top_end(i)))
            picked.pop(i, None)
        for i, items in picked.items():
            module = self.module(self.top[i])
            assert module is not None
            close_over_names(module.spans, items)
            ends = [*module.items[1:], module.closer]
            body += [(module.items[j], ends[j] - 1) for j in items]
            modules.append((module.opener, module.closer))
        return merge_intervals(body), sorted(modules)

    def _top_end(self, i: int) -> int:
        return self.top[i + 1] - 1 if i + 1 < len(self.top) else self.count - 1

    def window(self, body: list[Interval], modules: list[tuple[int, int]]) -> Window:
        """The byte ranges of these lines; every boundary is a line the outline placed."""
        frame = [(n, n) for module in modules for n in module]
        return make_window(self.data, self.count, self.offsets, body + frame, modules)


def make_window(data: bytes, count: int, offsets: dict[int, int], lines: list[Interval],
                modules: list[tuple[int, int]]) -> Window:
    """The Window of these line intervals of a text of count lines; offsets holds the byte
    offset of each interval's first line and of the line after its last."""
    ranges, size = [], 0
    for start, end in merge_intervals(lines):
        begin, stop = offsets[start], offsets[min(end + 1, count)]
        if stop > begin:
            size += stop - begin
            if end + 1 < count:
                stop_point = Point(end + 1, 0)
            else:
                stop_point = Point(count - 1, stop - (data.rfind(b"\n", 0, stop) + 1))
            ranges.append(Range(Point(start, 0), stop_point, begin, stop))
    return Window(ranges, size / max(len(data), 1), tuple(modules))


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
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
    # one top-level node from the one to the other (a stray `end` would close it early); for
    # Erlang, the line of the `-module` attribute
    modules: tuple[tuple[int, int], ...] = ()
    # Erlang: the line of every function clause the outline found, with its name; in a
    # sound parse, each clause starts on one of them, under that name
    heads: dict[int, bytes] | None = None


def _consistent(blocks: list[Block], old_lines: int, new_lines: int) -> bool:
    """Whether the diff fits these two texts: as many unchanged lines on each side."""
    if any(b.old_end > old_lines or b.new_end > new_lines for b in blocks):
        return False
    return old_lines - sum(b.old_end - b.old_start for b in blocks) == \
        new_lines - sum(b.new_end - b.new_start for b in blocks)


class LineOutline(Protocol):
    """What plan_windows needs of a language's outline of one text."""

    count: int  # lines
    trusted: bool

    def select(self, touched: list[Interval]
               ) -> tuple[list[Interval], list[tuple[int, int]]]: ...

    def window(self, body: list[Interval], modules: list[tuple[int, int]]) -> Window: ...


def plan_windows(before: bytes, after: bytes, diff: str | None,
                 outline: Callable[[bytes], LineOutline] = Outline
                 ) -> tuple[Window, Window] | None:
    """Windows of both versions of a changed file (Elixir, or another language's outline),
    or None to parse them whole."""
    if min(len(before), len(after)) < MIN_WINDOW_BYTES:
        return None
    blocks = changed_blocks(diff)
    outlines = (outline(before), outline(after))
    if not blocks or not _consistent(blocks, outlines[0].count, outlines[1].count) or \
            not (outlines[0].trusted and outlines[1].trusted):
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
