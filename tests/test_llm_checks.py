"""LLM labels against the trace checks, end to end through `racemine annotate` and a stand-in
server: good labels are stored verified, broken ones are asked again once with the failures
quoted, a location that is not a changed function is never stored, and the reviewer judges
each step without seeing the labeler's confidence."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb

from tests.llm_server import FakeLLM, Reply, broken_label, naive_label, plausible_verdict
from tests.test_llm_servers import annotate


def _annotate(warehouse: Path, llm: FakeLLM, *args: str) -> Any:
    out = annotate(warehouse, llm, *args)
    assert out.exit_code == 0, out.output
    return out


def _query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _is_reask(request: dict[str, Any]) -> bool:
    return any("fails these checks" in m["content"] for m in request["messages"]
               if m["role"] == "user")


def _subject(request: dict[str, Any]) -> str:
    user = request["messages"][1]["content"]
    return re.search(r"Commit message:\n(.*)", user).group(1)  # type: ignore[union-attr]


def test_broken_labels_are_asked_again_once_then_stored_as_checked(mined: Path) -> None:
    """Every first answer is broken; asked again with the failures quoted, the commits whose
    subject says "race" get a label that holds (verified), the others the same broken label
    (stored, with its failures, not verified). Nothing is asked a third time."""

    def script(request: dict[str, Any], call: int) -> Reply:
        if _is_reask(request) and "race" in _subject(request).lower():
            return Reply(content=json.dumps(naive_label(request)))
        return Reply(content=json.dumps(broken_label(request)))

    with FakeLLM(script) as llm:
        _annotate(mined, llm)
        reasks = [r for r in llm.requests if _is_reask(r)]
        quoted = reasks[0]["messages"][-1]["content"]
    assert reasks and "step 1: line 99999 is past the end" in quoted
    rows = _query(mined, """
        SELECT c.subject, a.is_concurrency_bug, a.reasks, a.checks_passed, a.check_failures,
               f.verified
        FROM annotations a JOIN commits c USING (repo, sha) JOIN fixes f USING (repo, sha)
        WHERE a.annotator LIKE 'llm/%'""")
    fixes = [r for r in rows if r[1]]
    assert fixes and len(reasks) == len(fixes)  # once per commit the checks failed
    for subject, _, reasks_n, passed, failures, verified in fixes:
        assert reasks_n == 1
        if "race" in subject.lower():
            assert passed and verified and failures == []
        else:
            assert not passed and not verified
            assert any("past the end" in f for f in failures)
            assert any("needs at least 2 actors" in f for f in failures)
    assert any("race" in r[0].lower() for r in fixes)
    assert any("race" not in r[0].lower() for r in fixes)
    steps = _query(mined, """SELECT count(*), count(*) FILTER (WHERE check_ok),
                                    count(*) FILTER (WHERE NOT check_ok)
                             FROM event_steps WHERE annotator LIKE 'llm/%'""")[0]
    assert steps[0] == steps[1] + steps[2] and steps[1] > 0 and steps[2] > 0


def test_a_location_outside_the_change_is_never_stored(mined: Path) -> None:
    """A model that keeps naming a function the change does not touch fails that commit
    after its re-asks; no stored label names it."""

    def script(request: dict[str, Any], call: int) -> Reply:
        label = naive_label(request)
        if label["bug_location"]:
            label["bug_location"]["function"] = "made_up/3"
        return Reply(content=json.dumps(label))

    with FakeLLM(script) as llm:
        _annotate(mined, llm)
    assert not _query(mined, "SELECT * FROM annotations WHERE location_function = 'made_up/3'")
    failed = _query(mined, "SELECT failure FROM annotations WHERE annotator LIKE 'llm/%' "
                           "AND status = 'failed'")
    assert failed and all("made_up/3 is not a changed function" in f for (f,) in failed)


def test_reviewer_judges_each_step_blind_to_confidence_and_samples_negatives(
        mined: Path) -> None:
    """--verify sends each fix's numbered steps (no confidence) and stores a verdict per
    step; --verify-negatives 1 also reviews every "not a fix" label."""
    reviewed: list[dict[str, Any]] = []

    def script(request: dict[str, Any], call: int) -> Reply:
        if "is_plausible" in request["messages"][0]["content"]:
            reviewed.append(request)
            verdict = plausible_verdict(request)
            if verdict["steps"]:  # the reviewer doubts the last step of every report
                verdict["steps"][-1] = {**verdict["steps"][-1], "plausible": False,
                                        "note": "this line does not do that"}
                verdict["is_plausible"] = False
            return Reply(content=json.dumps(verdict))
        return Reply(content=json.dumps(naive_label(request)))

    with FakeLLM(script) as llm:
        _annotate(mined, llm, "--verify", "--verify-negatives", "1")
    labels = _query(mined, "SELECT is_concurrency_bug, is_plausible FROM annotations "
                           "WHERE annotator LIKE 'llm/%' AND status = 'ok'")
    assert len(reviewed) == len(labels)  # negatives too, at rate 1
    reports = [r["messages"][1]["content"].split("Report to check:", 1)[1] for r in reviewed]
    assert all('"confidence"' not in report for report in reports)
    assert any('"step": 1' in report for report in reports)
    assert all(plausible is True for is_bug, plausible in labels if not is_bug)
    assert all(plausible is False for is_bug, plausible in labels if is_bug)
    verdicts = _query(mined, """
        SELECT step, reviewer_ok, reviewer_note, n
        FROM event_steps e JOIN (SELECT repo, sha, annotator, max(step) AS n FROM event_steps
                                 GROUP BY ALL) m USING (repo, sha, annotator)
        WHERE e.annotator LIKE 'llm/%'""")
    assert verdicts and all((ok is False) == (step == n) for step, ok, _, n in verdicts)
    assert not _query(mined, "SELECT * FROM fixes WHERE verified AND is_concurrency_bug "
                          "AND annotator LIKE 'llm/%'")
