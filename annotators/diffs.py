"""Pure reading of unified diffs: which lines left, which arrived, with line numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Hunk:
    before_start: int
    before_len: int
    removed: tuple[tuple[int, str], ...]  # (line number in before, text)
    added: tuple[tuple[int, str], ...]  # (line number in after, text)
    after_start: int = 0

    @property
    def before_end(self) -> int:
        return self.before_start + max(self.before_len, 1) - 1


def parse_hunks(diff: str | None) -> list[Hunk]:
    """Hunks of a unified diff; header lines and `\\ No newline` markers are ignored."""
    if not diff:
        return []
    hunks: list[Hunk] = []
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []
    start = length = old_no = new_no = after = 0
    in_hunk = False
    for line in diff.split("\n"):
        head = HUNK_HEADER.match(line)
        if head:
            if in_hunk:
                hunks.append(Hunk(start, length, tuple(removed), tuple(added), after))
            start, length = int(head.group(1)), int(head.group(2) or 1)
            old_no, new_no = start, int(head.group(3))
            after = new_no
            removed, added, in_hunk = [], [], True
        elif not in_hunk:
            continue
        elif line.startswith("-"):
            removed.append((old_no, line[1:]))
            old_no += 1
        elif line.startswith("+"):
            added.append((new_no, line[1:]))
            new_no += 1
        elif line.startswith(" "):
            old_no += 1
            new_no += 1
    if in_hunk:
        hunks.append(Hunk(start, length, tuple(removed), tuple(added), after))
    return hunks


# What reads or sets a file's modification time, in Elixir and Erlang.
_FILE_TIME = re.compile(r"\bmtime\b|\bFile\.(?:touch|stat)|\bfile:(?:change_time|read_file_info|"
                        r"write_file_info|last_modified)|:file\.(?:change_time|read_file_info|"
                        r"write_file_info)|filelib:last_modified")


def about_file_times(hunks: list[list[Hunk]]) -> bool:
    """Whether a change is about files' modification times: at least a third of its changed
    lines (blank lines aside) read or set one, as a test does that waits for an mtime to move
    on ("a file touched within the same second is not seen as newer")."""
    lines = [t for file_hunks in hunks for h in file_hunks for _, t in (*h.removed, *h.added)
             if t.strip()]
    return bool(lines) and 3 * sum(1 for t in lines if _FILE_TIME.search(t)) >= len(lines)


_ELIXIR_DEF = re.compile(r"^\s*(defp?|defmacrop?|defguardp?)\s+([a-z_][\w?!]*)\s*(\(?)")
_ERLANG_FUN = re.compile(r"^([a-z][\w@]*)\s*\(")
# ExUnit test bodies are where flaky-test fixes live; name them like functions.
_EXUNIT_TEST = re.compile(r'^\s*(test|setup_all|setup)\b\s*("(?:[^"\\]|\\.)*")?')


def _arity(text: str) -> int:
    """Top-level arguments in the first parenthesised group of text."""
    depth, count, seen = 0, 0, False
    for ch in text:
        if ch in "([{":
            depth += 1
            if depth == 1 and ch == "(":
                continue
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif depth >= 1 and not ch.isspace():
            seen = True
        if ch == "," and depth == 1:
            count += 1
    return count + 1 if seen else 0


def enclosing_function(source: str | None, line: int, language: str) -> str | None:
    """name/arity of the function around a 1-based line, by scanning up for its head."""
    if not source:
        return None
    lines = source.split("\n")
    for i in range(min(line, len(lines)) - 1, -1, -1):
        head = _head_at(lines, i, language)
        if head:
            return head
    return None


def function_after(source: str, line: int, language: str) -> str | None:
    """name/arity of the first function whose head comes after a 1-based line: the one a
    doc heredoc ending there documents."""
    lines = source.split("\n")
    for i in range(line, len(lines)):
        head = _head_at(lines, i, language)
        if head:
            return None if head.startswith(("test ", "describe")) else head
    return None


def _head_at(lines: list[str], i: int, language: str) -> str | None:
    """name/arity when line i (0-based) starts a function (or an ExUnit test) head."""
    text = lines[i]
    if language == "elixir":
        t = _EXUNIT_TEST.match(text)
        if t and (t.group(2) or t.group(1) != "test"):
            return f"{t.group(1)} {t.group(2)}" if t.group(2) else t.group(1)
        m = _ELIXIR_DEF.match(text)
        if m:
            head = " ".join(lines[i:i + 3])
            return f"{m.group(2)}/{_arity(head[m.end(2):]) if m.group(3) else 0}"
        return None
    m = _ERLANG_FUN.match(text)
    if m:
        return f"{m.group(1)}/{_arity(' '.join(lines[i:i + 3])[m.end(1):])}"
    return None
