"""The `annotate` Prefect flow: label stored commits with the configured LLM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.annotating import AnnotateResult, annotate_with_llm, llm_config
from flows.runs import recorded_run
from flows.settings import Settings


# The key is read from settings inside the task, so it is never a task input.
@task(cache_policy=NO_CACHE)
def llm_annotate_task(warehouse: str, run_id: str, repos: list[str] | None,
                      model: str | None, verify: bool, concurrency: int | None,
                      max_usd: float | None, max_tokens: int | None, limit: int | None,
                      retry_failed: bool) -> AnnotateResult:
    config = llm_config(Settings(), model=model, verify=verify, concurrency=concurrency,
                        max_usd=max_usd, max_tokens=max_tokens)
    return annotate_with_llm(Path(warehouse), config, run_id, repos=repos, limit=limit,
                             retry_failed=retry_failed)


@flow(name="annotate")
def annotate_flow(repos: list[str] | None = None, model: str | None = None,
                  verify: bool = False, concurrency: int | None = None,
                  max_usd: float | None = None, max_tokens: int | None = None,
                  limit: int | None = None, retry_failed: bool = False,
                  warehouse: str | None = None) -> AnnotateResult:
    """Label what has no label from this model and prompt yet; one runs row."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    db = str(settings.warehouse)
    parameters = {"repos": repos, "model": model or settings.llm_model, "verify": verify,
                  "base_url": settings.llm_base_url, "max_usd": max_usd,
                  "max_tokens": max_tokens, "limit": limit}
    with recorded_run(db, "annotate", parameters) as run:
        result = llm_annotate_task(db, run.run_id, repos, model, verify, concurrency, max_usd,
                                   max_tokens, limit, retry_failed)
        run.counts = {"commits": result.commits, "cache_hits": result.cache_hits,
                      **dataclasses.asdict(result.summary)}
    return result
