"""Mining a repository into a real DuckDB file: complete, idempotent, incremental."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from flows.jobs.labeling import LabelCounts, label_unlabeled
from flows.jobs.mining import mine_repository
from miners.classify import PatternSet
from miners.git import open_local
from tests.conftest import RepoBuilder, mine_local
from warehouse.db import connect

COUNTED = ("repos", "commits", "file_changes", "annotations")


def _counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
    finally:
        con.close()


def _mine(repo: RepoBuilder, warehouse: Path, patterns: PatternSet, run: str = "run"):
    """Mine, then label what mining left unlabeled; labels and fixes count both."""
    result = mine_local(repo.path, warehouse, patterns, run)
    return result, result.labels, result.fixes


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        digest.update(str(item.relative_to(path)).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def test_mine_stores_matching_commits_and_pairs(
        history: tuple[RepoBuilder, dict[str, str]], warehouse_path: Path,
        patterns: PatternSet) -> None:
    """Fix commits are stored with pairs and labels; decoys are not stored at all."""
    repo, shas = history
    result, labels, _ = _mine(repo, warehouse_path, patterns)
    con = connect(warehouse_path)
    stored = {r[0] for r in con.execute("SELECT sha FROM commits").fetchall()}
    assert stored == {shas[k] for k in ("ets_race", "deadlock", "flaky", "rename", "binary",
                                        "latin1", "docs", "branch_fix", "merge")}
    assert result.commits_scanned == len(shas) and result.matches == len(stored)
    assert result.merges == 1 and labels == len(stored) - 1  # merges are not labeled
    assert result.skipped == 2  # the binary .ex and the Latin-1 .ex
    assert con.execute("SELECT is_merge FROM commits WHERE sha = ?",
                       [shas["merge"]]).fetchone() == (True,)
    labels_by_sha = dict(con.execute(
        "SELECT sha, bug_type FROM commit_labels").fetchall())
    assert labels_by_sha[shas["ets_race"]] == "race_condition"
    assert labels_by_sha[shas["deadlock"]] == "deadlock"
    assert labels_by_sha[shas["flaky"]] == "race_condition"
    assert labels_by_sha[shas["docs"]] == "not_concurrency"
    pair = con.execute("SELECT subject, bug_type, location_function FROM pairs "
                       "WHERE path = 'lib/counter.ex'").fetchall()
    assert pair == [("Fix race condition in Counter.bump", "race_condition", "bump/1")]


LABEL_FIELDS = ("sha, is_concurrency_bug, bug_type, scope, location_file, location_function, "
                "location_start, location_end, event_sequence, explanation, fix_summary, "
                "confidence, evidence")


CHECKOUT = """defmodule Pool do
  def checkout(
        pool,
        ref,
        owner,
        timeout
      ) do
    case :ets.lookup(pool, ref) do
      [] -> {:error, owner, timeout}
      [{^ref, conn}] -> {:ok, conn}
    end
  end
