"""Where in a change a fix is (pure): the changed functions, what each changed, and which
one holds the bug.

A changed line belongs to the function whose span holds it in its own version: a removed
line by the before-version spans, an added line by the after-version spans, so an insertion
that starts on a blank line is attributed to the function it lands in, not to the one above.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from annotators.diffs import Hunk, enclosing_function, function_after, parse_hunks
from annotators.rules import bare_subject
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

    def process_words(self) -> int:
        """How much this function's changed lines are about processes (process_words): a
        word in a log message ("start a federation link") is none."""
        return process_words("\n".join(t for _, t in self.removed + self.added),
                             self.file.language)

    def before_lines(self) -> tuple[int, int] | None:
        """The before-version lines this unit's change touches, inside its before span."""
        if self.span.before is None:
            return None
        points = [n for n, _ in self.removed] or self.insertion_points
        if not points:
            return None
        first, last = self.span.before
        # An insertion just past the span (a clause added after the last one, with a blank
        # line between) touches the span's edge: the range stays inside it, never inverted.
        low = min(max(min(points), first), last)
        return low, max(min(max(points), last), low)


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


# A line comment: Elixir's `#` (its `%{}` and `%Struct{}` are code), Erlang's `%` (its
# `#record{}` is code).
_COMMENT = {"elixir": "#", "erlang": "%"}

# Lines that are not where a bug lives: module attributes, exports, specs, imports, docs,
# comments and blank lines.
_META_LINE = {language: re.compile(
    r"^\s*(?:$|" + re.escape(comment) + r"|@|-(?:export|spec|type|opaque|callback|include|"
    r"include_lib|import|module|behaviou?r|define|record|compile|dialyzer|doc|moduledoc|ifdef|"
    r"ifndef|endif|else|author|vsn)\b|(?:alias|import|require|use)\s|\"\"\"|''')")
    for language, comment in _COMMENT.items()}

# Spellings of BEAM concurrency in code (lowered): how much a changed function is about
# processes. Matched against lowered text, several times faster than case-insensitive matching.
PRIMITIVES = re.compile(  # alternatives grouped by first letter: ten times faster
    r"\b(?:se(?:nd\b|lf\(\))|re(?:ceive|ply)\b|ca(?:ll|st)\b|monitor|l(?:ink|ock)\b|"
    r"e(?:ts|xit)\b|t(?:imeout\b|ask\.)|after\b|p(?:rocess\.|id\b)|mnesia\b|sleep\b|flush\b|"
    r"await\b)|spawn|:(?:ets\.|down\b|exit\b)|'(?:down|exit)'|trap_exit|register|whereis|"
    r"gen(?:_server|server|_statem)|assert_receive")


# A string literal of one line: a log message's words are not code ("start a federation link").
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
# Erlang's send operator, `Pid ! Message` (Elixir's `!` is a boolean not, or part of a name).
_SEND_OPERATOR = re.compile(r"[\w)}\]]\s*!(?!=)")


def process_words(text: str, language: str | None = None) -> int:
    """How many spellings of BEAM concurrency a text holds; for a language, outside its
    string literals, with Erlang's `!` counted as a send."""
    if language is not None:
        text = _STRING.sub('""', text)
    sends = len(_SEND_OPERATOR.findall(text)) if language == "erlang" else 0
    return len(PRIMITIVES.findall(text.lower())) + sends


_DOC_LINE = {language: re.compile(r"^\s*(?:@(?:module|type)?doc|-(?:module)?doc)\b|^\s*"
                                  + re.escape(comment) + r"|^\s*$")
             for language, comment in _COMMENT.items()}
# A doc attribute's heredoc: the line that opens it (searched from the attribute, which
# Python's regex engine can skip ahead to) and the line its delimiter closes it on.
_HEREDOC_OPEN = re.compile(
    r"(?:@(?:module|type)?doc|-(?:module)?doc)\b[^\n]*?(\"\"\"|\'\'\')[ \t]*$", re.MULTILINE)
_HEREDOC_CLOSE = {d: re.compile(r"\n[ \t]*" + d) for d in ('"""', "'''")}
_DOCTEST = re.compile(r"^\s*(?:iex(?:\(\d+\))?>|\.\.\.(?:\(\d+\))?>)")  # doctests are code


