"""What the review pages read, and the one table they write: `reviews`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from warehouse.errors import WarehouseInUseError
from warehouse.save import now

# The list's columns a user may sort by, as the SQL that sorts them.
SORTS = {"repo": "repo", "date": "author_date", "subject": "lower(subject)",
         "bug_type": "bug_type", "scope": "scope", "annotator": "annotator",
         "confidence": "confidence", "checks": "checks_passed", "review": "decision"}
KINDS = ("fixes", "non_fixes", "all")
REVIEW_STATES = ("unreviewed", "accept", "reject", "correct", "reviewed")
CHECK_STATES = ("passed", "failed")


@dataclass(frozen=True)
class ListQuery:
    """The list's filters, sort and page, as the page's query string carries them."""

    kind: str = "fixes"
    repo: str | None = None
    bug_type: str | None = None
    scope: str | None = None
    annotator: str | None = None
    checks: str | None = None  # passed | failed
    review: str | None = None  # one of REVIEW_STATES
    text: str | None = None  # in the subject (or the start of the sha), any case
    min_confidence: float | None = None
    sort: str = "date"
    descending: bool = True
    page: int = 1
    size: int = 50

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses = ["true"]
        params: dict[str, Any] = {}
        if self.kind == "fixes":
            clauses.append("is_concurrency_bug")
        elif self.kind == "non_fixes":
            clauses.append("NOT coalesce(is_concurrency_bug, false)")
        for column in ("repo", "bug_type", "scope", "annotator"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = ${column}")
                params[column] = value
        if self.text:
            clauses.append("(contains(lower(subject), lower($text)) "
                           "OR starts_with(sha, lower(trim($text))))")
            params["text"] = self.text
        if self.min_confidence is not None:
            clauses.append("coalesce(confidence, 0) >= $min_confidence")
            params["min_confidence"] = self.min_confidence
        if self.checks in CHECK_STATES:
            clauses.append("checks_passed" if self.checks == "passed"
                           else "NOT coalesce(checks_passed, false)")
        if self.review == "unreviewed":
            clauses.append("decision IS NULL")
        elif self.review == "reviewed":
            clauses.append("decision IS NOT NULL")
        elif self.review in REVIEW_STATES:
            clauses.append("decision = $decision")
            params["decision"] = self.review
        return " AND ".join(clauses), params

    def order(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"{SORTS.get(self.sort, 'author_date')} {direction} NULLS LAST, repo, sha"


_LISTED = """
    SELECT f.repo, f.sha, f.subject, f.author_date, f.is_concurrency_bug, f.bug_type, f.scope,
           f.annotator, f.confidence, f.checks_passed, f.verified, f.introduced_by,
           v.decision, v.reviewer
    FROM {db}fixes f LEFT JOIN {db}reviews v USING (repo, sha)
    WHERE f.is_canonical"""


class ListSnapshot:
    """The list's rows (one per canonical commit, with its newest label and decision) in an
    in-memory DuckDB, so that filtering, sorting and paging cost milliseconds however large
    the warehouse: the views behind them cost a third of a second at 100,000 commits. The
    snapshot is made again whenever the warehouse file has changed (a mine, an annotate);
    a decision made here updates its row in place."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._memory = duckdb.connect()
        self._stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def _files_stamp(self) -> tuple[Any, ...]:
        stamp = []
        for path in (self._path, self._path.with_name(self._path.name + ".wal")):
            try:
                info = path.stat()
                stamp.append((info.st_mtime_ns, info.st_size))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor over an up-to-date `review_list` table."""
        with self._lock:
            stamp = self._files_stamp()
            if stamp != self._stamp:
                quoted = str(self._path).replace("'", "''")
                try:
                    self._memory.execute(f"ATTACH '{quoted}' AS w (READ_ONLY)")
                except duckdb.Error as exc:  # another process is writing it
                    if self._stamp is None:
                        raise WarehouseInUseError(
                            f"warehouse {self._path}: in use by another process; wait for "
                            "it to finish and reload") from exc
                    return self._memory.cursor()  # the last copy, until the writer is done
                try:
                    self._memory.execute("CREATE OR REPLACE TABLE review_list AS "
                                         + _LISTED.format(db="w."))
                finally:
                    self._memory.execute("DETACH w")
                self._stamp = stamp
            return self._memory.cursor()

    def decided(self, repo: str, sha: str, decision: str, reviewer: str) -> None:
        """Show a decision just stored without copying the list again."""
        with self._lock:
            self._memory.execute("UPDATE review_list SET decision = ?, reviewer = ? "
                                 "WHERE repo = ? AND sha = ?", [decision, reviewer, repo, sha])
            self._stamp = self._files_stamp()


def list_page(con: duckdb.DuckDBPyConnection, query: ListQuery
              ) -> tuple[list[dict[str, Any]], int]:
    """One page of a `review_list` table and how many rows the filters leave."""
    where, params = query.where()
    total = con.execute(f"SELECT count(*) FROM review_list WHERE {where}", params).fetchone()[0]
    rows = _dicts(con.execute(
        f"SELECT * FROM review_list WHERE {where} ORDER BY {query.order()} "
        f"LIMIT {int(query.size)} OFFSET {int((query.page - 1) * query.size)}", params))
    return rows, total


def neighbours(con: duckdb.DuckDBPyConnection, query: ListQuery, index: int
               ) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(repo, sha) of the rows before and after the 0-based index in a `review_list`."""
    where, params = query.where()
    start = max(0, index - 1)
    rows = con.execute(f"SELECT repo, sha FROM review_list WHERE {where} "
                       f"ORDER BY {query.order()} LIMIT {index + 2 - start} OFFSET {start}",
                       params).fetchall()
    keyed = {start + n: (r[0], r[1]) for n, r in enumerate(rows)}
    return (keyed.get(index - 1) if index > 0 else None), keyed.get(index + 1)


