"""Which labeled pairs a dataset holds: the export filters as SQL over the warehouse, and
the selected rows read back in batches with their code.

Every row carries its provenance (repo, sha, path, the mine run that stored the pair, the
annotator and run that labeled it) and a near-duplicate key: the hash of the change's tokens
with whitespace and comments dropped, so the same fix reformatted or cherry-picked by hand
shares a key even where `git patch-id` differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc


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
    reviewed_only: bool = False  # accepted or corrected by a person, corrections applied
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
_FILE_META = """
    WITH label AS (
        SELECT * EXCLUDE (raw_response, evidence) FROM annotations
        WHERE status = 'ok' {label_filter}
        QUALIFY row_number() OVER (PARTITION BY repo, sha, target
                                   ORDER BY created_at DESC, annotator) = 1
    ), reviewed AS ({reviewed}
    ), chosen AS (
        SELECT k.path, a.*
        FROM (SELECT repo, sha, path FROM file_changes WHERE skipped_reason IS NULL) k
        JOIN reviewed a ON a.repo = k.repo AND a.sha = k.sha AND a.target IN ('', k.path)
        QUALIFY row_number() OVER (PARTITION BY k.repo, k.sha, k.path
                                   ORDER BY a.target DESC) = 1
    )
    SELECT f.rowid AS _rowid, f.repo, f.sha, f.path, f.old_path, f.change_type, f.language,
           f.is_test,
           f.lines_added, f.lines_removed, f.run_id, c.subject, c.message,
           strftime(c.author_date AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS author_date,
           CAST(c.author_date AS DATE) AS author_day, d.is_canonical, r.license,
           a.annotator, a.is_concurrency_bug, a.bug_type, a.scope, a.location_file,
           a.location_function, a.location_start, a.location_end,
           a.steps AS event_sequence, a.event_sequence AS event_sequence_text, a.analysis,
           a.explanation, a.explanation_source, a.fix_summary, a.confidence,
           a.checks_passed, a.check_failures, a.is_plausible,
           coalesce(a.checks_passed AND coalesce(a.is_plausible, true), false) AS verified,
           a.run_id AS label_run_id, a.review_decision, o.introduced_by,
           strftime(o.introduced_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS introduced_at,
           o.bug_age_days, o.introduced_confidence
    FROM file_changes f
    JOIN chosen a USING (repo, sha, path)
    JOIN commits c USING (repo, sha)
    JOIN commit_dedup d USING (repo, sha)
    LEFT JOIN repos r USING (repo)
    LEFT JOIN bug_origins o USING (repo, sha)
    WHERE f.skipped_reason IS NULL
"""

# The label as a person's review left it (racemine review): with --reviewed, only accepted
# and corrected commits, the corrected fields in place of the annotator's.
_REVIEWED = {
    False: """
        SELECT l.*, v.decision AS review_decision FROM label l LEFT JOIN reviews v
        ON v.repo = l.repo AND v.sha = l.sha""",
    True: """
        SELECT l.* REPLACE (
            v.is_concurrency_bug AS is_concurrency_bug,
            coalesce(v.bug_type, l.bug_type) AS bug_type, coalesce(v.scope, l.scope) AS scope,
            coalesce(v.location_file, l.location_file) AS location_file,
            coalesce(v.location_function, l.location_function) AS location_function,
            CASE WHEN v.location_file IS NULL AND v.location_function IS NULL
                 THEN l.location_start END AS location_start,
            CASE WHEN v.location_file IS NULL AND v.location_function IS NULL
                 THEN l.location_end END AS location_end,
            CASE WHEN v.steps IS NULL THEN l.steps ELSE list_transform(v.steps, lambda s:
                struct_pack(step := s.step, actor := s.actor, action := s.action,
                            target := s.target, file := s.file, "function" := s."function",
                            line := s.line, note := s.note, check_ok := NULL::BOOLEAN,
                            check_failure := NULL::VARCHAR, reviewer_ok := NULL::BOOLEAN,
                            reviewer_note := NULL::VARCHAR)) END AS steps,
            coalesce(v.event_sequence, l.event_sequence) AS event_sequence),
            v.decision AS review_decision
        FROM label l JOIN reviews v ON v.repo = l.repo AND v.sha = l.sha
        WHERE v.decision IN ('accept', 'correct')""",
}

_LABEL_COLUMNS = ("annotator", "is_concurrency_bug", "bug_type", "scope", "location_file",
                  "location_function", "location_start", "location_end", "event_sequence",
                  "event_sequence_text", "analysis", "explanation", "explanation_source",
                  "fix_summary", "confidence", "checks_passed", "check_failures",
                  "is_plausible", "verified")
# Where the bug came from (racemine szz): the top candidate, when the fix was traced.
_ORIGIN_COLUMNS = ("introduced_by", "introduced_at", "bug_age_days", "introduced_confidence")
_REVIEW_COLUMNS = ("review_decision",)  # accept | correct | reject, when a person reviewed
_TAIL = ("near_dup_key", "mine_run_id", "label_run_id")

_META = {
    ExportLevel.FILE: f"""
        SELECT substr(sha256(concat_ws('/', repo, sha, path)), 1, 16) AS id, *
               EXCLUDE (run_id), run_id AS mine_run_id, k.near_dup_key
        FROM ({_FILE_META}) LEFT JOIN export_dup_keys k USING (repo, sha, path)""",
    ExportLevel.FUNCTION: f"""
        SELECT substr(sha256(concat_ws('/', g.repo, g.sha, g.path, g.module, g.function)),
                      1, 16) AS id,
               g.repo, g.sha, g.path, g.module, g.function, g.kind, g.change, g.before_start,
               g.before_end, g.after_start, g.after_end, g.run_id AS mine_run_id,
               x.* EXCLUDE (_rowid, repo, sha, path, run_id, old_path, change_type,
                            lines_added, lines_removed), g.rowid AS _rowid,
               coalesce(x.location_file = g.path AND x.location_function = g.function, false)
                   AS is_bug_location,
               k.near_dup_key
        FROM function_changes g
        JOIN ({_FILE_META}) x USING (repo, sha, path)
        LEFT JOIN export_dup_keys k USING (repo, sha, path, module, function)""",
}

# Near-duplicate keys, one plain scan of the texts (no join holds them).
_DUP_KEYS = {
    ExportLevel.FILE: """
        SELECT repo, sha, path,
               dup_key(_changed(diff, '-'), _changed(diff, '+'), language, $min_tokens)
                   AS near_dup_key
        FROM file_changes WHERE skipped_reason IS NULL""",
    ExportLevel.FUNCTION: """
        SELECT g.repo, g.sha, g.path, g.module, g.function,
               dup_key(g.before, g.after, f.language, $min_tokens) AS near_dup_key
        FROM function_changes g JOIN (SELECT repo, sha, path, language FROM file_changes)
             f USING (repo, sha, path)""",
}

# A dataset row's columns in order; the texts come last from their own table.
COLUMNS = {
    ExportLevel.FILE: ("id", "repo", "sha", "path", "old_path", "change_type", "language",
                       "is_test", "license", "author_date", "subject", "message", "before",
                       "after", "diff", "lines_added", "lines_removed", *_LABEL_COLUMNS,
                       *_ORIGIN_COLUMNS, *_REVIEW_COLUMNS, *_TAIL),
    ExportLevel.FUNCTION: ("id", "repo", "sha", "path", "module", "function", "kind",
                           "change", "before_start", "before_end", "after_start", "after_end",
                           "language", "is_test", "license", "author_date", "subject",
                           "message", "before", "after", *_LABEL_COLUMNS, "is_bug_location",
                           *_ORIGIN_COLUMNS, *_REVIEW_COLUMNS, *_TAIL),
}
# Text per batch of exported rows (and so per Parquet row group): whole files near the 1 MB
# cap make 2,048 rows several gigabytes.
BATCH_BYTES = 32 * 1024 * 1024

_TEXTS = {ExportLevel.FILE: ("file_changes", ("before", "after", "diff")),
          ExportLevel.FUNCTION: ("function_changes", ("before", "after"))}

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


def save_selection(con: duckdb.DuckDBPyConnection, sel: Selection) -> None:
    """Temp table export_rows: every column of the rows sel admits except the code texts.

    Temporary objects only, so a read-only warehouse is enough.
    """
    con.execute(_MACROS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_dup_keys AS {_DUP_KEYS[sel.level]}",
                {"min_tokens": sel.min_dup_tokens})
    file_keys = ("export_dup_keys" if sel.level == ExportLevel.FILE
                 else f"({_DUP_KEYS[ExportLevel.FILE]})")
    # Repositories that share a file-level near-duplicate: one split group at every level.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE export_repo_links AS
                    SELECT list(DISTINCT repo ORDER BY repo) AS repos FROM {file_keys}
                    WHERE near_dup_key IS NOT NULL GROUP BY near_dup_key
                    HAVING count(DISTINCT repo) > 1""",
                {"min_tokens": sel.min_dup_tokens} if sel.level != ExportLevel.FILE else {})
    params: dict[str, Any] = {}
    label_filter = ""
    if sel.annotator:
        label_filter += " AND (annotator = $annotator OR starts_with(annotator, $annotator_dir))"
        params |= {"annotator": sel.annotator, "annotator_dir": sel.annotator.rstrip("/") + "/"}
    if sel.verified_only:  # passed the trace checks and, when reviewed, found plausible
        label_filter += " AND checks_passed AND coalesce(is_plausible, true)"
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
    meta = _META[sel.level].replace("{label_filter}", label_filter).replace(
        "{reviewed}", _REVIEWED[sel.reviewed_only])
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_rows AS "
                f"SELECT * FROM ({meta}) WHERE {' AND '.join(where)}", params)


