"""The `mine` Prefect flow: one task chain per repository (mirror → mine → label).

Only this module (and the CLI, lazily) imports prefect. Repositories run side by side on
Prefect's task runner; each task opens its own DuckDB connection (one process, one file).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from flows.mining import RepoResult, label_repository, mine_repository, resolve_repo
from flows.progress import reporter
from flows.settings import Settings
from miners.classify import load_pattern_set
from miners.errors import GitCommandError, MinerError
from miners.records import RepoRef
from warehouse.db import connect
from warehouse.errors import WarehouseError
from warehouse.save import finish_run, start_run


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry network failures only; a bad URL or a missing repository stays failed."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, GitCommandError)


# The token is read from settings inside the task, so it is never a task input that
# Prefect would record.
@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient,
      cache_policy=NO_CACHE)
def mirror_task(spec: str, name: str | None, cache_dir: str) -> RepoRef:
    token = Settings().github_token
    return resolve_repo(spec, name, Path(cache_dir), token.get_secret_value() if token else None)


@task(cache_policy=NO_CACHE)
def mine_task(ref: RepoRef, warehouse: str, patterns_file: str | None, run_id: str,
              max_file_bytes: int, all_branches: bool) -> RepoResult:
    patterns = load_pattern_set(Path(patterns_file) if patterns_file else None)
    return mine_repository(ref, Path(warehouse), patterns, run_id,
                           max_file_bytes=max_file_bytes, all_branches=all_branches,
                           progress=reporter(ref.name))


@task(cache_policy=NO_CACHE)
def label_task(result: RepoResult, warehouse: str, run_id: str) -> RepoResult:
    labels, fixes = label_repository(Path(warehouse), result.repo, run_id,
                                     progress=reporter(result.repo))
    return dataclasses.replace(result, labels=labels, fixes=fixes)


def _outcome(spec: str, chain: list[PrefectFuture[Any]]) -> RepoResult:
    """The chain's final result, or the first known error along it as a failed row."""
    for future in chain:
        try:
            value = future.result()
        except (MinerError, WarehouseError) as exc:
            return RepoResult(repo=spec, error=str(exc))
    assert isinstance(value, RepoResult)
    return value


@flow(name="mine")
def mine_flow(repos: list[str], name: str | None = None, patterns_file: str | None = None,
              all_branches: bool = False, warehouse: str | None = None) -> list[RepoResult]:
    """Mine each repository into the warehouse and label what is new; one runs row."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    load_pattern_set(Path(patterns_file) if patterns_file else None)  # fail before any work
    db = str(settings.warehouse)
    con = connect(db)
    try:
        run_id = start_run(con, "mine", {"repos": repos, "name": name,
                                         "patterns_file": patterns_file,
                                         "all_branches": all_branches})
    finally:
        con.close()
    results: list[RepoResult] = []
    status, errors = "failed", ["the flow stopped before finishing; the next run resumes"]
    try:
        chains = []
        for spec in repos:
            ref = mirror_task.submit(spec, name, str(settings.cache_dir))
            mined = mine_task.submit(ref, db, patterns_file, run_id, settings.max_file_bytes,
                                     all_branches)
            chains.append((spec, [ref, mined, label_task.submit(mined, db, run_id)]))
        results = [_outcome(spec, chain) for spec, chain in chains]
        errors = [f"{r.repo}: {r.error}" for r in results if r.error]
        status = "failed" if results and len(errors) == len(results) else "completed"
        return results
    finally:
        # Also on an unexpected crash: the runs row must not stay "running".
        totals = {k: sum(getattr(r, k) for r in results) for k in
                  ("commits_scanned", "matches", "pairs", "functions", "skipped", "labels",
                   "fixes")}
        con = connect(db)
        try:
            finish_run(con, run_id, status=status, counts=totals, errors=errors)
        finally:
            con.close()
