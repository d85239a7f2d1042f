"""The evaluate use case: the warehouse's labels against a gold file (`racemine eval`, and
the dataset card)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from annotators.evaluation import Report, build_predictions, evaluate, gold_repo_for, load_gold
from warehouse.db import open_warehouse
from warehouse.queries import eval_rows, repo_names


def measure(warehouse: Path, gold: Path, annotator: str | None = None, strict: bool = False,
            mined_only: bool = False) -> Report:
    """Precision, recall and bug-type accuracy of the stored labels against gold.

    mined_only leaves out gold commits of repositories the warehouse never mined (they would
    count as missed fixes, which says nothing about the labels of the ones it holds).
    """
    rows = load_gold(gold)
    if strict:
        rows = [r for r in rows if r.confidence != "low"]
    gold_repos = {r.repo for r in rows}
    with open_warehouse(warehouse, read_only=True) as con:
        predictions = build_predictions(eval_rows(con, annotator), gold_repos)
        stored = repo_names(con)
    mined = [r for r in (gold_repo_for(n, gold_repos) for n in stored) if r]
    if mined_only:
        kept = set(mined)
        rows = [r for r in rows if r.repo in kept]
    report = evaluate(rows, predictions, mined)
    return replace(report, repos_not_found=sorted({r.repo for r in rows} - set(mined)),
                   warehouse_repos=stored)
