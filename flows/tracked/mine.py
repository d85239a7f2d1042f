"""The tracked `mine` flow: one task chain per repository (mirror → mine and label).

The steps are the mine job's; this module only makes them Prefect tasks, so the run, its
tasks, their retries and logs show in the Prefect UI. Repositories run side by side on the
flow's task runner (threads, or Dask with `sharded`: mine tasks then write Parquet shards
that this process loads, being the one DuckDB writer).
"""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path, where annotations
# kept as strings cannot be resolved ("`Pipeline_FlowModel` is not fully defined").

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.jobs.mine import (
    MIRROR_RETRY_DELAYS,
    RepoSpec,
    failed_result,
    load_and_label_shards,
    mine_and_label,
    mine_status,
    mirror,
    record_results,
    run_parameters,
    shard_root,
)
from flows.jobs.mining import RepoResult, mine_to_shard
from flows.jobs.runs import recorded_run
from flows.progress import active_reporter
from flows.settings import Settings
from flows.tracked.states import final_state, value_of
from miners.classify import load_pattern_set
from miners.errors import GitCommandError, MinerError
from miners.records import RepoRef
from warehouse.db import open_warehouse
from warehouse.errors import WarehouseError
from warehouse.queries import mined_tips


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry network failures only; a bad URL or a missing repository stays failed."""
    return isinstance(state.result(raise_on_failure=False), GitCommandError)


# Prefect retries the task (visible in the UI) instead of the job retrying inside it.
@task(retries=len(MIRROR_RETRY_DELAYS), retry_delay_seconds=list(MIRROR_RETRY_DELAYS),
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def mirror_task(spec: RepoSpec, settings: Settings) -> RepoRef:
    return mirror(spec, settings.cache_dir, settings.github_token_value, retry_delays=())


@task(cache_policy=NO_CACHE)
def mine_task(ref: RepoRef, settings: Settings, patterns_file: Path | None, run_id: str,
              all_branches: bool) -> RepoResult:
    return mine_and_label(ref, settings, load_pattern_set(patterns_file), run_id,
                          all_branches=all_branches, progress=active_reporter())


@task(cache_policy=NO_CACHE)
def mine_shard_task(ref: RepoRef, settings: Settings, patterns_file: Path | None, run_id: str,
                    previous_tips: list[str], all_branches: bool) -> RepoResult:
    """Mine on a worker that may not see the DuckDB file: rows go to a Parquet shard."""
    return mine_to_shard(ref, shard_root(settings), load_pattern_set(patterns_file), run_id,
                         previous_tips, max_file_bytes=settings.max_file_bytes,
                         all_branches=all_branches)


def _outcome(spec: RepoSpec, future: PrefectFuture[Any]) -> Any:
    """A future's value, or a failed row for a known error."""
    try:
        return future.result()
    except (MinerError, WarehouseError) as exc:
        return failed_result(spec, exc)


@flow(name="mine")
def mine_flow(repos: list[RepoSpec], patterns_file: Path | None = None,
              all_branches: bool = False, warehouse: str | None = None,
              sharded: bool = False) -> State:
    """Mine and label each repository; one runs row. Fails when a repository failed."""
    settings = Settings.load(warehouse)
    load_pattern_set(patterns_file)  # a bad pattern file fails before any work
    with recorded_run(settings.warehouse, "mine",
                      run_parameters(repos, patterns_file, all_branches, sharded=sharded),
                      keep_open=True) as run:
        mirrored = [mirror_task.submit(spec, settings) for spec in repos]
        pending: list[RepoResult | PrefectFuture[Any]] = []
        for spec, future in zip(repos, mirrored, strict=True):
            ref = _outcome(spec, future)
            if isinstance(ref, RepoResult):
                pending.append(ref)
            elif sharded:
                with open_warehouse(settings.warehouse) as con:
                    tips = mined_tips(con, ref.name)
                pending.append(mine_shard_task.submit(ref, settings, patterns_file, run.run_id,
                                                      tips, all_branches))
            else:
                pending.append(mine_task.submit(ref, settings, patterns_file, run.run_id,
                                                all_branches))
        results = []
        for spec, item in zip(repos, pending, strict=True):
            result = _outcome(spec, item) if isinstance(item, PrefectFuture) else item
            if sharded and not result.error:  # this process is the one DuckDB writer
                result = load_and_label_shards(settings, result, run.run_id)
            results.append(result)
        record_results(run, results)
    return final_state(run.status, run.errors, results)


def run_tracked_mine(specs: list[RepoSpec], settings: Settings, patterns_file: Path | None,
                     all_branches: bool, *, dask: bool = False, dask_address: str | None = None
                     ) -> tuple[list[RepoResult], str]:
    """Run the mine flow on threads, or on Dask (a local cluster, or the scheduler at
    dask_address); returns the results and the runs row's status."""
    if dask or dask_address:
        from prefect_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner(
            cluster_kwargs={"n_workers": settings.concurrency, "threads_per_worker": 1})
    else:
        runner = ThreadPoolTaskRunner(max_workers=settings.concurrency)
    state = mine_flow.with_options(task_runner=runner)(
        specs, patterns_file=patterns_file, all_branches=all_branches,
        warehouse=str(settings.warehouse), sharded=dask or dask_address is not None,
        return_state=True)
    results = value_of(state)
    return results, mine_status(results).value
