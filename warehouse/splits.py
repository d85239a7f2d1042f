"""Train / validation / test splits that do not leak: by repository or by time.

By repository, a repository never spans two splits, and repositories that share a
near-duplicate pair (a fork, a vendored copy, a hand-made cherry-pick) are one group, so the
duplicate cannot sit on both sides. Groups go to splits largest first (the seed orders groups
of equal size), each to the split furthest below its share of rows. By time, a pair goes to
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


def assign_groups(sizes: Mapping[str, int], fractions: Sequence[float], seed: int
                  ) -> dict[str, str]:
    """Group -> split: largest groups first (seeded order among equals), each to the split
    furthest below its share of rows."""
    total = sum(sizes.values())
    share = sum(fractions) or 1.0
    targets = [total * f / share for f in fractions]
    filled = [0] * len(fractions)
    order = sorted(sizes, key=lambda g: (-sizes[g],
                                         hashlib.sha256(f"{seed}\0{g}".encode()).hexdigest()))
    out = {}
    for group in order:
        i = max(range(len(fractions)), key=lambda k: (targets[k] - filled[k], -k))
        out[group] = SPLITS[i]
        filled[i] += sizes[group]
    return out


def save_split_table(con: duckdb.DuckDBPyConnection, keys: str, plan: SplitPlan) -> None:
    """Create temp table split_rows (id, split) for the rows of temp table `keys`.

    `keys` holds one row per dataset row: id, repo, author_day and near_dup_key.
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
        sizes = dict(con.execute(f"SELECT repo, count(*) FROM {keys} GROUP BY repo").fetchall())
        links = [r[0] for r in con.execute(
            f"""SELECT list(DISTINCT repo) FROM {keys} WHERE near_dup_key IS NOT NULL
                GROUP BY near_dup_key HAVING count(DISTINCT repo) > 1""").fetchall()]
        groups = build_repo_groups(sizes, links)
        group_sizes: dict[str, int] = {}
        for repo, n in sizes.items():
            group_sizes[groups[repo]] = group_sizes.get(groups[repo], 0) + n
        split_of = assign_groups(group_sizes, plan.fractions, plan.seed)
        con.execute("CREATE OR REPLACE TEMP TABLE repo_split (repo VARCHAR, split VARCHAR)")
        if sizes:
            con.executemany("INSERT INTO repo_split VALUES (?, ?)",
                            [(r, split_of[groups[r]]) for r in sorted(sizes)])
        con.execute(f"""CREATE OR REPLACE TEMP TABLE split_rows AS
                        SELECT id, split FROM {keys} JOIN repo_split USING (repo)""")
