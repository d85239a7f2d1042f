"""The tracked `discover` flow: the discover job as a Prefect task."""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path, where annotations
# kept as strings cannot be resolved ("`Pipeline_FlowModel` is not fully defined").

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.jobs.discover import DISCOVER_RETRY_DELAYS, DiscoverResult, discover_repos
from flows.settings import Settings
from miners.github import GitHubUnavailable, SearchQuery


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only when GitHub was unreachable; a refusal or a bad list stays failed."""
    return isinstance(state.result(raise_on_failure=False), GitHubUnavailable)


# Prefect retries the task (visible in the UI) instead of the job retrying inside it.
@task(retries=len(DISCOVER_RETRY_DELAYS), retry_delay_seconds=list(DISCOVER_RETRY_DELAYS),
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def discover_task(settings: Settings, query: SearchQuery | None, list_file: Path | None,
                  limit: int | None) -> DiscoverResult:
    return discover_repos(settings, query, list_file, limit, retry_delays=())


@flow(name="discover")
def discover_flow(query: SearchQuery | None, list_file: Path | None = None,
                  limit: int | None = None, warehouse: str | None = None) -> DiscoverResult:
    """Find repositories for the repos table: the search, and/or a curated list."""
    return discover_task(Settings.load(warehouse), query, list_file, limit)
