"""The message scan on its thread: every match once, newest first, in lists as found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from miners.classify import PatternSet, classify_message
from miners.errors import GitCommandError
from miners.git import iter_commits
from miners.scan import MessageScan
from tests.conftest import RepoBuilder


def _git_processes_in(path: Path) -> list[str]:
    """Command lines of running git processes that name this repository."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"git") and str(path).encode() in cmdline:
            found.append(" ".join(c.decode(errors="replace") for c in cmdline))
    return found


def _repo_of_fixes(tmp_path: Path, n: int) -> RepoBuilder:
    repo = RepoBuilder(tmp_path / "many")
    for i in range(n):
        repo.commit(f"Fix race condition in worker {i}", {"lib/w.ex": f"# {i}\n"})
        repo.commit(f"Update docs {i}", {"README.md": f"{i}\n"})
    return repo


def test_batches_hold_every_match_newest_first(
        history: tuple[RepoBuilder, dict[str, str]], patterns: PatternSet) -> None:
    """The lists together are what classifying every message gives, in git's order."""
    repo, _ = history
    git_dir = str(repo.path)
    expected = [c.sha for c in iter_commits(git_dir, ["HEAD"])
                if classify_message(c.message, patterns).matched]
    with MessageScan(git_dir, ["HEAD"], [], patterns) as scan:
        batches = list(scan.batches(least=1, most=2))
    assert [c.sha for b in batches for c, _ in b] == expected
    assert all(1 <= len(b) <= 2 for b in batches)
    assert all(m.matched and m.terms for b in batches for _, m in b)


def test_lists_are_at_least_least_but_the_last(tmp_path: Path, patterns: PatternSet) -> None:
    repo = _repo_of_fixes(tmp_path, 23)
    with MessageScan(str(repo.path), ["HEAD"], [], patterns) as scan:
        sizes = [len(b) for b in scan.batches(least=5, most=10)]
    assert sum(sizes) == 23
    assert all(5 <= s <= 10 for s in sizes[:-1]) and 1 <= sizes[-1] <= 10


def test_leaving_early_stops_the_scan_and_its_git(tmp_path: Path,
                                                  patterns: PatternSet) -> None:
    """A consumer that stops after the first list leaves no thread and no git behind."""
    repo = _repo_of_fixes(tmp_path, 40)
    with MessageScan(str(repo.path), ["HEAD"], [], patterns) as scan:
        first = next(scan.batches(least=1, most=1))
    assert len(first) == 1
    assert not scan._thread.is_alive()
    assert _git_processes_in(repo.path) == []


def test_a_failed_scan_raises_in_the_consumer(history: tuple[RepoBuilder, dict[str, str]],
                                              patterns: PatternSet) -> None:
    repo, _ = history
    with MessageScan(str(repo.path), ["0" * 40], [], patterns) as scan, \
            pytest.raises(GitCommandError, match="git log failed"):
        list(scan.batches(least=1, most=10))
