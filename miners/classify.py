"""Pure commit-message classification: named, weighted, word-bounded patterns."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from miners.errors import PatternFileError


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern[str]
    weight: float
    context: bool = False


@dataclass(frozen=True)
class PatternSet:
    patterns: tuple[Pattern, ...]
    exclusions: tuple[re.Pattern[str], ...]
    min_score: float
    source: str  # where the set came from, for run provenance
    # One alternation of every non-context pattern: a message it does not hit cannot match,
    # and most messages are rejected by this single search.
    prefilter: re.Pattern[str]


@dataclass(frozen=True)
class Match:
    matched: bool
    terms: tuple[str, ...]  # names of non-context patterns that matched, in file order
    score: float


def _compile(entry: dict[str, object], where: str) -> re.Pattern[str]:
    regex = entry.get("regex")
    if not isinstance(regex, str) or not regex:
        raise PatternFileError(f"{where}: entry {entry.get('name')!r} has no regex; add one")
    flags = 0 if entry.get("case_sensitive") else re.IGNORECASE
    try:
        return re.compile(regex, flags)
    except re.error as exc:
        raise PatternFileError(
            f"{where}: regex of {entry.get('name')!r} does not compile ({exc}); fix it"
        ) from exc


def build_pattern_set(text: str, source: str) -> PatternSet:
    """Parse a TOML pattern file's text into a PatternSet."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PatternFileError(f"pattern file {source}: not valid TOML ({exc}); fix it") from exc
    patterns = []
    for entry in data.get("pattern", []):
        name = entry.get("name")
        if not isinstance(name, str):
            raise PatternFileError(f"pattern file {source}: a [[pattern]] has no name; add one")
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, int | float):
            raise PatternFileError(f"pattern file {source}: weight of {name!r} is not a number")
        patterns.append(Pattern(name, _compile(entry, f"pattern file {source}"),
                                float(weight), bool(entry.get("context", False))))
    if not patterns:
        raise PatternFileError(f"pattern file {source}: defines no [[pattern]]; add at least one")
    exclusions = tuple(_compile(e, f"pattern file {source}") for e in data.get("exclusion", []))
    prefilter = re.compile("|".join(
        f"(?i:{p.regex.pattern})" if p.regex.flags & re.IGNORECASE else f"(?:{p.regex.pattern})"
        for p in patterns if not p.context))
    return PatternSet(tuple(patterns), exclusions, float(data.get("min_score", 1.0)), source,
                      prefilter)


def load_pattern_set(path: Path | None = None) -> PatternSet:
    """The pattern set in path, or racemine's defaults when path is None."""
    if path is None:
        text = resources.files("miners").joinpath("patterns.toml").read_text("utf-8")
        return build_pattern_set(text, "default")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise PatternFileError(f"pattern file {path}: cannot be read ({exc.strerror})") from exc
    return build_pattern_set(text, str(path))


def _blank(text: str, exclusions: tuple[re.Pattern[str], ...]) -> str:
    for ex in exclusions:
        text = ex.sub(lambda m: " " * len(m.group(0)), text)
    return text


def classify_message(message: str, patterns: PatternSet) -> Match:
    """Which patterns a commit message matches and whether their weight reaches min_score."""
    if not patterns.prefilter.search(message):
        return Match(matched=False, terms=(), score=0.0)
    text = _blank(message, patterns.exclusions)
    terms: list[str] = []
    score = 0.0
    context = 0.0
    for pattern in patterns.patterns:
        if pattern.regex.search(text):
            if pattern.context:
                context += pattern.weight
            else:
                terms.append(pattern.name)
                score += pattern.weight
    if terms:
        score += context
    return Match(matched=bool(terms) and score >= patterns.min_score,
                 terms=tuple(terms), score=round(score, 3))
