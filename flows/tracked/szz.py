"""The tracked `szz` flow: the szz job as a Prefect task."""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path.

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows.jobs.szz import SzzResult, trace_origins
from flows.settings import Settings
from flows.tracked.states import final_state


@task(cache_policy=NO_CACHE)
def szz_task(settings: Settings, repos: list[str] | None, every_commit: bool, redo: bool
             ) -> SzzResult:
    return trace_origins(settings, repos, every_commit=every_commit, redo=redo)


@flow(name="szz")
def szz_flow(repos: list[str] | None = None, every_commit: bool = False, redo: bool = False,
             warehouse: str | None = None) -> State:
    """Trace the fixes without candidates to the commits that introduced their bugs. Fails
    when commits or repositories could not be traced."""
    result = szz_task(Settings.load(warehouse), repos, every_commit, redo)
    return final_state(result.status, [*result.errors, *(
        [f"{result.failed} commits could not be traced"] if result.failed else [])], result)
