"""What the review pages show, built from the warehouse's records (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from annotators.diffs import HUNK_HEADER, parse_hunks
from warehouse.review import ListQuery

MAX_LINES = 400  # lines per pane at most


def list_query(params: dict[str, str]) -> ListQuery:
    """A ListQuery from a query string; values it cannot use fall back to the defaults."""
    def number(name: str, default: int, top: int) -> int:
        try:
            return max(1, min(top, int(params.get(name, default))))
        except ValueError:
            return default

    try:
        min_confidence = float(params["min_conf"]) if params.get("min_conf") else None
    except ValueError:
        min_confidence = None
    return ListQuery(
        kind=params.get("kind", "fixes") or "fixes", repo=params.get("repo") or None,
        text=params.get("text") or None, min_confidence=min_confidence,
        bug_type=params.get("bug_type") or None, scope=params.get("scope") or None,
        annotator=params.get("annotator") or None, checks=params.get("checks") or None,
        review=params.get("review") or None, sort=params.get("sort", "date") or "date",
        descending=params.get("dir", "desc") != "asc", page=number("page", 1, 10**7),
        size=number("size", 50, 500))


def query_string(query: ListQuery, **changes: Any) -> str:
    """The query string of query with some values changed (empty ones left out)."""
    values = {"kind": query.kind, "repo": query.repo, "bug_type": query.bug_type,
              "scope": query.scope, "annotator": query.annotator, "checks": query.checks,
              "review": query.review, "text": query.text, "min_conf": query.min_confidence,
              "sort": query.sort,
              "dir": "desc" if query.descending else "asc", "page": query.page,
              "size": query.size, **changes}
    return urlencode({k: v for k, v in values.items() if v not in (None, "")})


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    changed: bool


@dataclass(frozen=True)
class Pane:
    """One side of the side-by-side view."""

    title: str
    lines: tuple[Line, ...]


def _function_lines(text: str | None, start: int, changed: set[int]) -> tuple[Line, ...]:
    rows = (text or "").split("\n")[:MAX_LINES]
    return tuple(Line(start + n, row, start + n in changed) for n, row in enumerate(rows))


def _diff_lines(diff: str | None) -> tuple[tuple[Line, ...], tuple[Line, ...]]:
    """Both sides of a unified diff, context included; a gap between hunks is a line
    numbered 0."""
    before: list[Line] = []
    after: list[Line] = []
    old = new = 0
    for row in (diff or "").split("\n"):
        head = HUNK_HEADER.match(row)
        if head:
            if before or after:
                before.append(Line(0, "…", False))
                after.append(Line(0, "…", False))
            old, new = int(head[1]), int(head[3])
        elif not old and not new:
            continue
        elif row.startswith("-"):
            before.append(Line(old, row[1:], True))
            old += 1
        elif row.startswith("+"):
            after.append(Line(new, row[1:], True))
            new += 1
        elif row.startswith(" "):
            before.append(Line(old, row[1:], False))
            after.append(Line(new, row[1:], False))
            old, new = old + 1, new + 1
    return tuple(before[:MAX_LINES]), tuple(after[:MAX_LINES])


def panes(file: dict[str, Any], function: dict[str, Any] | None) -> tuple[Pane, Pane]:
    """The before and after of a function (or, without one, the file's diff with its
    context), with the lines the diff removed and added marked."""
    if function is None:
        before, after = _diff_lines(file.get("diff"))
        return Pane("before", before), Pane("after", after)
    hunks = parse_hunks(file.get("diff"))
    removed = {n for h in hunks for n, _ in h.removed}
    added = {n for h in hunks for n, _ in h.added}
    name = function["function"]
    return (Pane(f"before · {name}", _function_lines(function["before"],
                                                      function["before_start"] or 1, removed)
                 if function["before"] is not None else ()),
            Pane(f"after · {name}", _function_lines(function["after"],
                                                     function["after_start"] or 1, added)
                 if function["after"] is not None else ()))


def shown(record: dict[str, Any], label: dict[str, Any] | None, path: str | None,
          function: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The file and function the page shows: the ones asked for (a file alone: around its
    changes), else the label's location, else the file's first changed function."""
    files = [f for f in record["files"] if f["skipped_reason"] is None]
    if not files:
        return None, None
    default = path is None
    if default:
        path, function = (label or {}).get("location_file"), (label or {}).get(
            "location_function")
    file = next((f for f in files if f["path"] == path), files[0])
    functions = [g for g in record["functions"] if g["path"] == file["path"]]
    chosen = next((g for g in functions if g["function"] == function), None)
    if chosen is None and default and functions:
        chosen = next((g for g in functions if g["change"] == "modified"), functions[0])
    return file, chosen
