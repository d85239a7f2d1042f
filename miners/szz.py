"""SZZ, the pure part: which before-lines of a fix to blame, whether a commit only reformatted
a file, and how the blamed commits rank as the fix's bug-introducing candidates.

The blame itself runs in miners/blame.py. A fix's deleted or changed code lines inside the
functions it changed are blamed first; a fix that only adds lines blames the code next to
each insertion in the function around it, as weaker evidence. Blank lines, comments (`#`
in Elixir, `%` in Erlang) and lines of bare punctuation or block keywords (`end`, `do`,
`->`…) are never blamed: they say nothing about who wrote the bug.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# Bump when the lines chosen, the blame options or the ranking change: stored results of an
# older version are traced again.
SZZ_VERSION = 1
ADJACENT_LINES = 3  # code lines blamed on each side of an insertion, inside its function
# Lines made only of these say nothing about their author's intent.
_NOISE = frozenset({"end", "do", "else", "after", "catch", "rescue", "of", "when", "fn",
                    "begin", "receive", "try", "->", "(", ")", "[", "]", "{", "}", ",", ".",
                    ";", "|>", "=>", "<<", ">>", "%{", "do:", "end)", "end,", "end."})
_TOKEN = re.compile(r"[\w?!:]+|[^\w\s]+")


class Evidence(StrEnum):
    CHANGED = "changed"  # the fix deleted or rewrote this line
    ADJACENT = "adjacent"  # the line sits next to an add-only change, in the same function


Lines = dict[int, tuple[Evidence, str | None]]  # line -> (evidence, function holding it)


@dataclass(frozen=True)
class Span:
    """A function unit of the before version: 1-based inclusive lines."""

    name: str
    start: int
    end: int

    def holds(self, line: int) -> bool:
        return self.start <= line <= self.end


@dataclass(frozen=True)
class FixFile:
    """One changed Elixir/Erlang file of a fix, as the warehouse (or git) has it."""

    path: str  # after the change
    old_path: str | None  # before a rename or copy
    language: str
    is_test: bool
    before: str | None  # None when the fix created the file, or it was not read
    diff: str | None
    functions: tuple[Span, ...] = ()  # the changed (modified or removed) functions

    @property
    def before_path(self) -> str:
        return self.old_path or self.path


@dataclass(frozen=True)
class FixInput:
    """What tracing one fix needs: its parent, its files and where its label put the bug."""

    repo: str
    sha: str
    parent: str | None
    files: tuple[FixFile, ...]
    located_file: str | None = None
    located_function: str | None = None


@dataclass(frozen=True)
class BlameTarget:
    """Lines of one file in the fix's parent to blame, with why each was chosen."""

    path: str  # in the parent
    language: str
    lines: Lines

    def ranges(self) -> list[tuple[int, int]]:
        """The lines as inclusive runs, for `git blame -L`."""
        runs: list[tuple[int, int]] = []
        for line in sorted(self.lines):
            if runs and runs[-1][1] == line - 1:
                runs[-1] = (runs[-1][0], line)
            else:
                runs.append((line, line))
        return runs


@dataclass(frozen=True)
class Plan:
    targets: tuple[BlameTarget, ...]
    reason: str | None = None  # why there is nothing to blame


def is_code(line: str, language: str) -> bool:
    """Whether a line carries code worth blaming (not blank, comment or bare syntax)."""
    text = line.strip()
    if not text or text.startswith("%" if language == "erlang" else "#"):
        return False
    return not all(token in _NOISE for token in _TOKEN.findall(text))


@dataclass(frozen=True)
class _FileLines:
    """What one file offers to blame: changed code lines inside its changed functions and
    outside them, code lines next to its pure insertions, and whether it inserts at all."""

    inside: Lines
    outside: Lines
    adjacent: Lines
    inserts: bool


