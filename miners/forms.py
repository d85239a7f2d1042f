"""The forms of a long Erlang file that a change can reach, so that only they are parsed (pure).

Erlang source is a sequence of forms, each ended by a full stop: attributes (`-module(m).`,
`-spec …`, `-record(…)`) and functions, whose clauses are joined by `;`. Formatted code
starts each form and each clause at column 0 and indents whatever continues them, so an
outline can take every line that starts at column 0 with an atom, a quoted atom, a macro or
`-` as the start of an item. The window of a change is the items holding changed lines,
every item of a function name one of them defines (all clauses of a function), and the
`-module` attribute, which names the units. As for Elixir (miners.windows), the outline is a
guess from text: a windowed parse with an error, with a node across two ranges, without the
`-module` attribute as a node of its own line, or with a clause that does not start where
the outline found one of that name sends the file to a whole parse.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import replace

from miners.windows import (
    Interval,
    Window,
    close_over_names,
    line_numbers,
    make_window,
    merge_intervals,
    name_spans,
)

# A line matches from the newline before it (the text is read with one prepended). Reserved
# words at column 0 continue a form (unformatted code) rather than start one, and so does
# `->`, which erlfmt puts at column 0 after a clause head that spans lines.
_ITEM = re.compile(rb"\n(?=[a-z'?-])(?!->)(?!(?:end|after|of|catch|when|andalso|orelse|receive|"
                   rb"case|fun|begin|if|try|maybe|else|not|div|rem|band|bor|bxor|bsl|bsr|and|"
                   rb"or|xor)\b)")
_ENDS = (b".", b";")
_ENDS_OR_BLANK = b".;\n"  # _after_form's commonest answers, read off the byte before
_CLAUSE = re.compile(rb"\n([a-z][A-Za-z0-9_@]*|'(?:[^'\\\n]|\\.)*')[ \t]*\(")
# The `-module` attribute (`-module (m).` is valid too), on one line of its own.
_MODULE = re.compile(rb"\n-module[ \t]*\([^)\n]*\)\.[ \t]*(?:%[^\n]*)?(?=\n|$)")
_MODULE_START = re.compile(rb"\n-module\b")


def _after_form(padded: bytes, at: int) -> bool:
    """Whether the line after padded[at] (a newline) can start an item: above it, past any
    comment lines, is a blank line, a line that ends a form or a clause (`.` or `;`, a
    trailing comment aside), or nothing. A line after anything else continues an item (a
    guard or arguments carried on at column 0), however much it looks like a clause head."""
    while at > 0:
        begin = padded.rfind(b"\n", 0, at) + 1
        line = padded[begin:at].strip()
        if not line.startswith(b"%"):  # a blank line too
            return not line or line.endswith(_ENDS) or \
                line.split(b"%", 1)[0].rstrip().endswith(_ENDS)
        at = begin - 1
    return True


class Forms:
    """The items of an Erlang text: the forms and function clauses starting at column 0."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        padded = b"\n" + data  # a match's start is then its line's offset in data
        self.count = data.count(b"\n") + 1
        starts = [at for at in (m.start() for m in _ITEM.finditer(padded))
                  if padded[at - 1] in _ENDS_OR_BLANK or _after_form(padded, at)]
        if not starts or starts[0] != 0:
            starts.insert(0, 0)  # what comes before the first form is an item too
        self.items = line_numbers(data, starts)
        self.offsets = dict(zip(self.items, starts, strict=True))
        self.offsets[self.count] = len(data)
        keys: list[frozenset[bytes]] = []
        modules = []
        for j, at in enumerate(starts):
            clause = _CLAUSE.match(padded, at)
            keys.append(frozenset((clause.group(1),)) if clause else frozenset())
            if _MODULE_START.match(padded, at):
                modules.append(j)
        self.spans = name_spans(keys)
        self.heads = {line: name for line, key in zip(self.items, keys, strict=True)
                      for name in key}
        # A unit is named after the `-module` above it; a text with more than one, or with
        # one that spans lines, is parsed whole.
        self.module_item = modules[0] if modules else None
        self.trusted = not modules or (
            len(modules) == 1 and _MODULE.match(padded, starts[modules[0]]) is not None)

    def _end(self, j: int) -> int:
        return self.items[j + 1] - 1 if j + 1 < len(self.items) else self.count - 1

    def select(self, touched: list[Interval]) -> tuple[list[Interval], list[tuple[int, int]]]:
        """The lines of the items that hold the touched lines and of every clause of the
        functions they define (all lines when the `-module` attribute is touched: it
        renames every unit); no module frames."""
        chosen: set[int] = set()
        last = self.count - 1
        for start, end in touched:
            start, end = max(start, 0), min(end, last)
            if start <= end:
                chosen.update(range(bisect_right(self.items, start) - 1,
                                    bisect_right(self.items, end)))
        if self.module_item in chosen:
            return [(0, last)], []
        close_over_names(self.spans, chosen)
        return merge_intervals([(self.items[j], self._end(j)) for j in chosen]), []

    def window(self, body: list[Interval], modules: list[tuple[int, int]]) -> Window:
        """The byte ranges of these lines and of the `-module` attribute, which names the
        units and must parse as a node of its own line (were the form above it left
        unterminated, it would be read as part of that form); the clauses must start where
        the outline found them."""
        j = self.module_item
        if body and j is not None:
            line = self.items[j]
            body, modules = [*body, (line, self._end(j))], [*modules, (line, line)]
        window = make_window(self.data, self.count, self.offsets, body, modules)
        return replace(window, heads=self.heads)
