"""Pure commit-message classification: named, weighted, word-bounded patterns.

racemine's own patterns run on Python's `re`, the fastest engine for short texts; they are
shipped and tested. A user's pattern file runs on RE2, whose time is linear in the message
whatever the pattern: a commit message is text written by strangers, and a pattern such as
`(a+)+$` must not wedge a scheduled run on one of them. A pattern RE2 cannot take
(look-arounds, back-references) is refused when the file is read.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from miners.errors import PatternFileError


class Regex(Protocol):
    """What the classifier asks of a compiled pattern (Python's re or RE2)."""

    def search(self, text: str) -> Any: ...

    def sub(self, repl: Callable[[Any], str], text: str) -> str: ...

    @property
    def pattern(self) -> str: ...


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: Regex
    weight: float
    context: bool = False
    source: str = ""  # the regex as written, case-insensitive unless case_sensitive
    case_sensitive: bool = False


@dataclass(frozen=True)
class PatternSet:
    patterns: tuple[Pattern, ...]
    exclusions: tuple[Regex, ...]
    min_score: float
    source: str  # where the set came from, for run provenance
    # One alternation of every non-context pattern: a message it does not hit cannot match,
    # and most messages are rejected by this single search.
    prefilter: Regex
    linear: bool = False  # compiled for RE2 (a user's file): git's backtracking grep is unsafe


@dataclass(frozen=True)
class Match:
    matched: bool
    terms: tuple[str, ...]  # names of non-context patterns that matched, in file order
    score: float


def _compile(regex: object, case_sensitive: bool, name: object, where: str,
             linear: bool) -> Regex:
    if not isinstance(regex, str) or not regex:
        raise PatternFileError(f"{where}: entry {name!r} has no regex; add one")
    if linear:
        import re2  # google-re2: imported only for a user's pattern file

        options = re2.Options()
        options.log_errors = False
        options.case_sensitive = case_sensitive
        try:
            return re2.compile(regex, options)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) \
                else str(exc)
            raise PatternFileError(
                f"{where}: regex of {name!r} uses what the linear-time engine (RE2) cannot "
                f"run ({reason}); rewrite it without look-arounds or back-references") from exc
    try:
        return re.compile(regex, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise PatternFileError(
            f"{where}: regex of {name!r} does not compile ({exc}); fix it") from exc


def build_pattern_set(text: str, source: str, linear: bool = True) -> PatternSet:
    """Parse a TOML pattern file's text into a PatternSet, for RE2 unless linear is False
    (racemine's own, tested patterns)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PatternFileError(f"pattern file {source}: not valid TOML ({exc}); fix it") from exc
    patterns = []
    for entry in data.get("pattern", []):
        name = entry.get("name")
        where = f"pattern file {source}"
        if not isinstance(name, str):
            raise PatternFileError(f"pattern file {source}: a [[pattern]] has no name; add one")
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, int | float):
            raise PatternFileError(f"pattern file {source}: weight of {name!r} is not a number")
        regex, sensitive = entry.get("regex"), bool(entry.get("case_sensitive"))
        patterns.append(Pattern(name, _compile(regex, sensitive, name, where, linear),
                                float(weight), bool(entry.get("context", False)), str(regex),
                                sensitive))
    if not patterns:
        raise PatternFileError(f"pattern file {source}: defines no [[pattern]]; add at least one")
    exclusions = tuple(_compile(e.get("regex"), bool(e.get("case_sensitive")), e.get("name"),
                                where, linear) for e in data.get("exclusion", []))
    prefilter = _compile("|".join(
        f"(?:{p.source})" if p.case_sensitive else f"(?i:{p.source})"
        for p in patterns if not p.context), True, "prefilter", where, linear)
    return PatternSet(tuple(patterns), exclusions, float(data.get("min_score", 1.0)), source,
                      prefilter, linear)


def load_pattern_set(path: Path | None = None) -> PatternSet:
    """The pattern set in path, or racemine's defaults when path is None."""
    if path is None:
        text = resources.files("miners").joinpath("patterns.toml").read_text("utf-8")
        return build_pattern_set(text, "default", linear=False)
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise PatternFileError(f"pattern file {path}: cannot be read ({exc.strerror})") from exc
    return build_pattern_set(text, str(path))


def _blank(text: str, exclusions: tuple[Regex, ...]) -> str:
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
