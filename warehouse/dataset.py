"""Which labeled pairs a dataset holds: the export filters, as one SQL query over the warehouse.

Every row carries its provenance (repo, sha, path, the mine run that stored the pair, the
annotator and run that labeled it) and a near-duplicate key: the hash of the change's tokens
with whitespace and comments dropped, so the same fix reformatted or cherry-picked by hand
shares a key even where `git patch-id` differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import duckdb


class ExportLevel(StrEnum):
    FILE = "file"
    FUNCTION = "function"


# Licenses that let anyone train on and redistribute the code with attribution only.
PERMISSIVE_LICENSES = ("MIT", "MIT-0", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC",
                       "0BSD", "Unlicense", "Zlib", "BSL-1.0", "CC0-1.0", "PostgreSQL")
MIN_DUP_TOKENS = 8  # shorter changes ("5000" -> "15000") are too common to mean a duplicate


@dataclass(frozen=True)
class Selection:
    """The filters of one export; the defaults are the cautious choice."""

    level: ExportLevel = ExportLevel.FILE
    fixes_only: bool = True
    duplicates: bool = False  # keep every copy of a fix found in several branches or forks
    languages: tuple[str, ...] = ()
    bug_types: tuple[str, ...] = ()
    scope: str | None = None  # production | test
    min_confidence: float = 0.0
    annotator: str | None = None  # an annotator id, or a prefix of one ("llm/gpt-4o")
    verified_only: bool = False
    since: date | None = None
    until: date | None = None
    licenses: tuple[str, ...] = PERMISSIVE_LICENSES
    include_unknown_license: bool = False
    min_dup_tokens: int = MIN_DUP_TOKENS

    def describe(self) -> dict[str, Any]:
        """The options as plain JSON values (for the manifest and the dataset card)."""
        return {k: (v.isoformat() if isinstance(v, date) else v)
                for k, v in self.__dict__.items()}


# The label a pair carries: its own file's label if it has one, else its commit's; newest
# first among the annotators the selection admits.
_FILE_ROWS = """
    WITH label AS (
        SELECT * FROM annotations WHERE status = 'ok' {label_filter}
        QUALIFY row_number() OVER (PARTITION BY repo, sha, target
                                   ORDER BY created_at DESC, annotator) = 1
    )
    SELECT f.*, c.subject, c.message,
           strftime(c.author_date AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS author_date,
           CAST(c.author_date AS DATE) AS author_day, d.is_canonical, r.license,
           a.annotator, a.is_concurrency_bug, a.bug_type, a.scope, a.location_file,
           a.location_function, a.location_start, a.location_end, a.event_sequence,
           a.explanation, a.fix_summary, a.confidence, a.is_plausible,
           a.run_id AS label_run_id
    FROM file_changes f
    JOIN commits c USING (repo, sha)
    JOIN commit_dedup d USING (repo, sha)
    LEFT JOIN repos r USING (repo)
    JOIN label a ON a.repo = f.repo AND a.sha = f.sha AND a.target IN ('', f.path)
    WHERE f.skipped_reason IS NULL
    QUALIFY row_number() OVER (PARTITION BY f.repo, f.sha, f.path ORDER BY a.target DESC) = 1
"""

_LABEL_COLUMNS = """annotator, is_concurrency_bug, bug_type, scope, location_file,
    location_function, location_start, location_end, event_sequence, explanation, fix_summary,
    confidence, is_plausible"""

_FILE_SELECT = f"""
    SELECT substr(sha256(concat_ws('/', repo, sha, path)), 1, 16) AS id,
           repo, sha, path, old_path, change_type, language, is_test, license, author_date,
           subject, message, before, after, diff, lines_added, lines_removed, {_LABEL_COLUMNS},
           dup_key(_changed(diff, '-'), _changed(diff, '+'), language, $min_tokens)
               AS near_dup_key,
           run_id AS mine_run_id, label_run_id, author_day, is_canonical
    FROM ({_FILE_ROWS}) x
"""

_FUNCTION_SELECT = f"""
    SELECT substr(sha256(concat_ws('/', g.repo, g.sha, g.path, g.module, g.function)), 1, 16)
               AS id,
           g.repo, g.sha, g.path, g.module, g.function, g.kind, g.change, g.before_start,
           g.before_end, g.after_start, g.after_end, x.language, x.is_test, x.license,
           x.author_date, x.subject, x.message, g.before, g.after, {_LABEL_COLUMNS},
           coalesce(x.location_file = g.path AND x.location_function = g.function, false)
               AS is_bug_location,
           dup_key(g.before, g.after, x.language, $min_tokens) AS near_dup_key,
           g.run_id AS mine_run_id, x.label_run_id, x.author_day, x.is_canonical
    FROM function_changes g
    JOIN ({_FILE_ROWS}) x USING (repo, sha, path)
"""

# Columns that steer the export but are not part of a dataset row.
INTERNAL_COLUMNS = ("author_day", "is_canonical")
ORDER_KEYS = {ExportLevel.FILE: "repo, sha, path",
              ExportLevel.FUNCTION: "repo, sha, path, module, function"}

# Tokens of code with comments and whitespace gone; Elixir comments start with #, Erlang's %.
_MACROS = r"""
    CREATE OR REPLACE TEMP MACRO _strip(t, lang) AS
        CASE lang WHEN 'erlang' THEN regexp_replace(t, '%[^\n]*', '', 'g')
                  ELSE regexp_replace(t, '#[^\n]*', '', 'g') END;
    CREATE OR REPLACE TEMP MACRO _tokens(t, lang) AS
        regexp_extract_all(_strip(coalesce(t, ''), lang), '\w+|[^\w\s]');
    CREATE OR REPLACE TEMP MACRO _changed(d, sign) AS
        array_to_string(list_filter(string_split(coalesce(d, ''), chr(10)),
            lambda l: starts_with(l, sign) AND NOT starts_with(l, sign || sign || sign)), chr(10));
    CREATE OR REPLACE TEMP MACRO dup_key(a, b, lang, min_tokens) AS
        CASE WHEN len(_tokens(a, lang)) + len(_tokens(b, lang)) >= min_tokens
             THEN substr(md5(array_to_string(_tokens(a, lang), ' ') || chr(1)
                             || array_to_string(_tokens(b, lang), ' ')), 1, 16) END;
"""


@dataclass(frozen=True)
class Query:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Define the helper macros the selection uses (temporary: read-only files are fine)."""
    con.execute(_MACROS)


def build_selection(sel: Selection) -> Query:
    """The SQL for the rows sel admits, with every column a dataset row carries."""
    params: dict[str, Any] = {"min_tokens": sel.min_dup_tokens}
    label_filter = ""
    if sel.annotator:
        label_filter += " AND (annotator = $annotator OR starts_with(annotator, $annotator_dir))"
        params |= {"annotator": sel.annotator, "annotator_dir": sel.annotator.rstrip("/") + "/"}
    if sel.verified_only:
        label_filter += " AND is_plausible"
    rows = _FUNCTION_SELECT if sel.level == ExportLevel.FUNCTION else _FILE_SELECT
    rows = rows.replace("{label_filter}", label_filter)
    where = ["coalesce(confidence, 0) >= $min_confidence"]
    params["min_confidence"] = sel.min_confidence
    if not sel.duplicates:
        where.append("is_canonical")
    if sel.fixes_only:
        where.append("is_concurrency_bug")
    for column, values in (("language", sel.languages), ("bug_type", sel.bug_types)):
        if values:
            where.append(f"{column} IN (SELECT unnest(${column}s))")
            params[f"{column}s"] = list(values)
    if sel.scope:
        where.append("scope = $scope")
        params["scope"] = sel.scope
    if sel.since:
        where.append("author_day >= $since")
        params["since"] = sel.since
    if sel.until:
        where.append("author_day <= $until")
        params["until"] = sel.until
    license_ok = "list_has_any(string_split(license, ' OR '), $licenses)"
    if sel.include_unknown_license:
        license_ok = f"(license IS NULL OR {license_ok})"
    where.append(license_ok)
    params["licenses"] = list(sel.licenses)
    return Query(f"SELECT * FROM ({rows}) WHERE {' AND '.join(where)}", params)
