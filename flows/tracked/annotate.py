"""The tracked `annotate` flow: the annotate job as a Prefect task."""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path, where annotations
# kept as strings cannot be resolved ("`Pipeline_FlowModel` is not fully defined").

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows.jobs.annotate import AnnotateResult, annotate
from flows.settings import Settings
from flows.tracked.states import final_state


# The key stays inside the settings, which are built in this process and never stored.
@task(cache_policy=NO_CACHE)
def annotate_task(settings: Settings, repos: list[str] | None, model: str | None,
                  verify: bool, verify_negatives: float, concurrency: int | None,
                  max_usd: float | None, max_tokens: int | None, limit: int | None,
                  retry_failed: bool, batch: bool) -> AnnotateResult:
    return annotate(settings, repos=repos, model=model, verify=verify,
                    verify_negatives=verify_negatives, concurrency=concurrency,
                    max_usd=max_usd, max_tokens=max_tokens, limit=limit,
                    retry_failed=retry_failed, batch=batch, warn=get_run_logger().warning)


@flow(name="annotate")
def annotate_flow(repos: list[str] | None = None, model: str | None = None,
                  verify: bool = False, verify_negatives: float = 0.0,
                  concurrency: int | None = None, max_usd: float | None = None,
                  max_tokens: int | None = None, limit: int | None = None,
                  retry_failed: bool = False, batch: bool = False,
                  warehouse: str | None = None) -> State:
    """Label what has no label from this model and prompt yet. Fails when commits did."""
    result = annotate_task(Settings.load(warehouse), repos, model, verify, verify_negatives,
                           concurrency, max_usd, max_tokens, limit, retry_failed, batch)
    failed = result.summary.failed
    return final_state(result.status, [f"{failed} commits got no valid label"] if failed
                       else [], result)
