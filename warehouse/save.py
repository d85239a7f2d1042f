"""Writes to the warehouse: idempotent upserts on natural keys, in batches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from annotators.schema import Annotation
from miners.classify import Match
from miners.records import CommitFiles, RepoRef
from miners.szz import SZZ_VERSION, Trace
from warehouse.db import transaction

if TYPE_CHECKING:  # httpx, which miners.github needs, is not imported by a mine
    from miners.github import RepoInfo

_KEYS = {
    "commits": ("repo", "sha"),
    "file_changes": ("repo", "sha", "path"),
    "function_changes": ("repo", "sha", "path", "module", "function"),
    "annotations": ("repo", "sha", "target", "annotator"),
    "llm_calls": ("run_id", "repo", "sha", "annotator", "seq"),
    "szz_traces": ("repo", "sha"),
    "szz_candidates": ("repo", "sha", "candidate"),
}


def now() -> datetime:
    return datetime.now(UTC)


def upsert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Mapping[str, Any]],
                *, new: bool = False) -> int:
    """Insert rows, replacing any row with the same natural key; returns rows written.

    new says no stored row can have these keys (a repository's first mine): a plain INSERT
    then does, without OR REPLACE's key lookups (should one exist, the key constraint
    fails the write instead of replacing the row).
    """
    if not rows:
        return 0
    key = _KEYS[table]
    unique = list({tuple(r[k] for k in key): r for r in rows}.values())
    # The rows travel as one list parameter per column, unnested side by side. (An Arrow
    # table would do too, but pyarrow imports pandas, when installed, to build one: a
    # third of a second per process.)
    names = list(unique[0])
    columns = {f"c{i}": [r[name] for r in unique] for i, name in enumerate(names)}
    select = ", ".join(f'unnest(${p}) AS "{name}"' for p, name in zip(columns, names, strict=True))
    verb = "INSERT" if new else "INSERT OR REPLACE"
    con.execute(f"{verb} INTO {table} BY NAME SELECT {select}", columns)
    return len(unique)


def start_run(con: duckdb.DuckDBPyConnection, kind: str, parameters: Mapping[str, Any]) -> str:
    """Record a run as started and return its id; parameters must hold no secrets."""
    run_id = uuid.uuid4().hex
    con.execute(
        "INSERT INTO runs (run_id, kind, started_at, status, parameters) VALUES (?, ?, ?, ?, ?)",
        [run_id, kind, now(), "running", json.dumps(dict(parameters), default=str)],
    )
    return run_id


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, *, status: str,
               counts: Mapping[str, Any], errors: Sequence[str] = ()) -> None:
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, counts = ?, errors = ? WHERE run_id = ?",
        [now(), status, json.dumps(dict(counts)), list(errors), run_id],
    )


def save_repo(con: duckdb.DuckDBPyConnection, ref: RepoRef) -> None:
    """Make sure the repository has a row; discovery facts already stored are kept."""
    con.execute(
        """INSERT INTO repos (repo, url, local_path) VALUES (?, ?, ?)
           ON CONFLICT (repo) DO UPDATE SET url = coalesce(excluded.url, repos.url),
               local_path = coalesce(excluded.local_path, repos.local_path)""",
        [ref.name, ref.url, ref.git_dir if ref.is_local else None],
    )


def save_high_water_mark(con: duckdb.DuckDBPyConnection, repo: str, head: str | None,
                         tips: Sequence[str]) -> None:
    """Remember what this mine covered, so the next one starts after it."""
    con.execute(
        "UPDATE repos SET last_mined_sha = ?, mined_tips = ?, last_mined_at = ? WHERE repo = ?",
        [head, list(tips), now(), repo],
    )


def save_license(con: duckdb.DuckDBPyConnection, repo: str, spdx: str | None,
                 source: str | None) -> None:
    """Record the license read from the repository's files; GitHub's answer is kept."""
    con.execute(
        """UPDATE repos SET license = ?, license_source = ?
           WHERE repo = ? AND license_source IS DISTINCT FROM 'github'""",
        [spdx, source, repo],
    )


def build_commit_rows(repo: str, run_id: str, batch: Iterable[tuple[CommitFiles, Match]],
                      patch_ids: Mapping[str, str] | None = None
                      ) -> dict[str, list[dict[str, Any]]]:
    """Rows for commits, file_changes and function_changes from mined records (pure)."""
    patch_ids = patch_ids or {}
    commit_rows, file_rows, function_rows = [], [], []
    for item, match in batch:
        c = item.commit
        commit_rows.append({
            "repo": repo, "sha": c.sha, "parents": list(c.parents), "is_merge": c.is_merge,
            "author_name": c.author_name, "author_date": c.author_date,
            "committer_date": c.committer_date, "subject": c.subject, "message": c.message,
            "matched_terms": list(match.terms), "match_score": match.score,
            "n_files": len(item.files), "patch_id": patch_ids.get(c.sha),
            "run_id": run_id,
        })
        for f in item.files:
            file_rows.append({
                "repo": repo, "sha": c.sha, "path": f.path, "old_path": f.old_path,
                "change_type": str(f.change_type), "language": f.language,
                "is_test": f.is_test, "before": f.before, "after": f.after, "diff": f.diff,
                "lines_added": f.lines_added, "lines_removed": f.lines_removed,
                "skipped_reason": str(f.skipped_reason) if f.skipped_reason else None,
                "parse_status": str(f.parse_status) if f.parse_status else None,
                "run_id": run_id,
            })
            for fn in f.functions:
                function_rows.append({
                    "repo": repo, "sha": c.sha, "path": f.path, "module": fn.module,
                    "function": fn.name, "kind": fn.kind, "change": fn.change,
                    "before_start": fn.before.start_line if fn.before else None,
                    "before_end": fn.before.end_line if fn.before else None,
                    "after_start": fn.after.start_line if fn.after else None,
                    "after_end": fn.after.end_line if fn.after else None,
                    "before": fn.before.text if fn.before else None,
                    "after": fn.after.text if fn.after else None,
                    "run_id": run_id,
                })
    return {"commits": commit_rows, "file_changes": file_rows,
            "function_changes": function_rows}


def save_commit_files(con: duckdb.DuckDBPyConnection, repo: str, run_id: str,
                      batch: Iterable[tuple[CommitFiles, Match]],
                      patch_ids: Mapping[str, str] | None = None, *, new: bool = False
                      ) -> tuple[int, int]:
    """Store matching commits and their file pairs; returns (commits, file pairs) written.
    new: none of them is stored yet (see upsert_rows)."""
    rows = build_commit_rows(repo, run_id, batch, patch_ids)
    with transaction(con):
        n_commits = upsert_rows(con, "commits", rows["commits"], new=new)
        n_files = upsert_rows(con, "file_changes", rows["file_changes"], new=new)
        upsert_rows(con, "function_changes", rows["function_changes"], new=new)
    return n_commits, n_files


def save_mined_batch(con: duckdb.DuckDBPyConnection, repo: str, run_id: str,
                     batch: Iterable[tuple[CommitFiles, Match]], patch_ids: Mapping[str, str],
                     annotations: Iterable[tuple[str, str, Annotation]], *, new: bool = False
                     ) -> None:
    """Store a mined batch and its labels (new: none of its commits is stored yet, see
    upsert_rows). No CHECKPOINT per batch: each one recompresses the whole last row group,
    all the file text stored so far, so the cost grows with the square of a mine's size;
    DuckDB checkpoints as its log grows and when it closes."""
    save_commit_files(con, repo, run_id, batch, patch_ids, new=new)
    save_annotations(con, repo, run_id, annotations, new=new)


def save_annotations(con: duckdb.DuckDBPyConnection, repo: str, run_id: str,
                     items: Iterable[tuple[str, str, Annotation]], *, new: bool = False
                     ) -> int:
    """Store labels keyed by (sha, target, annotator); target '' labels the whole commit."""
    rows = []
    created = now()
    for sha, target, ann in items:
        label = ann.label
        loc = label.bug_location if label else None
        rows.append({
            "repo": repo, "sha": sha, "target": target, "annotator": ann.annotator,
            "status": "ok" if label else "failed", "failure": ann.failure,
            "is_concurrency_bug": label.is_concurrency_bug if label else None,
            "bug_type": label.bug_type.value if label else None,
            "scope": label.scope.value if label else None,
            "location_file": loc.file if loc else None,
            "location_function": loc.function if loc else None,
            "location_start": loc.start_line if loc else None,
            "location_end": loc.end_line if loc else None,
            "event_sequence": label.event_text if label else None,
            "steps": _steps(ann) if label else None,
            "analysis": (label.analysis or None) if label else None,
            "explanation_source": ann.explanation_source if label else None,
            "checks_passed": ann.checks.passed if label and ann.checks else None,
            "check_failures": list(ann.checks.failures) if label and ann.checks else None,
            "explanation": label.explanation if label else None,
            "fix_summary": label.fix_summary if label else None,
            "confidence": label.confidence if label else None,
            "evidence": list(ann.evidence), "raw_response": ann.raw_response,
            "tokens_in": ann.tokens_in, "tokens_out": ann.tokens_out,
            "cost_usd": ann.cost_usd, "latency_ms": ann.latency_ms,
            "run_id": run_id, "created_at": created, "input_hash": ann.input_hash,
            "input_note": ann.input_note or None, "is_plausible": ann.is_plausible,
            "critique": ann.critique, "verifier": ann.verifier, "reasks": ann.reasks,
            "extra_fields": json.dumps(ann.extra) if ann.extra else None,
        })
    return upsert_rows(con, "annotations", rows, new=new)


def _steps(ann: Annotation) -> list[dict[str, Any]]:
    """A label's steps as the annotations.steps structs, with each step's check and review."""
    assert ann.label is not None
    checks = ann.checks.steps if ann.checks else ()
    reviews = ann.step_reviews
    rows = []
    for i, step in enumerate(ann.label.event_sequence):
        check = checks[i] if i < len(checks) else None
        review = reviews[i] if i < len(reviews) else None
        rows.append({"step": i + 1, "actor": step.actor, "action": step.action.value,
                     "target": step.target, "file": step.file, "function": step.function,
                     "line": step.line, "note": step.note,
                     "check_ok": check.ok if check else None,
                     "check_failure": check.failure if check else None,
                     "reviewer_ok": review.plausible if review else None,
                     "reviewer_note": review.note if review else None})
    return rows


def save_llm_calls(con: duckdb.DuckDBPyConnection, run_id: str, annotator: str,
                   commits: Iterable[tuple[str, str, Sequence[Mapping[str, Any]]]]) -> int:
    """Append requests to the ledger: (repo, sha, that commit's calls in order) each."""
    created = now()
    rows = [{"run_id": run_id, "repo": repo, "sha": sha, "annotator": annotator, "seq": i,
             "created_at": created, **call}
            for repo, sha, calls in commits for i, call in enumerate(calls)]
    return upsert_rows(con, "llm_calls", rows)


def copy_cached_labels(con: duckdb.DuckDBPyConnection, annotator: str, run_id: str,
                       wanted: Sequence[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """Give (repo, sha) the label this annotator already made for the same input hash
    (a fork, a rebase, a re-mined commit): no request is paid twice. Returns those copied."""
    if not wanted:
        return set()
    repos, shas, hashes = (list(column) for column in zip(*wanted, strict=True))
    # The wanted keys travel as three list parameters: executemany into a temporary table
    # costs a statement per row.
    copied = con.execute(
        """INSERT OR REPLACE INTO annotations BY NAME
           SELECT a.* EXCLUDE (repo, sha, run_id, created_at), w.repo, w.sha,
                  $run AS run_id, current_timestamp AS created_at
           FROM (SELECT unnest($repos) AS repo, unnest($shas) AS sha,
                        unnest($hashes) AS input_hash) w
           JOIN (SELECT * FROM annotations WHERE annotator = $annotator AND status = 'ok'
                   AND input_hash IN (SELECT unnest($hashes))
                 QUALIFY row_number() OVER (PARTITION BY input_hash ORDER BY created_at) = 1
                ) a USING (input_hash)
           RETURNING repo, sha""",
        {"run": run_id, "annotator": annotator, "repos": repos, "shas": shas,
         "hashes": hashes}).fetchall()
    return {(r[0], r[1]) for r in copied}


def save_discovered(con: duckdb.DuckDBPyConnection, repos: Iterable[RepoInfo]) -> int:
    """Upsert discovery facts; what mining recorded (high-water mark) is kept."""
    # One row per repository, however often the search pages repeated it; the rows travel
    # as list parameters unnested side by side (executemany costs ~7 ms a row here).
    unique = list({r.name: r for r in repos}.values())
    if unique:
        columns = {
            "repo": [r.name for r in unique], "url": [r.url for r in unique],
            "language": [r.language.lower() if r.language else None for r in unique],
            "stars": [r.stars for r in unique], "license": [r.license for r in unique],
            "default_branch": [r.default_branch for r in unique],
            "archived": [r.archived for r in unique], "fork": [r.fork for r in unique],
            "pushed_at": [r.pushed_at for r in unique],
            "topics": [list(r.topics) for r in unique], "at": now()}
        con.execute(
            """INSERT INTO repos (repo, url, language, stars, license, license_source,
                                  default_branch, archived, fork, pushed_at, topics,
                                  discovered_at)
               SELECT unnest($repo), unnest($url), unnest($language), unnest($stars),
                      unnest($license), CASE WHEN unnest($license) IS NULL THEN NULL
                                             ELSE 'github' END,
                      unnest($default_branch), unnest($archived), unnest($fork),
                      unnest($pushed_at), unnest($topics), $at
               ON CONFLICT (repo) DO UPDATE SET url = excluded.url,
                   language = excluded.language, stars = excluded.stars,
                   license = coalesce(excluded.license, repos.license),
                   license_source = CASE WHEN excluded.license IS NULL
                                         THEN repos.license_source ELSE 'github' END,
                   default_branch = excluded.default_branch,
                   archived = excluded.archived, fork = excluded.fork,
                   pushed_at = excluded.pushed_at, topics = excluded.topics,
                   discovered_at = excluded.discovered_at""", columns)
    return len(unique)


class WarehousePageCache:
    """ETags and bodies of API pages, kept in the warehouse's http_cache table."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def get(self, url: str) -> tuple[str, str] | None:
        row = self._con.execute("SELECT etag, body FROM http_cache WHERE url = ?",
                                [url]).fetchone()
        return (row[0], row[1]) if row else None

    def put(self, url: str, etag: str, body: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO http_cache VALUES (?, ?, ?, ?)",
                          [url, etag, body, now()])


def save_batch_upload(con: duckdb.DuckDBPyConnection, annotator: str, run_id: str,
                      input_file_id: str, commits: Sequence[tuple[str, str]]) -> str:
    """Record an uploaded batch input file and its commits; returns the row's key."""
    key = uuid.uuid4().hex
    con.execute("INSERT INTO llm_batches VALUES (?, ?, ?, ?, NULL, 'uploaded', ?, ?, ?, NULL)",
                [key, annotator, run_id, input_file_id, [r for r, _ in commits],
                 [s for _, s in commits], now()])
    return key


def save_batch_state(con: duckdb.DuckDBPyConnection, key: str, batch_id: str, status: str
                     ) -> None:
    """A batch accepted by the server (submitted), or finished (collected, failed)."""
    finished = now() if status in ("collected", "failed") else None
    con.execute("UPDATE llm_batches SET batch_id = ?, status = ?, finished_at = ? "
                "WHERE batch_key = ?", [batch_id, status, finished, key])


def save_traces(con: duckdb.DuckDBPyConnection, repo: str, run_id: str,
                traces: Mapping[str, Trace | str]) -> None:
    """Store each traced commit's candidates (a str: why tracing failed), replacing what
    an earlier trace of it stored, in one transaction."""
    if not traces:
        return
    at = now()
    trace_rows, candidate_rows = [], []
    for sha, trace in traces.items():
        failed = isinstance(trace, str)
        found = not failed and bool(trace.candidates)
        trace_rows.append({
            "repo": repo, "sha": sha, "szz_version": SZZ_VERSION,
            "status": "failed" if failed else "found" if found else "none",
            "reason": trace if failed else trace.reason,
            "candidates": 0 if failed else len(trace.candidates),
            "lines_blamed": 0 if failed else trace.lines_blamed,
            "ignored_revs": [] if failed else list(trace.ignored), "run_id": run_id,
            "traced_at": at})
        for c in [] if failed else trace.candidates:
            candidate_rows.append({
                "repo": repo, "sha": sha, "candidate": c.sha, "rank": c.rank,
                "confidence": c.confidence, "method": c.method,
                "lines_blamed": len(c.lines), "lines_in_located": c.in_located,
                "author_date": datetime.fromtimestamp(c.author_time, UTC),
                "subject": c.summary,
                "blamed": [{"path": b.path, "line": b.line, "evidence": b.evidence.value,
                            "function": b.function, "orig_path": b.orig_path,
                            "orig_line": b.orig_line} for b in c.lines]})
    with transaction(con):
        con.execute("DELETE FROM szz_candidates WHERE repo = ? AND sha IN (SELECT unnest(?))",
                    [repo, list(traces)])
        upsert_rows(con, "szz_traces", trace_rows)
        upsert_rows(con, "szz_candidates", candidate_rows)
