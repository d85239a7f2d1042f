"""Measuring against hand-labeled commits: rates with intervals, confusion, misses."""

from __future__ import annotations

import json
from datetime import datetime
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
    location_matches,
    parse_fix_location,
    wilson,
)
from annotators.schema import BugType
from warehouse.db import connect
from warehouse.queries import eval_rows
from warehouse.save import upsert_rows


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
    rows = [("github.com/o/r", "a", ["race"], True, "race_condition", "test", "lib/a.ex",
             "f/1", True, "why", 2, "github.com/o/r", "a", ["f/2"])]
    prediction = build_predictions(rows, {"o/r"})[("o/r", "a")]
    assert (prediction.scope, prediction.location_function, prediction.n_steps) == \
        ("test", "f/1", 2)
    assert prediction.location_aliases == ("f/2",)
    assert prediction.canonical == ("github.com/o/r", "a")


def test_bad_gold_line_is_named(tmp_path: Path) -> None:
    """A malformed row stops with the file and line number."""
    path = tmp_path / "gold.jsonl"
    path.write_text('{"repo": "o/r", "sha": "a", "is_concurrency_fix": true, '
                    '"bug_type": "race_condition"}\n{"repo": "o/r", "sha": "b"}\n')
    with pytest.raises(EvalFileError, match="line 2"):
        load_gold(path)


def test_gold_fix_location_parses_files_and_the_functions_it_names() -> None:
    """name/arity, an ExUnit test, a bare identifier or a call's name count; notes in
    parentheses and prose name no function; a path alone names its file."""
    places = parse_fix_location(
        'lib/pool.ex: checkout/2 (calls f/1), handle_info({:DOWN, ...}), idle ping test; '
        'src/a.erl: stop/1 and check_behaviours; test/b_test.exs: test "x (y), z"; '
        "test/c_test.exs")
    assert [(p.path, p.functions) for p in places] == [
        ("lib/pool.ex", (("checkout", 2), ("handle_info", None))),
        ("src/a.erl", (("stop", 1), ("check_behaviours", None))),
        ("test/b_test.exs", (('test "x (y), z"', None),)),
        ("test/c_test.exs", ())]


@pytest.mark.parametrize(("file", "function", "expected"), [
    ("lib/pool.ex", "checkout/2", (True, True)),
    ("lib/pool.ex", "checkout/3", (True, False)),
    ("lib/pool.ex", None, (True, False)),
    ("src/a.erl", "check_behaviours/2", (True, True)),
    ("test/b_test.exs", 'test "describe x"', (True, True)),
    ("lib/other.ex", "checkout/2", (False, False)),
    (None, None, (False, False)),
])
def test_location_matches(file: str | None, function: str | None,
                          expected: tuple[bool, bool]) -> None:
    places = parse_fix_location('lib/pool.ex: checkout/2; src/a.erl: check_behaviours; '
                                'test/b_test.exs: test "x"')
    assert location_matches(places, file, function) == expected


@pytest.mark.parametrize(("aliases", "expected"), [((), False), (("checkout/2",), True),
                                                   (("checkout/4",), False)])
def test_a_function_whose_arity_the_fix_changed_matches_either_arity(
        aliases: tuple[str, ...], expected: bool) -> None:
    """The label locates the bug in the before version (checkout/1), a gold label may name
    the function as the fix left it (checkout/2)."""
    places = parse_fix_location("lib/pool.ex: checkout/2")
    assert location_matches(places, "lib/pool.ex", "checkout/1", aliases) == (True, expected)


