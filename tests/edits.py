"""Edits of a source text and the diffs of them, for the windowed-parsing tests."""

from __future__ import annotations

import difflib
import subprocess
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

Edit = tuple[str, int, int, int]  # kind, first line, how many lines, where to


def git_diff(tmp: Path, before: str, after: str, suffix: str) -> str:
    """The diff real git prints for two versions of a file."""
    (tmp / f"a{suffix}").write_text(before)
    (tmp / f"b{suffix}").write_text(after)
    proc = subprocess.run(["git", "diff", "--no-index", "--no-color", f"a{suffix}",
                           f"b{suffix}"], cwd=tmp, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout


def replace_once(old: str, new: str) -> Callable[[str], str]:
    """An edit that replaces the first old with new (and insists old is there)."""
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def unified(before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        after.splitlines(keepends=True), "a", "b"))


def apply_edits(lines: list[str], edits: list[Edit], tokens: list[str]) -> str:
    """Delete, copy or move runs of lines, or insert one of tokens; the text after."""
    lines = list(lines)
    for kind, start, length, target in edits:
        if kind == "insert":
            lines[min(target, len(lines)):min(target, len(lines))] = [
                tokens[(start + length) % len(tokens)]]
            continue
        chunk = lines[start:start + length]
        if kind in ("delete", "move"):
            del lines[start:start + length]
        if kind in ("copy", "move"):
            at = min(target, len(lines))
            lines[at:at] = chunk
    return "\n".join(lines)


def edit_lists(lines: int) -> st.SearchStrategy[list[Edit]]:
    """One to three random edits of a text of this many lines."""
    return st.lists(st.tuples(st.sampled_from(["delete", "copy", "move", "insert"]),
                              st.integers(0, lines - 1), st.integers(1, 12),
                              st.integers(0, lines)), min_size=1, max_size=3)
