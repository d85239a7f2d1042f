"""Where in a change a fix is (pure): the changed functions, what each changed, and which
one holds the bug.

A changed line belongs to the function whose span holds it in its own version: a removed
line by the before-version spans, an added line by the after-version spans, so an insertion
that starts on a blank line is attributed to the function it lands in, not to the one above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from annotators.diffs import Hunk, enclosing_function, parse_hunks
from annotators.schema import BugLocation, FileInput, FunctionSpan


@dataclass
class Unit:
    """A changed function of one file and its changed lines."""

    file: FileInput
    span: FunctionSpan
    removed: list[tuple[int, str]] = field(default_factory=list)  # before line numbers
    added: list[tuple[int, str]] = field(default_factory=list)  # after line numbers
    insertion_points: list[int] = field(default_factory=list)  # before lines where lines arrive

    @property
    def changed(self) -> int:
        return len(self.removed) + len(self.added)

    def text(self) -> str:
        return "\n".join(t for _, t in self.removed + self.added)

    def before_lines(self) -> tuple[int, int] | None:
        """The before-version lines this unit's change touches, inside its before span."""
        if self.span.before is None:
            return None
        points = [n for n, _ in self.removed] or self.insertion_points
        if not points:
            return None
        first, last = self.span.before
        return max(min(points), first), min(max(points), last)


def units_of(file: FileInput, hunks: list[Hunk] | None = None) -> list[Unit]:
    """The changed functions of a file with the lines each changed, in span order."""
    hunks = parse_hunks(file.diff) if hunks is None else hunks
    units = [Unit(file, span) for span in file.functions]
    for h in hunks:
        for number, text in h.removed:
            unit = _holding(units, number, before=True)
            if unit:
                unit.removed.append((number, text))
        for number, text in h.added:
            unit = _holding(units, number, before=False)
            if unit:
                unit.added.append((number, text))
                if unit.span.before and not h.removed:
                    unit.insertion_points.append(_insertion_point(h, number))
    return [u for u in units if u.changed]


def _insertion_point(h: Hunk, line: int) -> int:
    """The before-version line an added line (after-version number) arrives in front of, in
    a hunk that only adds: context lines are the same on both sides."""
    earlier = sum(1 for n, _ in h.added if n < line)
    start = h.before_start if h.before_len else h.before_start + 1  # "-N,0": after line N
    return max(start + (line - h.after_start) - earlier, 1)


def _holding(units: list[Unit], line: int, *, before: bool) -> Unit | None:
    best = None
    for unit in units:
        span = unit.span.before if before else unit.span.after
        if span and span[0] <= line <= span[1] and (
                best is None or _width(span) < _width(_side(best, before))):
            best = unit
    return best


def _side(unit: Unit, before: bool) -> tuple[int, int]:
    span = unit.span.before if before else unit.span.after
    assert span is not None
    return span


def _width(span: tuple[int, int]) -> int:
    return span[1] - span[0]


def unit_at(units: list[Unit], file: FileInput, line: int, *, before: bool) -> Unit | None:
    """The changed function of file holding a line of the before (or after) version."""
    return _holding([u for u in units if u.file is file], line, before=before)


# Lines that are not where a bug lives: module attributes, exports, specs, imports, docs,
# comments and blank lines.
_META_LINE = re.compile(
    r"^\s*(?:$|%|#|@|-(?:export|spec|type|opaque|callback|include|include_lib|import|"
    r"module|behaviou?r|define|record|compile|dialyzer|doc|moduledoc|ifdef|ifndef|endif|"
    r"else|author|vsn)\b|(?:alias|import|require|use)\s|\"\"\"|''')")

# Spellings of BEAM concurrency in code: how much a changed function is about processes.
PRIMITIVES = re.compile(
    r"\bsend\b|\breceive\b|\bcall\b|\bcast\b|\bmonitor|\blink\b|spawn|\bets\b|:ets\.|"
    r"trap_exit|\bexit\b|'down'|:down\b|'exit'|:exit\b|\btimeout\b|\bafter\b|register|"
    r"whereis|\btask\.|\bprocess\.|gen_server|genserver|gen_statem|\breply\b|\bpid\b|"
    r"\bself\(\)|\bmnesia\b|\block\b|\bsleep\b|assert_receive|\bflush\b|\bawait\b",
    re.IGNORECASE)