end
"""


def test_labels_made_while_mining_equal_labels_read_back(
        history: tuple[RepoBuilder, dict[str, str]], warehouse_path: Path,
        patterns: PatternSet) -> None:
    """Mining labels each batch from the records in memory; label_unlabeled labels from
    the warehouse. Both must give every commit the same label, located by the parsed
    function (a head over six lines, which scanning up for a head miscounts)."""
    repo, _ = history
    repo.commit("Add Pool.checkout", {"lib/pool.ex": CHECKOUT})
    fix = repo.commit("Fix race condition in Pool.checkout",
                      {"lib/pool.ex": CHECKOUT.replace("[] ->", "[] -> :ets.delete(pool, ref)\n")})
    ref = open_local(str(repo.path))
    result = mine_repository(ref, warehouse_path, patterns, "run", max_file_bytes=1_000_000)
    con = connect(warehouse_path)
    query = f"SELECT {LABEL_FIELDS} FROM annotations ORDER BY sha"
    while_mining = con.execute(query).fetchall()
    assert result.labels == len(while_mining) == 9 and result.fixes >= 5
    assert con.execute("SELECT location_function FROM annotations WHERE sha = ?",
                       [fix]).fetchone() == ("checkout/4",)
    con.execute("DELETE FROM annotations")
    con.close()
    con = connect(warehouse_path)
    assert label_unlabeled(con, ref.name, "relabel") == LabelCounts(result.labels,
                                                                   result.fixes)
    assert con.execute(query).fetchall() == while_mining


def test_function_pairs_are_stored(history: tuple[RepoBuilder, dict[str, str]],
                                   warehouse_path: Path, patterns: PatternSet) -> None:
    """Changed functions are stored with module, kind, spans and both texts."""
    repo, shas = history
    result, _, _ = _mine(repo, warehouse_path, patterns)
    con = connect(warehouse_path)
    rows = con.execute(
        "SELECT sha, path, module, function, kind, change, before_start, before_end "
        "FROM function_changes WHERE sha IN (?, ?, ?) ORDER BY sha, path",
        [shas["ets_race"], shas["deadlock"], shas["flaky"]]).fetchall()
    assert sorted(rows) == sorted([
        (shas["ets_race"], "lib/counter.ex", "Counter", "bump/1", "def", "modified", 11, 16),
        (shas["deadlock"], "src/pool.erl", "pool", "handle_call/3", "function", "modified",
         7, 11),
        (shas["flaky"], "test/counter_test.exs", "CounterTest",
         'test "bump notifies the listener"', "test", "modified", 4, 9),
    ])
    assert result.functions == con.execute("SELECT count(*) FROM function_changes"
                                            ).fetchone()[0]
    assert con.execute("SELECT parse_status FROM file_changes WHERE path = 'lib/counter.ex' "
                       "AND sha = ?", [shas["ets_race"]]).fetchone() == ("parsed",)


def test_mining_twice_adds_nothing(history: tuple[RepoBuilder, dict[str, str]],
                                   warehouse_path: Path, patterns: PatternSet) -> None:
    """A second run over an unchanged repository scans nothing and writes no row."""
    repo, _ = history
    _mine(repo, warehouse_path, patterns, "first")
    first = _counts(warehouse_path)
    result, labels, _ = _mine(repo, warehouse_path, patterns, "second")
    assert _counts(warehouse_path) == first
    assert (result.commits_scanned, result.matches, labels) == (0, 0, 0)


def test_remining_after_commits_were_deleted_by_hand(
        history: tuple[RepoBuilder, dict[str, str]], warehouse_path: Path,
        patterns: PatternSet) -> None:
    """A repository whose commits were deleted with SQL, but not its file pairs and labels,
    is mined again whole: what is still stored is replaced, not inserted a second time."""
    repo, _ = history
    _mine(repo, warehouse_path, patterns, "first")
    first = _counts(warehouse_path)
    con = connect(warehouse_path)
    con.execute("DELETE FROM commits")
    con.execute("UPDATE repos SET mined_tips = NULL, last_mined_sha = NULL")
    con.close()
    _mine(repo, warehouse_path, patterns, "again")
    assert _counts(warehouse_path) == first


def test_only_new_commits_are_mined(history: tuple[RepoBuilder, dict[str, str]],
                                    warehouse_path: Path, patterns: PatternSet) -> None:
    """A commit made after the first run is the only one the second run mines."""
    repo, _ = history
    _mine(repo, warehouse_path, patterns, "first")
    new = repo.commit("Fix deadlock in shutdown", {"lib/stop.ex": "defmodule Stop do\nend\n"})
    result, labels, _ = _mine(repo, warehouse_path, patterns, "second")
    assert (result.commits_scanned, result.matches, labels) == (1, 1, 1)
    con = connect(warehouse_path)
    assert con.execute("SELECT sha FROM commits WHERE run_id = 'second'").fetchall() == [(new,)]


def test_local_repository_is_never_written(history: tuple[RepoBuilder, dict[str, str]],
                                           warehouse_path: Path, patterns: PatternSet) -> None:
    """Mining a work tree leaves every file of it, .git included, byte-identical."""
    repo, _ = history
    before = _tree_digest(repo.path)
    _mine(repo, warehouse_path, patterns)
    assert _tree_digest(repo.path) == before
