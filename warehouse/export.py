"""Dataset exports, read only from the warehouse and written by DuckDB itself (streaming)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import duckdb


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"


class ExportLevel(StrEnum):
    FILE = "file"
    FUNCTION = "function"


# Function pairs carry their commit's label (or their file's, where a file was labeled),
# plus whether the label points at this very function.
_FUNCTION_QUERY = """
    WITH labels AS (
        SELECT * FROM annotations WHERE status = 'ok'
        QUALIFY row_number() OVER (PARTITION BY repo, sha, target
                                   ORDER BY created_at DESC, annotator) = 1
    )
    SELECT g.repo, g.sha, g.path, g.module, g.function, g.kind, g.change,
           g.before_start, g.before_end, g.after_start, g.after_end, g.before, g.after,
           f.language, f.is_test, c.subject, c.message,
           strftime(c.author_date, '%Y-%m-%dT%H:%M:%SZ') AS author_date,
           a.annotator, a.is_concurrency_bug, a.bug_type, a.scope, a.location_file,
           a.location_function, a.location_start, a.location_end, a.event_sequence,
           a.explanation, a.fix_summary, a.confidence,
           coalesce(a.location_file = g.path AND a.location_function = g.function, false)
               AS is_bug_location,
           d.is_canonical, g.run_id
    FROM function_changes g
    JOIN file_changes f USING (repo, sha, path)
    JOIN commits c USING (repo, sha)
    JOIN commit_dedup d USING (repo, sha)
    JOIN labels a ON a.repo = g.repo AND a.sha = g.sha AND a.target IN ('', g.path)
    QUALIFY row_number() OVER (PARTITION BY g.repo, g.sha, g.path, g.module, g.function
                               ORDER BY a.target DESC) = 1
"""


_COLUMNS = """
    repo, sha, path, old_path, change_type, language, is_test, subject, message,
    strftime(author_date, '%Y-%m-%dT%H:%M:%SZ') AS author_date, before, after, diff,
    lines_added, lines_removed, is_canonical, annotator, is_concurrency_bug, bug_type, scope,
    location_file, location_function, location_start, location_end, event_sequence,
    explanation, fix_summary, confidence, run_id
"""


def export_pairs(con: duckdb.DuckDBPyConnection, out: Path, fmt: ExportFormat, *,
                 level: ExportLevel = ExportLevel.FILE, fixes_only: bool = True,
                 min_confidence: float = 0.0, duplicates: bool = False) -> int:
    """Write labeled file or function pairs; returns rows written.

    Rows are ordered by their natural key, so the same warehouse gives the same file.
    A fix present in several branches or forks is exported once (its canonical commit)
    unless duplicates is true.
    """
    where = ["annotator IS NOT NULL", "coalesce(confidence, 0) >= $min_confidence"]
    if not duplicates:
        where.append("is_canonical")
    if fixes_only:
        where.append("is_concurrency_bug")
    if level == ExportLevel.FUNCTION:
        query = f"""SELECT * FROM ({_FUNCTION_QUERY}) WHERE {' AND '.join(where)}
                    ORDER BY repo, sha, path, module, function"""
    else:
        query = f"""
            SELECT {_COLUMNS} FROM pairs
            JOIN (SELECT repo, sha, path, run_id FROM file_changes) USING (repo, sha, path)
            WHERE {' AND '.join(where)} ORDER BY repo, sha, path"""
    params = {"min_confidence": min_confidence}
    out.parent.mkdir(parents=True, exist_ok=True)
    options = "FORMAT json" if fmt == ExportFormat.JSONL else "FORMAT parquet, COMPRESSION zstd"
    tmp = out.with_name(out.name + ".partial")
    # COPY reports the rows it wrote, so the query runs once.
    count = con.execute(f"COPY ({query}) TO '{_quote(tmp)}' ({options})", params).fetchone()
    tmp.replace(out)  # a killed export never leaves a half-written file under the real name
    return int(count[0]) if count else 0


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
