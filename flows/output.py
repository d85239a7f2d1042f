"""What the CLI prints for people: the end-of-run summary, query results, eval reports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the mining code is not imported by `sql` or `stats`; nor rich by CSV
    from rich.console import Console

    from flows.jobs.mining import RepoResult

_COUNTS = (("scanned", "commits_scanned"), ("matched", "matches"), ("pairs", "pairs"),
           ("functions", "functions"), ("skipped", "skipped"))
_LABELS = (("labels", "labels"), ("fixes", "fixes"))


def _counts(r: RepoResult, names: tuple[tuple[str, str], ...]) -> str:
    return " · ".join(f"{title} {getattr(r, key):,}" for title, key in names)


def print_summary(console: Console, results: Sequence[RepoResult], seconds: float,
                  status: str) -> None:
    """What a mine did, a few short lines per repository: readable at 80 columns and in a
    log, where a wide table would wrap."""
    plural = "y" if len(results) == 1 else "ies"
    console.print(f"racemine mine: {len(results)} repositor{plural} in {seconds:.1f} s "
                  f"({status.replace('_', ' ')})", highlight=False, markup=False)
    rows = list(results)
    if len(results) > 1:
        rows.append(replace(results[0], repo="total", error=None, **{
            k: sum(getattr(r, k) for r in results) for _, k in _COUNTS + _LABELS}))
    for r in rows:
        if r.error:
            console.print(f"{r.repo}\n  error: {r.error}", style="red", highlight=False,
                          markup=False, overflow="fold")
            continue
        took = f" · {r.seconds:.1f} s" if r.repo != "total" else ""
        console.print(f"{r.repo}\n  {_counts(r, _COUNTS)}\n  {_counts(r, _LABELS)}{took}",
                      highlight=False, markup=False, overflow="fold")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class OutputFormat(StrEnum):
    """How query results are printed (`racemine sql --format`)."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def csv_text(columns: list[str], rows: list[tuple]) -> str:
    """Query results as CSV, a header row first."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows([[_plain(v) for v in row] for row in rows])
    return buf.getvalue()


def render_rows(console: Console, columns: list[str], rows: list[tuple], fmt: str,
                title: str | None = None) -> None:
    """Print query results as a rich table, CSV, or JSON lines."""
    if fmt == "json":
        for row in rows:
            console.print_json(json.dumps(dict(zip(columns, _plain(list(row)), strict=True)),
                                          ensure_ascii=False), indent=None)
        return
    if fmt == "csv":
        console.out(csv_text(columns, rows), end="", highlight=False)
        return
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        # The first column names the row (a repository, a bug type): keep it on one line.
        table.add_column(col, overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*["" if v is None else str(_plain(v)) for v in row])
    console.print(table)


def _rate(rate: Any) -> str:
    if rate.value is None:
        return "n/a (0 cases)"
    return f"{rate.value:.3f}  [{rate.low:.3f}, {rate.high:.3f}]  ({rate.hits}/{rate.total})"


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_eval(console: Console, report: Any) -> None:
    """The evaluation report as tables: headline rates, patterns, confusion, misses."""
    from rich.table import Table

    head = Table(title=f"racemine eval — {report.gold} gold commits (95% Wilson intervals)")
    head.add_column("measure")
    head.add_column("value  [95% CI]  (hits/total)")
    head.add_row("precision (kept as concurrency fix)", _rate(report.precision))
    head.add_row("recall (kept as concurrency fix)", _rate(report.recall))
    head.add_row("bug-type accuracy (true positives)", _rate(report.bug_type_accuracy))
    head.add_row("scope accuracy (true positives)", _rate(report.scope_accuracy))
    head.add_row("location: file (true positives)", _rate(report.location_file_accuracy))
    head.add_row("location: function (where gold names one)",
                 _rate(report.location_function_accuracy))
    head.add_row("trace checks passed (kept fixes)", _rate(report.checks_passed))
    head.add_row("with event steps (kept fixes)", _rate(report.with_steps))
    head.add_row("trace checks passed (with steps)", _rate(report.steps_checked))
    head.add_row("explained (kept fixes)", _rate(report.explained))
    head.add_row("explanations shared with another fix", str(report.repeated_explanations))
    console.print(head)
    repos = Table(title="per repository (macro mean: precision "
                        f"{_value(report.macro_precision)}, recall {_value(report.macro_recall)})")
    repos.add_column("repository")
    repos.add_column("precision")
    repos.add_column("recall")
    for repo, rates in report.per_repo.items():
        repos.add_row(repo, _rate(rates["precision"]), _rate(rates["recall"]))
    console.print(repos)
    patterns = Table(title="pattern precision (gold fixes among stored commits it matched; "
                           "⚑ every kept fix from one repository)")
    patterns.add_column("pattern")
    patterns.add_column("precision  [95% CI]  (fixes/matched)")
    for name, rate in report.pattern_precision.items():
        only = report.single_repo_patterns.get(name)
        patterns.add_row(f"{name} ⚑ {only}" if only else name, _rate(rate))
    console.print(patterns)
    if report.duplicates:
        console.print(f"{report.duplicates} gold commits are copies (cherry-picks, forks) of "
                      "another and were counted once", highlight=False)
    console.print("[bold]bug type: gold → predicted[/bold]")
    for gold_type, row in report.confusion.items():
        got = " · ".join(f"{p} {n}" for p, n in sorted(row.items(), key=lambda i: -i[1]))
        console.print(f"  {gold_type} ({sum(row.values())}): {got}", highlight=False,
                      markup=False)
    for title, items in (("false positives", report.false_positives),
                         ("false negatives", report.false_negatives)):
        if items:
            console.print(f"[bold]{title}[/bold] ({len(items)})")
            for item in items:
                console.print(f"  {item}", highlight=False, markup=False)
    if report.missing:
        console.print(f"[bold]gold commits not in the warehouse[/bold] ({len(report.missing)})")
        for m in report.missing:
            kind = "fix" if m.is_concurrency_fix else "not a fix"
            console.print(f"  {m.repo} {m.sha[:10]} [{kind}; {m.reason}] {m.subject}",
                          highlight=False, markup=False)
    for repo in report.repos_not_found:
        held = ", ".join(report.warehouse_repos) or "no repository"
        console.print(f"repository {repo}: no warehouse name matched (looked for {repo} and "
                      f"<host>/{repo}; the warehouse holds {held}); mine it, or name a local "
                      f"clone with `racemine mine PATH={repo}`", highlight=False, markup=False)


def render_vertical(console: Console, columns: list[str], rows: list[tuple], title: str) -> None:
    """One small table per row, a measure per line: for wide rows such as LLM cost."""
    from rich.table import Table

    if not rows:
        console.print(f"{title}: nothing recorded yet", highlight=False)
    for row in rows:
        table = Table(title=f"{title}: {row[0]}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for column, value in zip(columns[1:], row[1:], strict=True):
            table.add_row(column, "" if value is None else f"{_plain(value)}")
        console.print(table)