def doc_ranges(text: str) -> list[tuple[int, int]]:
    """(first, last) line of each documentation heredoc of a file (Elixir's @doc, @moduledoc
    and @typedoc, Erlang's -doc and -moduledoc), one scan of the text."""
    ranges = []
    line, offset, at = 1, 0, 0
    while opened := _HEREDOC_OPEN.search(text, at):
        at = opened.start() + 1
        start = text.rfind("\n", 0, opened.start()) + 1
        if text[start:opened.start()].strip(" \t"):
            continue  # the attribute is not the first word of its line
        closed = _HEREDOC_CLOSE[opened.group(1)].search(text, opened.end())
        if closed is None:
            continue
        line += text.count("\n", offset, start)
        last = line + text.count("\n", start, closed.end())
        ranges.append((line, last))
        line, offset, at = last, closed.end(), closed.end()
    return ranges


class _Docs:
    """Which lines of a file's two versions are documentation; the heredocs of a version
    are read only when a line's own text cannot tell."""

    def __init__(self, before: str, after: str, language: str) -> None:
        self._texts = {True: before, False: after}
        self._ranges: dict[bool, list[tuple[int, int]]] = {}
        self._line = _DOC_LINE.get(language, _DOC_LINE["elixir"])

    def holds(self, number: int, text: str, before: bool) -> bool:
        if _DOCTEST.match(text):
            return False
        if self._line.match(text):
            return True
        if before not in self._ranges:
            self._ranges[before] = doc_ranges(self._texts[before])
        return any(a <= number <= b for a, b in self._ranges[before])


def function_at(source: str | None, line: int, language: str) -> str | None:
    """name/arity of the function a 1-based line belongs to, by scanning the text: the one
    around it, or for a line of a doc heredoc (a doctest) the one the doc documents."""
    if not source:
        return None
    for first, last in doc_ranges(source):
        if first <= line <= last:
            return function_after(source, last, language)
    return enclosing_function(source, line, language)


def only_docs(files: list[FileInput], hunks: dict[str, list[Hunk]]) -> bool:
    """Whether every changed line of every file is documentation, a comment or blank (a
    doctest's `iex>` lines are code). Most changes are code: the first code line answers."""
    changed = False
    for f in files:
        if f.before is None or f.after is None:
            return False
        docs = _Docs(f.before, f.after, f.language)
        for h in hunks[f.path]:
            if not all(docs.holds(n, t, True) for n, t in h.removed) or not all(
                    docs.holds(n, t, False) for n, t in h.added):
                return False
            changed = changed or bool(h.removed or h.added)
    return changed


_CODED = re.compile(r"[.:]([a-z_][\w?!]*)|\b([a-z_][\w?!]*)\s*[/(]")
_WORD = re.compile(r"\b[a-z_][\w?!]*")


