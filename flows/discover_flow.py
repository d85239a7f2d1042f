"""The `discover` Prefect flow: GitHub search and curated lists into the repos table."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.discovering import discover
from flows.runs import recorded_run
from flows.settings import Settings
from miners.github import GitHubUnavailable, SearchQuery


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only when GitHub was unreachable; a refusal or a bad list stays failed."""
    return isinstance(state.result(raise_on_failure=False), GitHubUnavailable)


# The token is read from settings inside the task, never passed as a task input.
@task(retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=_transient,
      cache_policy=NO_CACHE)
def discover_task(warehouse: str, query: SearchQuery | None, list_file: str | None,
                  limit: int | None) -> tuple[int, int, int]:
    settings = Settings()
    token = settings.github_token.get_secret_value() if settings.github_token else None
    return discover(Path(warehouse), settings.github_api_url.rstrip("/"), token, query,
                    Path(list_file) if list_file else None, limit)


@flow(name="discover")
def discover_flow(languages: list[str] | None = None, min_stars: int = 10,
                  pushed_since: date | None = None, topics: list[str] | None = None,
                  include_forks: bool = False, include_archived: bool = False,
                  list_file: str | None = None, search: bool = True, limit: int | None = None,
                  warehouse: str | None = None) -> tuple[int, int, int]:
    """Find repositories; returns (stored, requests, answered by 304)."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    db = str(settings.warehouse)
    query = SearchQuery(tuple(languages or ("Elixir", "Erlang")), min_stars, pushed_since,
                        tuple(topics or ()), include_forks, include_archived) if search else None
    parameters = {"query": repr(query), "list_file": list_file, "limit": limit}
    with recorded_run(db, "discover", parameters) as run:
        stored, requests, cached = discover_task(db, query, list_file, limit)
        run.counts = {"repos": stored, "requests": requests, "not_modified": cached}
    return stored, requests, cached