def facets(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """The values the list's filters offer, from a `review_list` table."""
    return {column: [r[0] for r in con.execute(
                f"SELECT DISTINCT {column} FROM review_list WHERE {column} IS NOT NULL "
                "ORDER BY 1").fetchall()]
            for column in ("repo", "bug_type", "scope", "annotator")}


def fix_record(con: duckdb.DuckDBPyConnection, repo: str, sha: str) -> dict[str, Any] | None:
    """Everything one fix page shows: the commit, its labels (newest first), files,
    functions, SZZ candidates and the decision, or None when the commit is not stored."""
    key = [repo, sha]
    commit = _dicts(con.execute(
        """SELECT c.repo, c.sha, c.subject, c.message, c.author_name, c.author_date,
                  c.matched_terms, t.status AS szz_status, t.reason AS szz_reason
           FROM commits c LEFT JOIN szz_traces t USING (repo, sha)
           WHERE c.repo = ? AND c.sha = ?""", key))
    if not commit:
        return None
    record = commit[0]
    record["labels"] = _dicts(con.execute(
        """SELECT target, annotator, is_concurrency_bug, bug_type, scope, location_file,
                  location_function, location_start, location_end, steps, explanation,
                  explanation_source, fix_summary, confidence, checks_passed, check_failures,
                  is_plausible, critique, verifier, analysis, created_at
           FROM annotations WHERE repo = ? AND sha = ? AND status = 'ok'
           ORDER BY created_at DESC, annotator, target""", key))
    record["files"] = _dicts(con.execute(
        # Not the whole texts: reading one of them costs a scan of the column (~0.1 s on
        # 21 repositories); the diff and the functions' own texts are what the page shows.
        """SELECT path, old_path, change_type, language, is_test, diff, skipped_reason
           FROM file_changes WHERE repo = ? AND sha = ? ORDER BY is_test, path""", key))
    record["functions"] = _dicts(con.execute(
        """SELECT path, module, function, kind, change, before_start, before_end, after_start,
                  after_end, before, after
           FROM function_changes WHERE repo = ? AND sha = ?
           ORDER BY path, coalesce(before_start, after_start)""", key))
    record["candidates"] = _dicts(con.execute(
        """SELECT candidate, rank, confidence, method, lines_blamed, subject, author_date
           FROM szz_candidates WHERE repo = ? AND sha = ? ORDER BY rank""", key))
    decision = _dicts(con.execute("SELECT * FROM reviews WHERE repo = ? AND sha = ?", key))
    record["review"] = decision[0] if decision else None
    return record


def labeled_as_fix(con: duckdb.DuckDBPyConnection, repo: str, sha: str,
                   annotator: str | None) -> bool | None:
    """Whether annotator's label (without one, the newest annotator's) calls the commit a
    concurrency fix, its most confident label as `commit_labels` picks it, or None
    when the commit is not stored. Read from the tables for this one commit: the views would
    label every commit first."""
    if con.execute("SELECT 1 FROM commits WHERE repo = ? AND sha = ?", [repo, sha]
                   ).fetchone() is None:
        return None
    if annotator is None:
        newest = con.execute("SELECT annotator FROM annotations WHERE repo = ? AND sha = ? "
                             "AND status = 'ok' ORDER BY created_at DESC, annotator LIMIT 1",
                             [repo, sha]).fetchone()
        annotator = newest[0] if newest else None
    row = con.execute(
        """SELECT coalesce(is_concurrency_bug, false) FROM annotations
           WHERE repo = ? AND sha = ? AND annotator = ? AND status = 'ok'
           ORDER BY is_concurrency_bug DESC, confidence DESC NULLS LAST, target LIMIT 1""",
        [repo, sha, annotator]).fetchone()
    return bool(row[0]) if row else False


def save_review(con: duckdb.DuckDBPyConnection, row: Mapping[str, Any]) -> None:
    """Store a decision, replacing the commit's earlier one."""
    values = {**row, "reviewed_at": now()}
    columns = ", ".join(f'"{c}"' for c in values)
    marks = ", ".join(f"${c}" for c in values)
    con.execute(f"INSERT OR REPLACE INTO reviews ({columns}) VALUES ({marks})", values)


def gold_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every decision with what the gold format needs: subject and changed files."""
    return _dicts(con.execute(
        """SELECT v.*, c.subject,
                  coalesce(v.bug_type, l.bug_type) AS final_bug_type,
                  coalesce(v.scope, l.scope) AS final_scope,
                  coalesce(v.location_file, l.location_file) AS final_file,
                  coalesce(v.location_function, l.location_function) AS final_function,
                  (SELECT list(path ORDER BY path) FROM file_changes x
                   WHERE x.repo = v.repo AND x.sha = v.sha) AS files
           FROM reviews v JOIN commits c USING (repo, sha)
           LEFT JOIN fixes l USING (repo, sha)
           ORDER BY v.reviewed_at, v.repo, v.sha"""))


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names: Sequence[str] = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