def message_names(message: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names a message writes the way code does (name/arity, name(, Module.name,
    mod:name), and every word of it."""
    coded = {a or b for a, b in _CODED.findall(message)}
    return frozenset(coded), frozenset(_WORD.findall(message))


def named_in(message: str, name: str,
             names: tuple[frozenset[str], frozenset[str]] | None = None) -> bool:
    """Whether a commit message names a function the way code does: name/arity, name(,
    Module.name or mod:name; or, for a name with an underscore, the name alone."""
    if name.startswith("test "):
        return name[5:].strip('"') in message
    coded, words = names or message_names(message)
    bare = name.split("/")[0]
    return bare in coded or ("_" in bare and bare in words)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def subject_words(message: str) -> frozenset[str]:
    """The words of a message's subject (past its type or tag), singular."""
    return frozenset(_stem(w) for w in _WORD.findall(bare_subject(message).lower()))


def worded_in(words: frozenset[str], name: str) -> bool:
    """Whether a subject's words (subject_words) name a function: every part of a name of
    two or more parts, in any order and number ("behaviour checks" names check_behaviours/2)."""
    parts = [p for p in name.split("/")[0].strip("?!").split("_") if p]
    if len(parts) < 2 or any(len(p) < 3 for p in parts) or name.startswith("test "):
        return False
    return all(_stem(p) in words for p in parts)


# A project's build definition (its dependencies, its version) is code tree-sitter cuts into
# functions, but no process runs it: a fix that also bumps one is located in the code.
_BUILD_FILE = re.compile(r"(?:^|/)(?:mix\.exs|rebar\.config(?:\.\w+)?|[^/]+\.app\.src)$")


def choose_unit(units: list[Unit], message: str, moved: Collection[int]) -> Unit | None:
    """The changed function most likely to hold the bug: code before a build definition
    (mix.exs, rebar.config), production before tests (unless only tests changed), then one
    the message names in code form (the subject before the body, which also names its
    callers and callees), then one the before version had, then one the subject names in
    words, then the one whose changed lines are most about processes, then the one with the
    most changed lines. A function whose code the change kept (its id in moved, see
    unchanged: moved whole, re-spaced or only commented) comes after the ones it changed,
    unless the message names it."""
    if not units:
        return None
    code = [u for u in units if not _BUILD_FILE.search(u.file.path)] or units
    production = [u for u in code if not u.file.is_test]
    pool = production or code
    names = message_names(message)
    subject = message.split("\n", 1)[0]
    subject_names = message_names(subject)
    words = subject_words(message)  # not those of a type: "test(x): "
    return max(pool, key=lambda u: (named_in(subject, u.span.name, subject_names),
                                    named_in(message, u.span.name, names),
                                    id(u) not in moved,
                                    u.span.before is not None,
                                    worded_in(words, u.span.name),
                                    u.process_words(), u.changed,
                                    -_order(units, u)))


def _tokens(lines: list[tuple[int, str]], language: str) -> list[str]:
    """The words of some lines of code, spaces and whole-line comments aside."""
    comment = _COMMENT.get(language, "#")
    return " ".join(t for _, t in lines if not t.lstrip().startswith(comment)).split()


def unchanged(units: list[Unit]) -> set[int]:
    """The ids of the functions whose code a change did not change: moved whole (removed in
    one place and added with the same code, spaces aside, in another of the same change: a
    helper taken out into a shared test module, tests moved to a file of their own) or only
    re-spaced or commented in place (re-indented, lines joined or split, a comment added)."""
    def code(lines: list[tuple[int, str]]) -> tuple[str, ...]:
        return tuple(" ".join(t.split()) for _, t in lines if t.strip())
    removed: dict[tuple[str, ...], list[Unit]] = {}
    kept: set[int] = set()
    for u in units:
        if u.span.after is None and u.removed:
            removed.setdefault(code(u.removed), []).append(u)
        elif u.span.before is not None and u.span.after is not None and (
                _tokens(u.removed, u.file.language) == _tokens(u.added, u.file.language)):
            kept.add(id(u))
    for u in units:
        if u.span.before is None and u.added and (twins := removed.get(code(u.added))):
            kept |= {id(u), *(id(t) for t in twins)}
    return kept


def caller_of(unit: Unit, units: list[Unit]) -> Unit | None:
    """For a function the fix added (not one it moved or gave another arity), the changed function
    the before version already had that now calls it: the bug lived in code that existed,
    the new function is its cure."""
    name = unit.span.name.split("/")[0]
    if unit.span.before is not None or name.startswith("test ") or any(
            u.span.after is None and u.span.name.split("/")[0] == name for u in units):
        return None  # not new: a function the fix moved or gave another arity
    call = re.compile(r"(?<![\w?!])" + re.escape(name) + r"(?:\s*\(|/\d)")
    callers = [u for u in units if u.span.before is not None and u is not unit
               and any(call.search(t) for _, t in u.added)]
    return max(callers, default=None,
               key=lambda u: (u.file is unit.file, u.process_words(), u.changed))


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
    meta = _META_LINE.get(file.language, _META_LINE["elixir"])
    for h in hunks:
        code = [n for n, t in h.removed if not meta.match(t)]
        arriving = [t for _, t in h.added if not meta.match(t)]
        if not code and not arriving:
            continue
        start, end = (code[0], code[-1]) if code else (max(h.before_start, 1),) * 2
        # With no function spans (a file tree-sitter could not cut) a head scan finds the
        # function around the line; with spans, a line outside them is in none.
        function = function_at(file.before, start, file.language) \
            if not file.functions else None
        return BugLocation(file=file.path, function=function, start_line=start, end_line=end)
    return BugLocation(file=file.path)
