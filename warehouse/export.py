"""Dataset exports, read only from the warehouse and written by DuckDB itself (streaming)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import duckdb


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"


_COLUMNS = """
    repo, sha, path, old_path, change_type, language, is_test, subject, message,
    strftime(author_date, '%Y-%m-%dT%H:%M:%SZ') AS author_date, before, after, diff,
    lines_added, lines_removed, annotator, is_concurrency_bug, bug_type, scope,
    location_file, location_function, location_start, location_end, event_sequence,
    explanation, fix_summary, confidence, run_id
"""


def export_pairs(con: duckdb.DuckDBPyConnection, out: Path, fmt: ExportFormat, *,
                 fixes_only: bool = True, min_confidence: float = 0.0) -> int:
    """Write labeled file pairs (one row per file of a labeled commit); returns rows written.

    Rows are ordered by repo, sha and path, so the same warehouse gives the same file.
    """
    where = ["annotator IS NOT NULL", "coalesce(confidence, 0) >= $min_confidence"]
    if fixes_only:
        where.append("is_concurrency_bug")
    query = f"""
        SELECT {_COLUMNS} FROM pairs JOIN (SELECT repo, sha, path, run_id FROM file_changes)
            USING (repo, sha, path)
        WHERE {' AND '.join(where)} ORDER BY repo, sha, path"""
    params = {"min_confidence": min_confidence}
    count = con.execute(f"SELECT count(*) FROM ({query})", params).fetchone()
    out.parent.mkdir(parents=True, exist_ok=True)
    options = "FORMAT json" if fmt == ExportFormat.JSONL else "FORMAT parquet, COMPRESSION zstd"
    tmp = out.with_name(out.name + ".partial")
    con.execute(f"COPY ({query}) TO '{_quote(tmp)}' ({options})", params)
    tmp.replace(out)  # a killed export never leaves a half-written file under the real name
    return int(count[0]) if count else 0


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