def iter_split_rows(con: duckdb.DuckDBPyConnection, level: ExportLevel, split: str,
                    batch: int = 2_048, batch_bytes: int = BATCH_BYTES
                    ) -> Iterator[pa.Table]:
    """One split's dataset rows, in batches, in the texts' storage order.

    Sorting rows that hold whole files would hold them all in memory, so the (small) rows of
    export_rows are sorted by the rowid of their texts instead, and each batch reads the
    texts of its rows with one range scan. A batch ends at `batch` rows or `batch_bytes` of
    text, whichever comes first, so memory depends on the batch, not on the warehouse or on
    how large its files are; every run gives the same order, and all batches together read
    each text once. Each batch becomes one Parquet row group, which bounds readers too.
    """
    table, texts = _TEXTS[level]
    meta = [c for c in COLUMNS[level] if c not in texts]
    con.execute(f"""CREATE OR REPLACE TEMP TABLE split_meta AS
                    SELECT {', '.join(f'm.{c}' for c in meta)}, s.split, m._rowid
                    FROM export_rows m JOIN split_rows s ON s.id = m.id
                    WHERE s.split = $split ORDER BY m._rowid""", {"split": split})
    # The texts' sizes in a plain scan of their lengths (a join that carried the texts
    # would hold them).
    length = " + ".join(f"coalesce(strlen({t}), 0)" for t in texts)
    sizes = con.execute(f"""SELECT m._rowid, t.size FROM split_meta m
                            JOIN (SELECT rowid AS _rowid, {length} AS size FROM {table}) t
                            USING (_rowid) ORDER BY m._rowid""").fetchall()
    for lo, hi in _batches(sizes, batch, batch_bytes):
        where = {"lo": lo, "hi": hi}
        rows = con.sql("SELECT * FROM split_meta WHERE _rowid BETWEEN $lo AND $hi "
                       "ORDER BY _rowid", params=where).to_arrow_table()
        rowids = rows.column("_rowid")
        # Only this split's rows of the range: the others' texts are never materialised.
        code = con.sql(f"SELECT rowid AS _rowid, {', '.join(texts)} FROM {table} "
                       "WHERE rowid BETWEEN $lo AND $hi AND rowid IN (SELECT _rowid FROM "
                       "split_meta WHERE _rowid BETWEEN $lo AND $hi)",
                       params=where).to_arrow_table()
        code = code.take(pc.index_in(rowids, value_set=code.column("_rowid")))
        yield pa.table({c: code.column(c) if c in texts else rows.column(c)
                        for c in (*COLUMNS[level], "split")})


def _batches(sizes: list[tuple[int, int]], rows: int, limit: int) -> Iterator[tuple[int, int]]:
    """(first rowid, last rowid) of consecutive batches of at most `rows` rows and `limit`
    bytes (a single larger row is a batch of its own)."""
    start = count = total = 0
    for i, (_, size) in enumerate(sizes):
        if count and (count >= rows or total + size > limit):
            yield sizes[start][0], sizes[i - 1][0]
            start, count, total = i, 0, 0
        count += 1
        total += size
    if count:
        yield sizes[start][0], sizes[-1][0]
