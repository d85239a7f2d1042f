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

from flows.mining import (
    RepoResult,
    label_repository,
    mine_repository,
    mine_to_shard,
    resolve_repo,
)
from flows.progress import reporter
from flows.runs import recorded_run
from flows.settings import Settings
from miners.classify import load_pattern_set
from miners.errors import GitCommandError, MinerError
from miners.records import RepoRef
from warehouse.db import open_warehouse
from warehouse.errors import WarehouseError
from warehouse.queries import mined_tips
from warehouse.shards import load_shards


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
def mine_shard_task(ref: RepoRef, shard_root: str, patterns_file: str | None, run_id: str,
                    previous_tips: list[str], max_file_bytes: int, all_branches: bool
                    ) -> RepoResult:
    """Mine on a worker that may not see the DuckDB file: rows go to a Parquet shard."""
    patterns = load_pattern_set(Path(patterns_file) if patterns_file else None)
    return mine_to_shard(ref, Path(shard_root), patterns, run_id, previous_tips,
                         max_file_bytes=max_file_bytes, all_branches=all_branches)


@task(cache_policy=NO_CACHE)
def label_task(result: RepoResult, warehouse: str, run_id: str) -> RepoResult:
    labels, fixes = label_repository(Path(warehouse), result.repo, run_id,
                                     progress=reporter(result.repo))
    return dataclasses.replace(result, labels=result.labels + labels,
                               fixes=result.fixes + fixes)


def _resolve(future: PrefectFuture[Any], spec: str) -> tuple[Any, RepoResult | None]:
    """A future's value, or a failed row for a known error."""
    try:
        return future.result(), None
    except (MinerError, WarehouseError) as exc:
        return None, RepoResult(repo=spec, error=str(exc))


def _outcome(spec: str, chain: list[PrefectFuture[Any]]) -> RepoResult:
    """The chain's final result, or the first known error along it as a failed row."""
    value: Any = None
    for future in chain:
        value, failed = _resolve(future, spec)
        if failed is not None:
            return failed
    assert isinstance(value, RepoResult)
    return value


def _sharded(specs: list[str], name: str | None, settings: Settings, patterns_file: str | None,
             run_id: str, all_branches: bool) -> list[RepoResult]:
    """Mine on the task runner's workers into shards; load and label here, the one writer."""
    db = str(settings.warehouse)
    shard_root = settings.warehouse.parent / f"{settings.warehouse.stem}.shards"
    shard_root.mkdir(parents=True, exist_ok=True)
    mirrors = [(spec, mirror_task.submit(spec, name, str(settings.cache_dir))) for spec in specs]
    pending = []
    results: list[RepoResult] = []
    for spec, mirrored in mirrors:
        ref, failed = _resolve(mirrored, spec)
        if failed is not None:
            results.append(failed)
            continue
        with open_warehouse(db) as con:
            tips = mined_tips(con, ref.name)
        pending.append((spec, mine_shard_task.submit(ref, str(shard_root), patterns_file, run_id,
                                                     tips, settings.max_file_bytes,
                                                     all_branches)))
    for spec, future in pending:
        outcome = _outcome(spec, [future])
        if not outcome.error:
            with open_warehouse(db) as con:
                load_shards(con, shard_root)
            labels, fixes = label_repository(Path(db), outcome.repo, run_id)
            outcome = dataclasses.replace(outcome, labels=outcome.labels + labels,
                                          fixes=outcome.fixes + fixes)
        results.append(outcome)
    return results


@flow(name="mine")
def mine_flow(repos: list[str], name: str | None = None, patterns_file: str | None = None,
              all_branches: bool = False, warehouse: str | None = None,
              sharded: bool = False) -> list[RepoResult]:
    """Mine each repository into the warehouse and label what is new; one runs row.

    With sharded (for task runners whose workers are other processes or machines, such as
    Dask), mine tasks write Parquet shards and this process loads them into DuckDB.
    """
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    load_pattern_set(Path(patterns_file) if patterns_file else None)  # fail before any work
    db = str(settings.warehouse)
    parameters = {"repos": repos, "name": name, "patterns_file": patterns_file,
                  "all_branches": all_branches, "sharded": sharded}
    with recorded_run(db, "mine", parameters) as run:
        if sharded:
            results = _sharded(repos, name, settings, patterns_file, run.run_id, all_branches)
        else:
            chains = []
            for spec in repos:
                ref = mirror_task.submit(spec, name, str(settings.cache_dir))
                mined = mine_task.submit(ref, db, patterns_file, run.run_id,
                                         settings.max_file_bytes, all_branches)
                chains.append((spec, [ref, mined, label_task.submit(mined, db, run.run_id)]))
            results = [_outcome(spec, chain) for spec, chain in chains]
        run.errors = [f"{r.repo}: {r.error}" for r in results if r.error]
        run.failed = bool(results) and len(run.errors) == len(results)
        run.counts = {k: sum(getattr(r, k) for r in results) for k in
                      ("commits_scanned", "matches", "pairs", "functions", "skipped", "labels",
                       "fixes")}
    return results
