"""Train / validation / test splits that do not leak: by repository or by time.

By repository, a repository never spans two splits, and repositories that share a
near-duplicate file pair (a fork, a vendored copy, a hand-made cherry-pick) are one group, so
the duplicate cannot sit on both sides. A group's split is drawn from a hash of its name and
the seed against the fractions: a function of the repositories and the seed alone, so every
level and format of every export puts a repository in the same split (shares of rows are
then near the fractions when there are many repositories, not exact). By time, a pair goes to
the split its date falls in, and every near-duplicate of it follows the earliest copy — a
later copy can never reach a split that was meant to be unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import duckdb

SPLITS = ("train", "validation", "test")


class SplitBy(StrEnum):
    REPO = "repo"
    TIME = "time"
    NONE = "none"  # one "train" split holding everything


@dataclass(frozen=True)
class SplitPlan:
    by: SplitBy = SplitBy.REPO
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    validation_after: date | None = None  # by time: validation from this day on
    test_after: date | None = None  # by time: test from this day on

    def describe(self) -> dict[str, Any]:
        return {"by": self.by.value, "fractions": list(self.fractions), "seed": self.seed,
                "validation_after": _iso(self.validation_after),
                "test_after": _iso(self.test_after)}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def build_repo_groups(repos: Iterable[str], links: Iterable[Sequence[str]]) -> dict[str, str]:
    """Each repository's group (its smallest member's name): linked repositories are one."""
    parent = {r: r for r in repos}

    def find(r: str) -> str:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    for linked in links:
        roots = sorted({find(r) for r in linked if r in parent})
        for other in roots[1:]:
            parent[other] = roots[0]
    return {r: find(r) for r in parent}


def split_of(group: str, fractions: Sequence[float], seed: int) -> str:
    """The split a repository group falls in: a uniform draw from its name and the seed."""
    draw = int(hashlib.sha256(f"{seed}\0{group}".encode()).hexdigest()[:15], 16) / 16 ** 15
    total = sum(fractions) or 1.0
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions, strict=True):
        edge += fraction / total
        if draw < edge:
            return name
    return SPLITS[-1]


def assign_groups(groups: Iterable[str], fractions: Sequence[float], seed: int
                  ) -> dict[str, str]:
    """Group -> split (see split_of)."""
    return {g: split_of(g, fractions, seed) for g in groups}


def empty_splits(rows: Mapping[str, int], groups: int, plan: SplitPlan) -> dict[str, str]:
    """Why each split meant to hold rows holds none (by repository: too few groups)."""
    if plan.by != SplitBy.REPO:
        return {}
    return {split: (f"none of the {groups} repository groups fell in its "
                    f"{fraction / (sum(plan.fractions) or 1):.0%} share; with few "
                    "repositories use another --seed, other --fractions, or --split-by time")
            for split, fraction in zip(SPLITS, plan.fractions, strict=True)
            if fraction > 0 and not rows.get(split)}


def save_split_table(con: duckdb.DuckDBPyConnection, keys: str, plan: SplitPlan,
                     links_table: str = "export_repo_links") -> int:
    """Create temp table split_rows (id, split) for the rows of temp table `keys`.

    `keys` holds one row per dataset row: id, repo, author_day and near_dup_key;
    `links_table` one row per set of repositories that share a near-duplicate (`repos`).
    Returns the number of repository groups drawn (0 unless split by repository).
    """
    if plan.by == SplitBy.NONE:
        con.execute(f"CREATE OR REPLACE TEMP TABLE split_rows AS "
                    f"SELECT id, 'train' AS split FROM {keys}")
    elif plan.by == SplitBy.TIME:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE split_rows AS
            SELECT id, CASE WHEN $test IS NOT NULL AND first_day >= $test THEN 'test'
                            WHEN $valid IS NOT NULL AND first_day >= $valid THEN 'validation'
                            ELSE 'train' END AS split
            FROM (SELECT id, min(author_day) OVER (PARTITION BY coalesce(near_dup_key, id))
                             AS first_day FROM {keys})""",
                    {"test": plan.test_after, "valid": plan.validation_after})
    else:
        repos = [r[0] for r in con.execute(f"SELECT DISTINCT repo FROM {keys}").fetchall()]
        # Links from file-level near-duplicates of every stored pair, whatever the level
        # and the filters: the groups, and so the splits, are the same for every export.
        links = [r[0] for r in con.execute(f"SELECT repos FROM {links_table}").fetchall()]
        groups = build_repo_groups(repos, links)
        chosen = assign_groups(set(groups.values()), plan.fractions, plan.seed)
        con.execute("CREATE OR REPLACE TEMP TABLE repo_split (repo VARCHAR, split VARCHAR)")
        if repos:
            con.executemany("INSERT INTO repo_split VALUES (?, ?)",
                            [(r, chosen[groups[r]]) for r in sorted(repos)])
        con.execute(f"""CREATE OR REPLACE TEMP TABLE split_rows AS
                        SELECT id, split FROM {keys} JOIN repo_split USING (repo)""")
        return len(chosen)
    return 0