def test_the_warehouse_gives_the_located_function_its_other_arity(tmp_path: Path) -> None:
    """eval_rows lists a located function's other arity only when the same change removed
    one and added the other in that file."""
    con = connect(tmp_path / "w.duckdb")
    upsert_rows(con, "commits", [{"repo": "o/r", "sha": s, "parents": ["p"], "is_merge": False,
                                  "subject": "Fix race", "message": "Fix race",
                                  "matched_terms": ["race"], "match_score": 1.0, "run_id": "t"}
                                 for s in "ab"])
    changes = [("a", "stop/1", "removed"), ("a", "stop/2", "added"), ("a", "stop/3", "modified"),
               ("b", "stop/1", "modified"), ("b", "stop/2", "added")]
    upsert_rows(con, "function_changes", [
        {"repo": "o/r", "sha": sha, "path": "lib/a.ex", "module": "A", "function": function,
         "kind": "def", "change": change, "run_id": "t"}
        for sha, function, change in changes])
    upsert_rows(con, "annotations", [
        {"repo": "o/r", "sha": sha, "target": "commit", "annotator": "heuristic/test",
         "status": "ok", "is_concurrency_bug": True, "bug_type": "race_condition",
         "scope": "production", "location_file": "lib/a.ex", "location_function": "stop/1",
         "run_id": "t", "created_at": datetime(2026, 1, 1)} for sha in "ab"])
    rows = {row[1]: row[-1] for row in eval_rows(con, None)}
    assert rows == {"a": ["stop/2"], "b": None}


def test_location_accuracy_counts_true_positives_with_a_gold_place() -> None:
    gold = [GoldCommit(repo="o/r", sha=s, is_concurrency_fix=True,
                       bug_type=BugType.RACE_CONDITION, fix_location=loc)
            for s, loc in (("a", "lib/a.ex: f/1"), ("b", "lib/b.ex: g/2"), ("c", "lib/c.ex"),
                           ("d", None))]
    predictions = {("o/r", s): Prediction(("race",), True, "race_condition", "production",
                                          f"lib/{f}.ex", fn, ok, "why", n)
                   for s, f, fn, ok, n in (("a", "a", "f/1", True, 2),
                                           ("b", "b", "h/2", False, 0),
                                           ("c", "c", None, None, 0),
                                           ("d", "d", "x/0", None, 0))}
    report = evaluate(gold, predictions, ["o/r"])
    assert (report.location_file_accuracy.hits, report.location_file_accuracy.total) == (3, 3)
    assert (report.location_function_accuracy.hits,
            report.location_function_accuracy.total) == (1, 2)
    assert (report.with_steps.hits, report.with_steps.total) == (1, 4)
    assert (report.steps_checked.hits, report.steps_checked.total) == (1, 1)
    assert report.repeated_explanations == 4


def test_per_repository_rates_macro_means_and_one_repository_patterns() -> None:
    """Each repository gets its own precision and recall; a pattern whose kept fixes all
    come from one repository is named with it; a copy of a fix counts once."""
    gold = [_gold("a", True, "race_condition", repo="o/one"),
            _gold("b", False, "not_concurrency", repo="o/one"),
            _gold("c", True, "race_condition", repo="o/two"),
            _gold("d", True, "deadlock", repo="o/two"),
            _gold("e", True, "deadlock", repo="o/fork")]
    canonical = ("github.com/o/two", "d")
    predictions = {
        ("o/one", "a"): Prediction(("race",), True, "race_condition", "production"),
        ("o/one", "b"): Prediction(("race",), True, "race_condition", "production"),
        ("o/two", "c"): Prediction(("race", "flaky"), True, "race_condition", "production"),
        ("o/two", "d"): Prediction(("deadlock",), False, "not_concurrency", "production",
                                   canonical=canonical),
        ("o/fork", "e"): Prediction(("deadlock",), False, "not_concurrency", "production",
                                    canonical=canonical),
    }
    report = evaluate(gold, predictions, ["o/one", "o/two", "o/fork"])
    assert report.duplicates == 1 and set(report.per_repo) == {"o/one", "o/two"}
    assert (report.recall.hits, report.recall.total) == (2, 3)
    one, two = report.per_repo["o/one"], report.per_repo["o/two"]
    assert (one["precision"].value, one["recall"].value) == (0.5, 1.0)
    assert (two["precision"].value, two["recall"].value) == (1.0, 0.5)
    assert (report.macro_precision, report.macro_recall) == (0.75, 0.75)
    assert report.single_repo_patterns == {"flaky": "o/two"}
