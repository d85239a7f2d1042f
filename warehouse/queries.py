"""Reads from the warehouse that the pipeline and the CLI need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from annotators.schema import CommitInput, FileInput, FunctionSpan
from miners.szz import SZZ_VERSION, FixFile, FixInput, Span
from warehouse.errors import QueryError


def mined_tips(con: duckdb.DuckDBPyConnection, repo: str) -> list[str]:
    """The branch tips the last finished mine of repo covered (empty if never mined)."""
    row = con.execute("SELECT mined_tips FROM repos WHERE repo = ?", [repo]).fetchone()
    return list(row[0]) if row and row[0] else []


# What a mine writes; its plain INSERTs (see save.upsert_rows) need all of them empty.
_MINED = ("commits", "file_changes", "function_changes", "annotations")


def has_mined(con: duckdb.DuckDBPyConnection, repo: str) -> bool:
    """Whether any row of repo is stored in a table a mine writes: by a finished mine, a
    killed one, a shard, or what is left of one after hand-made deletes."""
    sql = " UNION ALL ".join(f"(SELECT 1 FROM {t} WHERE repo = $repo LIMIT 1)" for t in _MINED)
    return con.execute(sql, {"repo": repo}).fetchone() is not None


def unlabeled_commits(con: duckdb.DuckDBPyConnection, repo: str, annotator: str,
                      retry_failed: bool = False) -> list[str]:
    """Shas of repo's matching non-merge commits without a label from annotator (or with
    only a failed one, when retry_failed)."""
    failed = "AND a.status = 'ok'" if retry_failed else ""
    rows = con.execute(
        f"""SELECT c.sha FROM commits c
            WHERE c.repo = ? AND NOT c.is_merge AND NOT EXISTS (
                SELECT 1 FROM annotations a
                WHERE a.repo = c.repo AND a.sha = c.sha AND a.annotator = ? {failed})
            ORDER BY c.committer_date, c.sha""",
        [repo, annotator],
    ).fetchall()
    return [r[0] for r in rows]


def read_commit_inputs(con: duckdb.DuckDBPyConnection, repo: str, shas: list[str]
                       ) -> list[CommitInput]:
    """What an annotator sees of each stored commit of shas, in their order: the message and
    each stored (not skipped) file with its before text, diff and changed functions."""
    if not shas:
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE wanted AS SELECT unnest(?::VARCHAR[]) AS sha",
                [shas])
    messages = dict(con.execute(
        "SELECT c.sha, c.message FROM commits c JOIN wanted USING (sha) WHERE c.repo = ?",
        [repo]).fetchall())
    spans: dict[tuple[str, str], list[FunctionSpan]] = {}
    # In the order build_commit_input gives them: by first line, then name.
    for sha, path, function, change, b_start, b_end, a_start, a_end in con.execute(
            """SELECT g.sha, g.path, g.function, g.change, g.before_start, g.before_end,
                      g.after_start, g.after_end
               FROM function_changes g JOIN wanted USING (sha)
               WHERE g.repo = ?
               ORDER BY g.sha, g.path, coalesce(g.before_start, g.after_start), g.function""",
            [repo]).fetchall():
        spans.setdefault((sha, path), []).append(FunctionSpan(
            function, change, (b_start, b_end) if b_start is not None else None,
            (a_start, a_end) if a_start is not None else None))
    files: dict[str, list[FileInput]] = {}
    for sha, path, language, is_test, before, diff, after in con.execute(
            """SELECT f.sha, f.path, f.language, f.is_test, f.before, f.diff, f.after
               FROM file_changes f JOIN wanted USING (sha)
               WHERE f.repo = ? AND f.skipped_reason IS NULL ORDER BY f.sha, f.path""",
            [repo]).fetchall():
        files.setdefault(sha, []).append(FileInput(
            path=path, language=language, is_test=is_test, before=before, diff=diff,
            functions=tuple(spans.get((sha, path), ())), after=after))
    con.execute("DROP TABLE wanted")
    return [CommitInput(repo=repo, sha=sha, message=messages[sha],
                        files=tuple(files.get(sha, ())))
            for sha in shas if sha in messages]


Located = tuple[str | None, str | None]  # (file, function) the newest label located


def szz_todo(con: duckdb.DuckDBPyConnection, repos: list[str] | None = None, *,
             every_commit: bool = False, redo: bool = False
             ) -> dict[str, dict[str, Located]]:
    """The commits to trace, oldest first per repository, each with where its newest label
    located the bug: the concurrency fixes (every stored non-merge commit with
    every_commit) that this SZZ version has not traced yet, or whose tracing failed."""
    rows = con.execute(
        """SELECT c.repo, c.sha, f.location_file, f.location_function
           FROM commits c JOIN fixes f USING (repo, sha)
           WHERE NOT c.is_merge AND ($every OR f.is_concurrency_bug)
             AND ($repos IS NULL OR c.repo IN (SELECT unnest($repos)))
             AND ($redo OR NOT EXISTS (
                 SELECT 1 FROM szz_traces t WHERE t.repo = c.repo AND t.sha = c.sha
                   AND t.szz_version = $version AND t.status <> 'failed'))
           ORDER BY c.repo, c.committer_date, c.sha""",
        {"every": every_commit, "repos": repos, "redo": redo, "version": SZZ_VERSION},
    ).fetchall()
    todo: dict[str, dict[str, Located]] = {}
    for repo, sha, file, function in rows:
        todo.setdefault(repo, {})[sha] = (file, function)
    return todo


def repo_sources(con: duckdb.DuckDBPyConnection, repos: list[str]
                 ) -> dict[str, tuple[str | None, str | None]]:
    """Each repository's clone URL and, for a local one, the folder it was mined from."""
    rows = con.execute("SELECT repo, url, local_path FROM repos WHERE repo IN "
                       "(SELECT unnest($repos))", {"repos": repos}).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def read_szz_inputs(con: duckdb.DuckDBPyConnection, repo: str, located: Mapping[str, Located]
                    ) -> list[FixInput]:
    """What tracing each commit of located (sha → the label's place, from szz_todo) needs,
    in its order: its first parent and its stored files with the before text, diff and
    changed functions."""
    if not located:
        return []
    params = {"repo": repo, "shas": list(located)}
    parents = dict(con.execute(
        """SELECT sha, parents[1] FROM commits
           WHERE repo = $repo AND sha IN (SELECT unnest($shas))""", params).fetchall())
    spans: dict[tuple[str, str], list[Span]] = {}
    for sha, path, function, start, end in con.execute(
            """SELECT sha, path, function, before_start, before_end FROM function_changes
               WHERE repo = $repo AND sha IN (SELECT unnest($shas))
                 AND change <> 'added' AND before_start IS NOT NULL
               ORDER BY sha, path, before_start""", params).fetchall():
        spans.setdefault((sha, path), []).append(Span(function, start, end))
    files: dict[str, list[FixFile]] = {}
    for sha, path, old_path, language, is_test, before, diff in con.execute(
            """SELECT sha, path, old_path, language, is_test, before, diff FROM file_changes
               WHERE repo = $repo AND sha IN (SELECT unnest($shas))
               ORDER BY sha, path""", params).fetchall():
        files.setdefault(sha, []).append(FixFile(
            path=path, old_path=old_path, language=language, is_test=is_test,
            before=before, diff=diff, functions=tuple(spans.get((sha, path), ()))))
    return [FixInput(repo=repo, sha=sha, parent=parents[sha], files=tuple(files.get(sha, ())),
                     located_file=place[0], located_function=place[1])
            for sha, place in located.items() if sha in parents]


