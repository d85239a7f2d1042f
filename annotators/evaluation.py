"""Measuring the miner and an annotator against hand-labeled commits (pure)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from annotators.errors import EvalFileError
from annotators.schema import BugType


class GoldCommit(BaseModel):
    """One hand-labeled commit (the format of shared/eval/devset.jsonl)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    repo: str
    sha: str
    subject: str = ""
    is_concurrency_fix: bool
    in_test_only: bool = False
    bug_type: BugType
    confidence: Literal["high", "medium", "low"] = "high"


@dataclass(frozen=True)
class Prediction:
    """What the warehouse says about one commit."""

    matched_terms: tuple[str, ...]
    is_concurrency_bug: bool | None  # None: matched but not labeled by this annotator
    bug_type: str | None
    scope: str | None


def load_gold(path: Path) -> list[GoldCommit]:
    """Parse a JSONL gold file; a bad line is reported with its number."""
    rows = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise EvalFileError(f"gold file {path}: cannot be read ({exc.strerror})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(GoldCommit.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise EvalFileError(f"gold file {path}, line {number}: {first['loc']} "
                                f"{first['msg']}; fix that row") from exc
    return rows


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson 95% confidence interval."""

    hits: int
    total: int
    value: float | None
    low: float | None
    high: float | None


def wilson(hits: int, total: int, z: float = 1.959964) -> Rate:
    """hits/total with the Wilson score interval (sound for small samples and 0 or 1)."""
    if total == 0:
        return Rate(hits, total, None, None, None)
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Rate(hits, total, round(p, 4), round(max(0.0, centre - half), 4),
                round(min(1.0, centre + half), 4))


@dataclass(frozen=True)
class Missing:
    repo: str
    sha: str
    subject: str
    is_concurrency_fix: bool
    reason: str


@dataclass(frozen=True)
class Report:
    gold: int
    precision: Rate
    recall: Rate
    bug_type_accuracy: Rate  # over true positives
    scope_accuracy: Rate  # over true positives
    pattern_precision: dict[str, Rate]
    confusion: dict[str, dict[str, int]]  # gold type -> predicted type -> count
    missing: list[Missing] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)
    # gold repositories (owner/name) no warehouse name matched, and the names it holds
    repos_not_found: list[str] = field(default_factory=list)
    warehouse_repos: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def evaluate(gold: Sequence[GoldCommit], predictions: dict[tuple[str, str], Prediction],
             mined_repos: Iterable[str]) -> Report:
    """Compare gold labels with predictions keyed by (gold repo, sha).

    A gold commit absent from the warehouse counts as predicted "not a fix" (the miner
    dropped it) and is listed with the reason; so recall covers classifier and annotator.
    """
    mined = set(mined_repos)
    tp = fp = fn = 0
    type_ok = scope_ok = 0
    confusion: dict[str, Counter[str]] = {}
    per_term: dict[str, list[int]] = {}
    missing, fps, fns = [], [], []
    for g in gold:
        p = predictions.get((g.repo, g.sha))
        if p is None:
            reason = "commit not matched" if g.repo in mined else "repository not mined"
            missing.append(Missing(g.repo, g.sha, g.subject, g.is_concurrency_fix, reason))
            predicted, predicted_type = False, "(not in warehouse)"
        else:
            predicted = bool(p.is_concurrency_bug)
            predicted_type = p.bug_type or "(unlabeled)"
            for term in p.matched_terms:
                counts = per_term.setdefault(term, [0, 0])
                counts[0] += g.is_concurrency_fix
                counts[1] += 1
        confusion.setdefault(g.bug_type.value, Counter())[predicted_type] += 1
        if predicted and g.is_concurrency_fix:
            tp += 1
            type_ok += predicted_type == g.bug_type.value
            scope_ok += (p is not None and p.scope == "test") == g.in_test_only
        elif predicted:
            fp += 1
            fps.append(f"{g.repo} {g.sha[:10]} {g.subject}")
        elif g.is_concurrency_fix:
            fn += 1
            fns.append(f"{g.repo} {g.sha[:10]} {g.subject}")
    return Report(
        gold=len(gold), precision=wilson(tp, tp + fp), recall=wilson(tp, tp + fn),
        bug_type_accuracy=wilson(type_ok, tp), scope_accuracy=wilson(scope_ok, tp),
        pattern_precision={t: wilson(h, n) for t, (h, n) in sorted(per_term.items())},
        confusion={k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
        missing=missing, false_positives=fps, false_negatives=fns)


def gold_repo_for(warehouse_repo: str, gold_repos: set[str]) -> str | None:
    """The gold file's name (owner/name) for a warehouse name (host/owner/name), if any."""
    if warehouse_repo in gold_repos:
        return warehouse_repo
    parts = warehouse_repo.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[i:]) in gold_repos:
            return "/".join(parts[i:])
    return None


def build_predictions(rows: Iterable[tuple[str, str, Sequence[str], bool | None, str | None,
                                           str | None]], gold_repos: set[str]
                      ) -> dict[tuple[str, str], Prediction]:
    """Predictions keyed by (gold repo name, sha) from warehouse rows."""
    out = {}
    for repo, sha, terms, is_bug, bug_type, scope in rows:
        name = gold_repo_for(repo, gold_repos)
        if name is not None:
            out[(name, sha)] = Prediction(tuple(terms), is_bug, bug_type, scope)
    return out