def _file_lines(file: FixFile) -> _FileLines:
    from miners.windows import changed_blocks  # with tree-sitter: not for `racemine sql`

    text = (file.before or "").split("\n")
    inside: Lines = {}
    outside: Lines = {}
    adjacent: Lines = {}
    inserts = False
    for block in changed_blocks(file.diff):
        inserts = inserts or block.new_end > block.new_start
        for line in range(block.old_start + 1, block.old_end + 1):
            if line > len(text) or not is_code(text[line - 1], file.language):
                continue
            span = next((s for s in file.functions if s.holds(line)), None)
            target = inside if span else outside
            target[line] = (Evidence.CHANGED, span.name if span else None)
        if block.old_end == block.old_start:
            adjacent |= _next_to(block.old_start, file, text)
    return _FileLines(inside, outside, adjacent, inserts)


def _next_to(above: int, file: FixFile, text: list[str]) -> Lines:
    """Code lines next to a pure insertion after line `above`, in the function around it."""
    below = above + 1
    span = next((s for s in file.functions if s.holds(above) and s.holds(below)), None) \
        or next((s for s in file.functions if s.holds(above) or s.holds(below)), None)
    chosen: Lines = {}
    if span is None:
        return chosen
    for step, start in ((-1, above), (1, below)):
        found, line = 0, start
        while found < ADJACENT_LINES and span.holds(line) and 0 < line <= len(text):
            if is_code(text[line - 1], file.language):
                chosen[line] = (Evidence.ADJACENT, span.name)
                found += 1
            line += step
    return chosen


def plan_blame(fix: FixInput) -> Plan:
    """The lines of the fix's parent to blame, or why there are none: changed lines inside
    changed functions, else changed lines elsewhere, else the lines next to insertions.

    Production files come first: when the fix changes code outside tests, its test files
    are not blamed (a test written with the fix is not the bug)."""
    if fix.parent is None:
        return Plan((), "the fix is a root commit: it has no parent to blame")
    if not fix.files:
        return Plan((), "the fix changes no Elixir or Erlang file")
    readable = [(f, _file_lines(f)) for f in fix.files if f.before is not None]
    if not readable:
        return Plan((), "every file the fix changed was created by it (or was too large or "
                        "binary to read)")
    production = [(f, lines) for f, lines in readable if not f.is_test]
    tests = [(f, lines) for f, lines in readable if f.is_test]
    for files in (production, tests) if production else (readable,):
        for kind in ("inside", "outside", "adjacent"):
            targets = tuple(BlameTarget(f.before_path, f.language, chosen) for f, lines in files
                            if (chosen := getattr(lines, kind)))
            if targets:
                return Plan(targets)
    if not any(lines.inserts for _, lines in readable):
        return Plan((), "the fix deleted only comments, blank lines or bare syntax")
    return Plan((), "add-only fix with no enclosing function: its insertions are outside "
                    "every function of the files it changed")


@dataclass(frozen=True)
class BlamedLine:
    """One blamed line: where it is in the fix's parent and the commit that last wrote it."""

    path: str
    line: int
    evidence: Evidence
    function: str | None
    commit: str
    author_time: int  # seconds since the epoch
    summary: str
    orig_path: str
    orig_line: int


@dataclass(frozen=True)
class Candidate:
    """A commit that may have introduced the bug, with the lines that point at it."""

    sha: str
    rank: int
    score: float
    confidence: float
    method: str  # blame | blame_adjacent
    lines: tuple[BlamedLine, ...]
    in_located: int  # of those lines, how many lie in the function the label located
    author_time: int
    summary: str


@dataclass
class Trace:
    """A traced fix: its ranked candidates, or why it has none."""

    candidates: list[Candidate] = field(default_factory=list)
    reason: str | None = None
    ignored: tuple[str, ...] = ()  # formatting-only commits blame looked through
    lines_blamed: int = 0


