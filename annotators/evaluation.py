"""Measuring the miner and an annotator against hand-labeled commits (pure)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
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
    files: tuple[str, ...] = ()
    fix_location: str | None = None  # "path: function, function; path: ..." (free text)


@dataclass(frozen=True)
class Prediction:
    """What the warehouse says about one commit."""

    matched_terms: tuple[str, ...]
    is_concurrency_bug: bool | None  # None: matched but not labeled by this annotator
    bug_type: str | None
    scope: str | None
    location_file: str | None = None
    location_function: str | None = None
    checks_passed: bool | None = None
    explanation: str | None = None
    n_steps: int | None = None
    canonical: tuple[str, str] | None = None  # (repo, sha) of the copy a cherry-pick repeats
    # The located function under its other arity when the fix changed its arity (stop/1
    # removed, stop/2 added in the same file): a gold label may name either side.
    location_aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class GoldPlace:
    """One file of a gold fix_location and the functions it names there: (name, arity),
    arity None when the gold leaves it open; an ExUnit test is ('test "description"', None)."""

    path: str
    functions: tuple[tuple[str, int | None], ...]


_PARENS = re.compile(r"\([^()]*\)")
_TEST = re.compile(r'\btest\s+"(?:[^"\\]|\\.)*"')
_GOLD_FUNCTION = re.compile(r"^(?:([a-z_][\w?!]*)\s*/\s*(\d+)?|([a-z_][\w?!]*)$)")


def parse_fix_location(text: str | None) -> list[GoldPlace]:
    """The places a gold fix_location names. Its text is free-form ("lib/a.ex: f/2, g/1
    (note); test/b_test.exs: test \"x\""): a function counts only for a test "description"
    or an item that starts with name/arity or is one bare identifier; anything else (prose,
    a JavaScript method) names the file only."""
    places = []
    for segment in (text or "").split("; "):
        path, _, rest = segment.partition(": ")
        path = path.strip()
        if not path or " " in path or "." not in path.rsplit("/", 1)[-1]:
            continue
        functions: list[tuple[str, int | None]] = [
            (re.sub(r"\s+", " ", t), None) for t in _TEST.findall(rest)]
        flat = _TEST.sub("", rest)
        while _PARENS.search(flat):  # notes in parentheses name no function of their own
            flat = _PARENS.sub("", flat)
        for item in re.split(r",\s*|\s+and\s+", flat):
            m = _GOLD_FUNCTION.match(item.strip())
            if m:
                name = m.group(1) or m.group(3)
                functions.append((name, int(m.group(2)) if m.group(2) else None))
        places.append(GoldPlace(path, tuple(functions)))
    return places


def location_matches(places: Sequence[GoldPlace], file: str | None, function: str | None,
                     aliases: Sequence[str] = ()) -> tuple[bool, bool | None]:
    """(the file is a gold place, the function is one the gold names there); the second is
    None when the gold names no function at all. aliases are the function's other arities
    when the change gave it a new one: the gold may name the function on either side."""
    named = any(p.functions for p in places)
    if file is None:
        return False, False if named else None
    hits = [p for p in places if p.path == file or fnmatchcase(file, p.path)]
    if not named:
        return bool(hits), None
    if not function:
        return bool(hits), False
    arities = {function.partition("/")[2], *(a.partition("/")[2] for a in aliases)}
    name = function.partition("/")[0]
    for place in hits:
        for gold_name, gold_arity in place.functions:
            if gold_name.startswith("test "):
                # ExUnit names a test in a describe block "describe name".
                if function == gold_name or function.endswith(" " + gold_name[5:].lstrip('"')):
                    return True, True
            elif name == gold_name and (gold_arity is None or str(gold_arity) in arities):
                return True, True
    return bool(hits), False


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
    location_file_accuracy: Rate  # over true positives whose gold names a place
    location_function_accuracy: Rate  # over those whose gold names a function there
    checks_passed: Rate  # predicted fixes whose label passed the trace checks
    with_steps: Rate  # predicted fixes whose label has event steps
    steps_checked: Rate  # of those, the labels that passed the trace checks
    explained: Rate  # predicted fixes with an explanation
    repeated_explanations: int  # predicted fixes whose explanation another fix shares
    pattern_precision: dict[str, Rate]
    confusion: dict[str, dict[str, int]]  # gold type -> predicted type -> count
    per_repo: dict[str, dict[str, Rate]] = field(default_factory=dict)  # precision, recall
    macro_precision: float | None = None  # the mean over repositories where it is defined
    macro_recall: float | None = None
    # patterns whose true positives all come from one repository, and that repository
    single_repo_patterns: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0  # gold commits counted once with an earlier copy of the same fix
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
    file_hits = function_hits = file_total = function_total = 0
    predicted_fixes: list[Prediction] = []
    repo_counts: dict[str, Counter[str]] = {}
    term_repos: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for g in gold:
        p = predictions.get((g.repo, g.sha))
        if p is not None and p.canonical is not None:
            if p.canonical in seen:  # a cherry-pick or fork of a fix counted already
                duplicates += 1
                continue
            seen.add(p.canonical)
        counts = repo_counts.setdefault(g.repo, Counter())
        if p is None:
            reason = "commit not matched" if g.repo in mined else "repository not mined"
            missing.append(Missing(g.repo, g.sha, g.subject, g.is_concurrency_fix, reason))
            predicted, predicted_type = False, "(not in warehouse)"
        else:
            predicted = bool(p.is_concurrency_bug)
            predicted_type = p.bug_type or "(unlabeled)"
            if predicted:
                predicted_fixes.append(p)
            for term in p.matched_terms:
                hits = per_term.setdefault(term, [0, 0])
                hits[0] += g.is_concurrency_fix
                hits[1] += 1
                if g.is_concurrency_fix and predicted:
                    term_repos.setdefault(term, set()).add(g.repo)
        confusion.setdefault(g.bug_type.value, Counter())[predicted_type] += 1
        counts["tp" if predicted and g.is_concurrency_fix else "fp" if predicted
               else "fn" if g.is_concurrency_fix else "tn"] += 1
        if predicted and g.is_concurrency_fix:
            tp += 1
            type_ok += predicted_type == g.bug_type.value
            scope_ok += (p is not None and p.scope == "test") == g.in_test_only
            places = parse_fix_location(g.fix_location)
            if places and p is not None:
                in_file, in_function = location_matches(places, p.location_file,
                                                        p.location_function,
                                                        p.location_aliases)
                file_total += 1
                file_hits += in_file
                if in_function is not None:
                    function_total += 1
                    function_hits += in_function
        elif predicted:
            fp += 1
            fps.append(f"{g.repo} {g.sha[:10]} {g.subject}")
        elif g.is_concurrency_fix:
            fn += 1
            fns.append(f"{g.repo} {g.sha[:10]} {g.subject}")
    per_repo = {repo: {"precision": wilson(c["tp"], c["tp"] + c["fp"]),
                       "recall": wilson(c["tp"], c["tp"] + c["fn"])}
                for repo, c in sorted(repo_counts.items())}
    return Report(
        gold=len(gold), precision=wilson(tp, tp + fp), recall=wilson(tp, tp + fn),
        per_repo=per_repo, macro_precision=_mean(r["precision"] for r in per_repo.values()),
        macro_recall=_mean(r["recall"] for r in per_repo.values()),
        single_repo_patterns={t: next(iter(r)) for t, r in sorted(term_repos.items())
                              if len(r) == 1},
        duplicates=duplicates,
        bug_type_accuracy=wilson(type_ok, tp), scope_accuracy=wilson(scope_ok, tp),
        location_file_accuracy=wilson(file_hits, file_total),
        location_function_accuracy=wilson(function_hits, function_total),
        checks_passed=wilson(sum(bool(p.checks_passed) for p in predicted_fixes),
                             len(predicted_fixes)),
        with_steps=wilson(len(stepped := [p for p in predicted_fixes if p.n_steps]),
                          len(predicted_fixes)),
        steps_checked=wilson(sum(bool(p.checks_passed) for p in stepped), len(stepped)),
        explained=wilson(sum(bool(p.explanation) for p in predicted_fixes),
                         len(predicted_fixes)),
        repeated_explanations=_repeated([p.explanation for p in predicted_fixes]),
        pattern_precision={t: wilson(h, n) for t, (h, n) in sorted(per_term.items())},
        confusion={k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
        missing=missing, false_positives=fps, false_negatives=fns)


def _mean(rates: Iterable[Rate]) -> float | None:
    values = [r.value for r in rates if r.value is not None]
    return round(sum(values) / len(values), 4) if values else None


def _repeated(texts: Sequence[str | None]) -> int:
    counts = Counter(t for t in texts if t)
    return sum(n for n in counts.values() if n > 1)


def gold_repo_for(warehouse_repo: str, gold_repos: set[str]) -> str | None:
    """The gold file's name (owner/name) for a warehouse name (host/owner/name), if any."""
    if warehouse_repo in gold_repos:
        return warehouse_repo
    parts = warehouse_repo.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[i:]) in gold_repos:
            return "/".join(parts[i:])
    return None


def build_predictions(rows: Iterable[Sequence[object]], gold_repos: set[str]
                      ) -> dict[tuple[str, str], Prediction]:
    """Predictions keyed by (gold repo name, sha) from warehouse rows: (repo, sha,
    matched_terms, Prediction's label fields in order, canonical repo, canonical sha,
    location aliases)."""
    out = {}
    for repo, sha, terms, *label, canonical_repo, canonical_sha, aliases in rows:
        name = gold_repo_for(str(repo), gold_repos)
        if name is not None:
            out[(name, str(sha))] = Prediction(  # type: ignore[arg-type]
                tuple(terms), *label, canonical=(str(canonical_repo), str(canonical_sha)),
                location_aliases=tuple(aliases or ()))
    return out