STATS_QUERIES = {
    "repositories": """
        SELECT c.repo, count(*) AS matched_commits,
               count(*) FILTER (WHERE l.is_concurrency_bug AND l.is_canonical)
                   AS concurrency_fixes,
               (SELECT count(*) FROM file_changes f WHERE f.repo = c.repo
                   AND f.skipped_reason IS NULL) AS file_pairs
        FROM commits c LEFT JOIN fixes l USING (repo, sha)
        GROUP BY c.repo ORDER BY c.repo""",
    "bug types": """
        SELECT coalesce(bug_type, '(unlabeled)') AS bug_type, count(*) AS commits,
               count(*) FILTER (WHERE scope = 'test') AS in_tests
        FROM fixes WHERE is_canonical GROUP BY ALL ORDER BY commits DESC, bug_type""",
    "languages": """
        SELECT f.language, count(DISTINCT (f.repo, f.sha)) AS commits, count(*) AS file_pairs,
               count(*) FILTER (WHERE f.skipped_reason IS NOT NULL) AS skipped
        FROM file_changes f GROUP BY ALL ORDER BY commits DESC""",
    "years": """
        SELECT year(author_date) AS year, count(*) AS matched_commits,
               count(*) FILTER (WHERE is_concurrency_bug AND is_canonical) AS concurrency_fixes
        FROM fixes GROUP BY ALL ORDER BY year""",
    "bug age (szz)": """
        SELECT coalesce(f.bug_type, '(unlabeled)') AS bug_type, l.language,
               count(*) AS traced, median(f.bug_age_days) AS median_days
        FROM fixes f
        JOIN (SELECT repo, sha, CASE WHEN count(DISTINCT language) > 1 THEN 'mixed'
                                     ELSE any_value(language) END AS language
              FROM file_changes GROUP BY ALL) l USING (repo, sha)
        WHERE f.is_concurrency_bug AND f.is_canonical AND f.introduced_by IS NOT NULL
        GROUP BY ALL ORDER BY traced DESC, bug_type, language""",
}