def rank_candidates(fix: FixInput, blamed: Sequence[BlamedLine]) -> list[Candidate]:
    """Candidates by evidence: a line counts 1 (0.5 when only adjacent to an insertion),
    twice inside the function the label located; ties go to the most recent commit.

    A candidate's confidence is its share of the evidence, scaled by how direct the
    evidence is (0.9 for changed lines, 0.45 for lines next to an insertion): SZZ recall
    against developers' own answers is about 0.5-0.6, so no candidate is ever certain."""
    # The label names the file as it is after the fix; blame, as it was before.
    renamed = {f.before_path: f.path for f in fix.files}
    located = fix.located_function, fix.located_file, renamed
    by_commit: dict[str, list[BlamedLine]] = {}
    for line in blamed:
        by_commit.setdefault(line.commit, []).append(line)

    def weight(line: BlamedLine) -> float:
        base = 1.0 if line.evidence is Evidence.CHANGED else 0.5
        here = line.function is not None and _is_located(line, *located)
        return base * (2.0 if here else 1.0)

    scores = {sha: sum(weight(line) for line in lines) for sha, lines in by_commit.items()}
    total = sum(scores.values()) or 1.0
    order = sorted(by_commit, key=lambda sha: (-scores[sha], -by_commit[sha][0].author_time,
                                               sha))
    ranked = []
    for rank, sha in enumerate(order, 1):
        lines = tuple(sorted(by_commit[sha], key=lambda b: (b.path, b.line)))
        direct = any(b.evidence is Evidence.CHANGED for b in lines)
        ranked.append(Candidate(
            sha=sha, rank=rank, score=scores[sha],
            confidence=round(scores[sha] / total * (0.9 if direct else 0.45), 3),
            method="blame" if direct else "blame_adjacent", lines=lines,
            in_located=sum(1 for b in lines if _is_located(b, *located)),
            author_time=lines[0].author_time, summary=lines[0].summary))
    return ranked


def _is_located(line: BlamedLine, function: str | None, file: str | None,
                renamed: dict[str, str]) -> bool:
    return function is not None and line.function == function and (
        file is None or renamed.get(line.path, line.path) == file)


def code_tokens(text: str, language: str) -> list[bytes]:
    """The token stream of a source text without whitespace and comments (tree-sitter
    leaves), for telling a reformatting commit from one that changed code."""
    from miners.functions import leaf_tokens

    return leaf_tokens(text, language)


def only_reformats(before: str | bytes | None, after: str | bytes | None, language: str
                   ) -> bool:
    """Whether a change to one file left its code untouched: the same tokens in another
    layout (`mix format`, `erlfmt`, re-indenting, comment edits). Formatters also add or drop
    parentheses and trailing commas, re-indent heredocs and write `:nil` as `nil`, so those
    differences do not count."""
    if before is None or after is None or before == after:
        return False
    old, new = _as_bytes(before), _as_bytes(after)
    # The letters and digits outside comments must match first: bytes.translate settles most
    # commits (they changed code) ten times faster than a word regex, without parsing.
    comment = _COMMENT[language]
    if comment.sub(b"", old).translate(None, _NOT_WORD) != \
            comment.sub(b"", new).translate(None, _NOT_WORD):
        return False
    return _layout_free(code_tokens(old.decode("utf-8", errors="replace"), language)) == \
        _layout_free(code_tokens(new.decode("utf-8", errors="replace"), language))


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


# ASCII punctuation and whitespace: what a formatter may add, drop or move.
_NOT_WORD = bytes(c for c in range(128) if not (chr(c).isalnum() or chr(c) == "_"))
_COMMENT = {"elixir": re.compile(rb"#[^\n]*"), "erlang": re.compile(rb"%[^\n]*")}
_BARE_ATOMS = {b":nil": b"nil", b":true": b"true", b":false": b"false"}
_SPACE = re.compile(rb"\s+")


def _layout_free(tokens: list[bytes]) -> list[bytes]:
    kept: list[bytes] = []
    for token in tokens:
        if token in (b"(", b")"):
            continue
        if token in (b"]", b"}", b">>") and kept and kept[-1] == b",":
            kept.pop()
        kept.append(_BARE_ATOMS.get(token, _SPACE.sub(b" ", token)))
    return kept