_DOC_OPEN = re.compile(r"^\s*(?:@(?:module|type)?doc|-(?:module)?doc)\b.*?(\"\"\"|\'\'\')\s*$")
_DOC_LINE = re.compile(r"^\s*(?:@(?:module|type)?doc|-(?:module)?doc)\b|^\s*(?:#|%)|^\s*$")


def doc_lines(text: str | None) -> set[int]:
    """Line numbers of a file that are documentation or comments: doc attributes (Elixir's
    @doc/@moduledoc/@typedoc, Erlang's -doc/-moduledoc) with their heredocs, comment lines
    and blank lines."""
    found: set[int] = set()
    closing: str | None = None
    for number, line in enumerate((text or "").split("\n"), 1):
        if closing is not None:
            found.add(number)
            if line.strip().startswith(closing):
                closing = None
            continue
        m = _DOC_OPEN.match(line)
        if m:
            found.add(number)
            closing = m.group(1)
        elif _DOC_LINE.match(line):
            found.add(number)
    return found


_DOCTEST = re.compile(r"^\s*(?:iex(?:\(\d+\))?>|\.\.\.(?:\(\d+\))?>)")  # doctests are code


def only_docs(files: list[FileInput], hunks: dict[str, list[Hunk]]) -> bool:
    """Whether every changed line of every file is documentation, a comment or blank (a
    doctest's `iex>` lines are code)."""
    changed = False
    for f in files:
        before, after = doc_lines(f.before), doc_lines(f.after)
        for h in hunks[f.path]:
            if f.before is None or f.after is None:
                return False
            if any(n not in before or _DOCTEST.match(t) for n, t in h.removed) or any(
                    n not in after or _DOCTEST.match(t) for n, t in h.added):
                return False
            changed = changed or bool(h.removed or h.added)
    return changed


def named_in(message: str, name: str) -> bool:
    """Whether a commit message names a function the way code does: name/arity, name(,
    Module.name or mod:name; or, for a name with an underscore, the name alone."""
    if name.startswith("test "):
        return name[5:].strip('"') in message
    bare = re.escape(name.split("/")[0])
    return re.search(rf"(?:[.:]{bare}\b|\b{bare}\s*[/(])", message) is not None or (
        "_" in name.split("/")[0] and re.search(rf"\b{bare}\b", message) is not None)


def choose_unit(units: list[Unit], message: str) -> Unit | None:
    """The changed function most likely to hold the bug: production before tests (unless
    only tests changed), then one the message names, then the one whose changed lines are
    most about processes, then the one with the most changed lines."""
    if not units:
        return None
    production = [u for u in units if not u.file.is_test]
    pool = production or units
    return max(pool, key=lambda u: (named_in(message, u.span.name),
                                    len(PRIMITIVES.findall(u.text())), u.changed,
                                    -_order(units, u)))


def _order(units: list[Unit], unit: Unit) -> int:
    return next(i for i, u in enumerate(units) if u is unit)


def location_of(unit: Unit) -> BugLocation:
    lines = unit.before_lines()
    return BugLocation(file=unit.file.path, function=unit.span.name,
                       start_line=lines[0] if lines else None,
                       end_line=lines[1] if lines else None)


def file_location(file: FileInput, hunks: list[Hunk]) -> BugLocation:
    """Where in a file with no changed function the change is: the first hunk that changes
    more than attributes, exports, specs, imports, docs and comments (the function around it
    when a head scan finds one), else the file alone."""
    for h in hunks:
        code = [n for n, t in h.removed if not _META_LINE.match(t)]
        arriving = [t for _, t in h.added if not _META_LINE.match(t)]
        if not code and not arriving:
            continue
        start, end = (code[0], code[-1]) if code else (max(h.before_start, 1),) * 2
        # With no function spans (a file tree-sitter could not cut) a head scan finds the
        # function around the line; with spans, a line outside them is in none.
        function = enclosing_function(file.before, start, file.language) \
            if file.before and not file.functions else None
        return BugLocation(file=file.path, function=function, start_line=start, end_line=end)
    return BugLocation(file=file.path)
