"""The review use cases: record a person's decision on a label, and write the decisions as a
gold file that `racemine eval` scores any annotator against."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from annotators.schema import Action, BugType, EventStep, Scope, render_step
from flows.settings import Settings
from warehouse.db import open_warehouse
from warehouse.errors import WarehouseError
from warehouse.review import gold_rows, labeled_as_fix, save_review

DECISIONS = ("accept", "reject", "correct")


class ReviewInputError(WarehouseError):
    """A decision the page sent that cannot be stored as it is."""


@dataclass(frozen=True)
class Decision:
    """What a reviewer decided on one commit; empty fields leave the label's value."""

    repo: str
    sha: str
    decision: str
    annotator: str | None = None
    bug_type: str = ""
    scope: str = ""
    location_file: str = ""
    location_function: str = ""
    steps: str = ""  # one step a line: actor | action | target | file:line | function | note
    note: str = ""


def reviewer_name(settings: Settings) -> str:
    return settings.reviewer or getpass.getuser()


def parse_steps(text: str) -> list[EventStep]:
    """Steps from the correction box, one a line: `actor | action | target | file:line |
    function | note` (trailing fields may be left out)."""
    steps = []
    for number, line in enumerate((x for x in text.splitlines() if x.strip()), 1):
        fields = [f.strip() for f in line.split("|")] + [""] * 6
        actor, action, target, place, function, note = fields[:6]
        path, _, line_no = place.rpartition(":") if ":" in place else (place, "", "")
        try:
            steps.append(EventStep(
                actor=actor, action=Action(action.lower()), target=target or None,
                file=path or None, line=int(line_no) if line_no.strip() else None,
                function=function or None, note=note))
        except (ValueError, ValidationError):
            actions = ", ".join(a.value for a in Action)
            raise ReviewInputError(
                f"step {number} ({line.strip()[:60]!r}): write it as actor | action | target "
                f"| file:line | function | note, with an action among {actions}") from None
    return steps


def steps_text(steps: list[dict[str, Any]] | None) -> str:
    """Stored steps in the format parse_steps reads back, one a line."""
    lines = []
    for s in steps or []:
        place = (s.get("file") or "") + (f":{s['line']}" if s.get("line") else "")
        lines.append(" | ".join([s.get("actor") or "", s.get("action") or "",
                                 s.get("target") or "", place, s.get("function") or "",
                                 s.get("note") or ""]).rstrip(" |"))
    return "\n".join(lines)


def record_decision(settings: Settings, decision: Decision) -> None:
    """Store one decision (replacing the commit's earlier one); a correction keeps only the
    fields the reviewer filled in."""
    if decision.decision not in DECISIONS:
        raise ReviewInputError(f"decision {decision.decision!r}: use accept, reject or correct")
    correct = decision.decision == "correct"
    bug_type = decision.bug_type.strip() if correct else ""
    scope = decision.scope.strip() if correct else ""
    if bug_type and bug_type not in {b.value for b in BugType}:
        raise ReviewInputError(f"bug type {bug_type!r}: use one of "
                               f"{', '.join(b.value for b in BugType)}")
    if scope and scope not in {s.value for s in Scope}:
        raise ReviewInputError(f"scope {scope!r}: use production or test")
    steps = parse_steps(decision.steps) if correct and decision.steps.strip() else None
    with open_warehouse(settings.warehouse, read_only=True) as con:
        found = labeled_as_fix(con, decision.repo, decision.sha, decision.annotator)
    if found is None:
        raise ReviewInputError(f"commit {decision.sha[:12]} of {decision.repo}: not in the "
                               "warehouse; reload the list")
    # Accept: the label is right, fix or not. Reject: not a concurrency fix. Correct: a
    # bug type says which, else the label's answer stands.
    is_fix = {"accept": found, "reject": False}.get(
        decision.decision, bug_type != "not_concurrency" if bug_type else found)
    row = {
        "repo": decision.repo, "sha": decision.sha, "decision": decision.decision,
        "annotator": decision.annotator, "is_concurrency_bug": is_fix,
        "bug_type": bug_type or (None if is_fix else "not_concurrency"),
        "scope": scope or None,
        "location_file": (decision.location_file.strip() or None) if correct else None,
        "location_function": (decision.location_function.strip() or None) if correct else None,
        "steps": None if steps is None else [
            {"step": n, "actor": s.actor, "action": s.action.value, "target": s.target,
             "file": s.file, "function": s.function, "line": s.line, "note": s.note}
            for n, s in enumerate(steps, 1)],
        "event_sequence": None if steps is None else [
            render_step(n, s) for n, s in enumerate(steps, 1)],
        "note": decision.note.strip() or None, "reviewer": reviewer_name(settings)}
    with open_warehouse(settings.warehouse) as con:
        save_review(con, row)


def export_gold(settings: Settings, out: Path) -> int:
    """Write every decision as a line of the gold format of shared/eval; returns the count."""
    with open_warehouse(settings.warehouse, read_only=True) as con:
        rows = gold_rows(con)
    lines = []
    for r in rows:
        fix = bool(r["is_concurrency_bug"])
        place = r["final_file"]
        lines.append(json.dumps({
            "repo": r["repo"].removeprefix("github.com/"), "sha": r["sha"],
            "subject": r["subject"], "is_concurrency_fix": fix,
            "in_test_only": fix and r["final_scope"] == "test",
            "bug_type": (r["final_bug_type"] or "other_concurrency") if fix
            else "not_concurrency",
            "files": list(r["files"] or []),
            "fix_location": (f"{place}: {r['final_function']}" if r["final_function"]
                             else place) if fix and place else None,
            "confidence": "high", "rationale": r["note"] or "",
            "reviewer": r["reviewer"], "decision": r["decision"],
            "reviewed_at": r["reviewed_at"].isoformat()}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), "utf-8")
    return len(lines)
