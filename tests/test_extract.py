"""File pairs: before/after text, diff, counts, and skipped files with reasons."""

from __future__ import annotations

from miners.extract import (
    count_changed_lines,
    decode_source,
    iter_commit_files,
    split_patch,
)
from miners.git import iter_commits
from miners.paths import is_test_path, language_of
from miners.records import ChangeType, CommitFiles, SkipReason
from tests.conftest import COUNTER_FIXED, COUNTER_RACY, RepoBuilder


def _extract(repo: RepoBuilder, *wanted: str) -> dict[str, CommitFiles]:
    commits = [c for c in iter_commits(str(repo.path), ["HEAD"]) if c.sha in wanted]
    return {cf.commit.sha: cf for cf in iter_commit_files(str(repo.path), commits)}


def test_modified_file_pair(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """A modified file gives full before/after text, git's diff and line counts."""
    repo, shas = history
    (pair,) = _extract(repo, shas["ets_race"])[shas["ets_race"]].files
    assert pair.path == "lib/counter.ex" and pair.change_type == ChangeType.MODIFIED
    assert pair.before == COUNTER_RACY and pair.after == COUNTER_FIXED
    assert pair.language == "elixir" and not pair.is_test
    assert (pair.lines_added, pair.lines_removed) == (1, 4)
    assert pair.diff is not None and "-    case :ets.lookup" in pair.diff
    assert pair.skipped_reason is None


def test_only_source_files_are_pairs(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """README.md, mix.lock and images are not Elixir/Erlang source and give no pair."""
    repo, shas = history
    files = _extract(repo, shas["initial"])[shas["initial"]].files
    assert sorted(f.path for f in files) == ["lib/counter.ex", "lib/worker.ex",
                                             "src/pool.erl", "test/counter_test.exs"]
    assert all(f.change_type == ChangeType.ADDED and f.before is None for f in files)
    assert next(f for f in files if f.path == "test/counter_test.exs").is_test


def test_rename_keeps_old_path(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """A rename with edits is one pair with its old path and both texts."""
    repo, shas = history
    (pair,) = _extract(repo, shas["rename"])[shas["rename"]].files
    assert (pair.path, pair.old_path) == ("lib/pool/worker.ex", "lib/worker.ex")
    assert pair.change_type == ChangeType.RENAMED
    assert pair.before and pair.after and "def ok" in pair.after


def test_binary_and_undecodable_are_skipped(history: tuple[RepoBuilder, dict[str, str]]
                                            ) -> None:
    """A binary .ex is skipped as binary, a Latin-1 .ex as undecodable, Latin-1 Erlang kept."""
    repo, shas = history
    got = _extract(repo, shas["binary"], shas["latin1"])
    (blob,) = got[shas["binary"]].files
    assert blob.skipped_reason == SkipReason.BINARY and blob.after is None
    by_path = {f.path: f for f in got[shas["latin1"]].files}
    assert by_path["lib/legacy.ex"].skipped_reason == SkipReason.UNDECODABLE
    assert by_path["src/legacy.erl"].skipped_reason is None
    assert "café" in (by_path["src/legacy.erl"].after or "")


def test_too_large_is_skipped(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """A file over the size cap is recorded as too large without being read or diffed (git
    treats it as binary: no changed lines are counted), beside a small file that is."""
    repo, _ = history
    sha = repo.commit("Fix race in generated table", {"lib/big.ex": "# x\n" * 5000,
                                                       "lib/small.ex": "# y\n"})
    commits = [c for c in iter_commits(str(repo.path), ["HEAD"]) if c.sha == sha]
    (cf,) = list(iter_commit_files(str(repo.path), commits, max_file_bytes=1000))
    big, small = sorted(cf.files, key=lambda f: f.path)
    assert big.skipped_reason == SkipReason.TOO_LARGE and big.diff is None
    assert (big.lines_added, big.lines_removed) == (0, 0)
    assert small.skipped_reason is None and (small.lines_added, small.diff) != (0, None)


def test_merge_and_non_source_commits(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """Merges are not extracted; a commit touching no source file yields no pairs."""
    repo, shas = history
    got = _extract(repo, shas["merge"], shas["docs"])
    assert shas["merge"] not in got
    assert got[shas["docs"]].files == ()


def test_split_patch_keys_by_blobs() -> None:
    """Patch sections are keyed by the blob ids on their index lines."""
    a, b = "1" * 40, "2" * 40
    patch = (f"diff --git a/x.ex b/x.ex\nindex {a}..{b} 100644\n--- a/x.ex\n+++ b/x.ex\n"
             "@@ -1 +1,2 @@\n-old\n+new\n+more\n"
             "diff --git a/y.ex b/z.ex\nsimilarity index 100%\nrename from y.ex\n"
             "rename to z.ex\n").encode()
    sections = split_patch(patch)
    assert list(sections) == [(a, b)]
    assert count_changed_lines(sections[(a, b)]) == (2, 1)


def test_path_facts() -> None:
    """Languages and test paths are recognised from the path alone."""
    assert language_of("lib/a.ex") == "elixir" and language_of("src/a.erl") == "erlang"
    assert language_of("src/app.app.src") == "erlang" and language_of("README.md") is None
    assert is_test_path("test/a_test.exs") and is_test_path("test/pool_SUITE.erl")
    assert not is_test_path("lib/testing.ex")
    assert decode_source(b"\xff", "elixir") is None
    assert decode_source(b"\xe9", "erlang") == "é"
