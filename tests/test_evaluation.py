"""Measuring against hand-labeled commits: rates with intervals, confusion, misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotators.errors import EvalFileError
from annotators.evaluation import (
    GoldCommit,
    Prediction,
    build_predictions,
    evaluate,
    gold_repo_for,
    load_gold,
    wilson,
)
from annotators.schema import BugType


def _gold(sha: str, fix: bool, bug_type: str, repo: str = "o/r") -> GoldCommit:
    return GoldCommit(repo=repo, sha=sha, is_concurrency_fix=fix, bug_type=BugType(bug_type),
                      in_test_only=False)


def test_wilson_interval() -> None:
    """Known values: 8/10 gives about [0.49, 0.94]; 0/0 has no value."""
    rate = wilson(8, 10)
    assert rate.value == 0.8 and rate.low == pytest.approx(0.4902, abs=1e-3)
    assert rate.high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0).value is None
    assert wilson(5, 5).high == 1.0


def test_evaluate_counts_every_outcome() -> None:
    """TP, FP, FN, a dropped commit and an unmined repo land where they should."""
    gold = [_gold("a", True, "race_condition"), _gold("b", True, "deadlock"),
            _gold("c", False, "not_concurrency"), _gold("d", True, "race_condition"),
            _gold("e", True, "timeout", repo="o/unmined")]
    predictions = {
        ("o/r", "a"): Prediction(("race",), True, "race_condition", "production"),
        ("o/r", "b"): Prediction(("deadlock",), True, "race_condition", "production"),
        ("o/r", "c"): Prediction(("race",), True, "race_condition", "test"),
    }
    report = evaluate(gold, predictions, ["o/r"])
    assert (report.precision.hits, report.precision.total) == (2, 3)
    assert (report.recall.hits, report.recall.total) == (2, 4)
    assert (report.bug_type_accuracy.hits, report.bug_type_accuracy.total) == (1, 2)
    assert report.confusion["deadlock"] == {"race_condition": 1}
    assert report.pattern_precision["race"].hits == 1
    assert report.pattern_precision["race"].total == 2
    reasons = {m.sha: m.reason for m in report.missing}
    assert reasons == {"d": "commit not matched", "e": "repository not mined"}
    assert json.loads(report.to_json())["recall"]["value"] == 0.5


def test_gold_names_match_warehouse_names() -> None:
    """owner/name in a gold file matches host/owner/name in the warehouse."""
    assert gold_repo_for("github.com/o/r", {"o/r"}) == "o/r"
    assert gold_repo_for("github.com/x/r", {"o/r"}) is None
    rows = [("github.com/o/r", "a", ["race"], True, "race_condition", "test")]
    assert build_predictions(rows, {"o/r"})[("o/r", "a")].scope == "test"


def test_bad_gold_line_is_named(tmp_path: Path) -> None:
    """A malformed row stops with the file and line number."""
    path = tmp_path / "gold.jsonl"
    path.write_text('{"repo": "o/r", "sha": "a", "is_concurrency_fix": true, '
                    '"bug_type": "race_condition"}\n{"repo": "o/r", "sha": "b"}\n')
    with pytest.raises(EvalFileError, match="line 2"):
        load_gold(path)