def stats(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[list[str], list[tuple]]]:
    """Small summary tables: per repository, bug type, language and year."""
    out = {}
    for title, sql in STATS_QUERIES.items():
        cur = con.execute(sql)
        out[title] = ([d[0] for d in cur.description], cur.fetchall())
    return out


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Run a user's query; returns column names and rows."""
    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {exc}") from exc
    if cur.description is None:
        return [], []
    return [d[0] for d in cur.description], cur.fetchall()


def eval_rows(con: duckdb.DuckDBPyConnection, annotator: str | None) -> list[tuple]:
    """(repo, sha, matched_terms, is_concurrency_bug, bug_type, scope, location_file,
    location_function, checks_passed, explanation, n_steps, canonical (repo, sha), the located
    function's other arity when the change gave it a new one) per stored commit, with the
    newest label of the given annotator (an id, or a prefix such as "llm/gpt-4o"), or the
    newest label of any when annotator is None."""
    admitted = ("WHERE annotator = $annotator OR starts_with(annotator, $annotator_dir)"
                if annotator else "")
    label_source = (f"(SELECT * FROM commit_labels {admitted} QUALIFY row_number() OVER "
                    "(PARTITION BY repo, sha ORDER BY created_at DESC, annotator) = 1)")
    params = ({"annotator": annotator, "annotator_dir": annotator.rstrip("/") + "/"}
              if annotator else {})
    return con.execute(
        f"""SELECT c.repo, c.sha, c.matched_terms, l.is_concurrency_bug, l.bug_type, l.scope,
                   l.location_file, l.location_function, l.checks_passed, l.explanation,
                   l.n_steps, d.canonical_repo, d.canonical_sha,
                   (SELECT list(o.function) FROM function_changes f JOIN function_changes o
                        ON o.repo = f.repo AND o.sha = f.sha AND o.path = f.path
                       AND split_part(o.function, '/', 1) = split_part(f.function, '/', 1)
                       AND o.function <> f.function
                       AND [f.change, o.change] IN (['removed', 'added'], ['added', 'removed'])
                    WHERE f.repo = c.repo AND f.sha = c.sha AND f.path = l.location_file
                      AND f.function = l.location_function)
            FROM commits c LEFT JOIN {label_source} l USING (repo, sha)
            JOIN commit_dedup d USING (repo, sha)""", params).fetchall()


def repo_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT repo FROM repos ORDER BY repo").fetchall()]


COST_QUERY = """
    SELECT annotator, count(DISTINCT run_id) AS runs, count(*) AS requests,
           sum(retries) AS retries, count(*) FILTER (WHERE status = 'invalid') AS invalid,
           sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
           round(sum(cost_usd), 4) AS usd, round(avg(latency_ms)) AS avg_latency_ms,
           (SELECT count(*) FROM annotations a WHERE a.annotator = l.annotator
               AND a.status = 'ok') AS labels
    FROM llm_calls l GROUP BY annotator ORDER BY annotator"""


def cost(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
    """Requests, retries, tokens, estimated USD and latency per LLM annotator."""
    cur = con.execute(COST_QUERY)
    return [d[0] for d in cur.description], cur.fetchall()


def repos_to_mine(con: duckdb.DuckDBPyConnection, include_archived: bool = False
                  ) -> list[tuple[str, str]]:
    """(name, clone URL) of every stored remote repository, for scheduled re-mining."""
    archived = "" if include_archived else "AND NOT coalesce(archived, false)"
    return [(r[0], r[1]) for r in con.execute(
        f"SELECT repo, url FROM repos WHERE url IS NOT NULL {archived} ORDER BY repo"
    ).fetchall()]


@dataclass(frozen=True)
class OpenBatch:
    key: str
    input_file_id: str
    batch_id: str | None
    commits: list[tuple[str, str]]  # (repo, sha)


def open_batches(con: duckdb.DuckDBPyConnection, annotator: str) -> list[OpenBatch]:
    """Batches of this annotator submitted (or only uploaded) and not collected yet."""
    rows = con.execute("SELECT batch_key, input_file_id, batch_id, repos, shas FROM llm_batches "
                       "WHERE annotator = ? AND status IN ('uploaded', 'submitted') "
                       "ORDER BY created_at", [annotator]).fetchall()
    return [OpenBatch(k, f, b, list(zip(r, s, strict=True))) for k, f, b, r, s in rows]
