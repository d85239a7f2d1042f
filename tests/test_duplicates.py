"""The same fix on several branches or in forks: one canonical row, the others pointing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from flows.jobs.mine import mine_and_label
from flows.settings import Settings
from miners.classify import PatternSet
from miners.git import open_local
from tests.conftest import COUNTER_FIXED, COUNTER_RACY, RepoBuilder
from warehouse.dataset import Selection
from warehouse.db import connect
from warehouse.export import export_dataset
from warehouse.splits import SplitBy, SplitPlan


def _project(tmp_path: Path) -> tuple[RepoBuilder, str, str]:
    repo = RepoBuilder(tmp_path / "project")
    repo.commit("Initial counter", {"lib/counter.ex": COUNTER_RACY})
    repo.git("branch", "v1.x")
    fix = repo.commit("Fix race condition in Counter.bump", {"lib/counter.ex": COUNTER_FIXED})
    repo.git("checkout", "-q", "v1.x")
    repo.commit("Start the 1.x series", {"README.md": "1.x\n"})
    repo.git("cherry-pick", "-x", fix)
    picked = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "main")
    return repo, fix, picked


def _mine(ref, warehouse: Path, patterns: PatternSet, all_branches: bool = True) -> None:
    mine_and_label(ref, Settings(warehouse=warehouse), patterns, "run",
                   all_branches=all_branches)


def test_cherry_pick_points_to_the_original(tmp_path: Path, warehouse_path: Path,
                                            patterns: PatternSet) -> None:
    """A cherry-picked fix shares the original's patch id and points to it."""
    repo, fix, picked = _project(tmp_path)
    assert fix != picked
    _mine(open_local(str(repo.path)), warehouse_path, patterns)
    con = connect(warehouse_path)
    rows = dict(con.execute("SELECT sha, patch_id FROM commits").fetchall())
    assert rows[fix] is not None and rows[fix] == rows[picked]
    dedup = con.execute("SELECT sha, canonical_sha, is_canonical FROM commit_dedup "
                        "ORDER BY is_canonical DESC").fetchall()
    assert dedup == [(fix, fix, True), (picked, fix, False)]
    out, plan = tmp_path / "dataset", SplitPlan(by=SplitBy.NONE)
    assert export_dataset(con, out, Selection(include_unknown_license=True), plan).total == 1
    both = Selection(include_unknown_license=True, duplicates=True)
    assert export_dataset(con, out, both, plan).total == 2


def test_fork_mined_under_another_name(tmp_path: Path, warehouse_path: Path,
                                       patterns: PatternSet) -> None:
    """The same commit in a fork is kept once; the canonical copy is the first by name."""
    repo, fix, _ = _project(tmp_path)
    ref = open_local(str(repo.path))
    _mine(replace(ref, name="github.com/a/project"), warehouse_path, patterns, False)
    _mine(replace(ref, name="github.com/b/fork"), warehouse_path, patterns, False)
    con = connect(warehouse_path)
    dedup = con.execute("SELECT repo, canonical_repo, is_canonical FROM commit_dedup "
                        "WHERE sha = ? ORDER BY repo", [fix]).fetchall()
    assert dedup == [("github.com/a/project", "github.com/a/project", True),
                     ("github.com/b/fork", "github.com/a/project", False)]
