"""LLM annotation of stored commits: cache, requests, and saving as each label arrives."""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from annotators.errors import LLMNotConfigured
from annotators.limits import price_for
from annotators.llm import LLMConfig, Outcome, RunSummary, annotate_commits
from annotators.prompting import input_hash
from annotators.schema import Annotation, CommitInput
from flows.jobs.runs import recorded_run
from flows.settings import Settings
from warehouse.db import open_warehouse
from warehouse.queries import read_commit_inputs, repo_names, unlabeled_commits
from warehouse.save import copy_cached_labels, save_annotations, save_llm_calls

BATCH = 100
_GATHER_S = 0.1  # how long the writer gathers labels into one transaction


@dataclass(frozen=True)
class AnnotateResult:
    annotator: str
    commits: int  # commits that needed a label
    cache_hits: int
    summary: RunSummary
    status: str = "completed"  # of the runs row: completed, partially_failed or failed


def config_warnings(config: LLMConfig) -> tuple[str, ...]:
    """What the user should know about a run's settings before trusting its numbers."""
    if config.max_usd is not None and not config.price.known:
        return (f"--max-usd / RACEMINE_LLM_MAX_USD: no price is known for model "
                f"{config.model!r}, so its cost counts as $0 and the budget never stops the "
                "run; set RACEMINE_LLM_PRICE_IN and RACEMINE_LLM_PRICE_OUT (USD per million "
                "tokens) or use --max-tokens",)
    return ()


def annotate(settings: Settings, *, repos: list[str] | None = None, model: str | None = None,
             verify: bool = False, concurrency: int | None = None,
             max_usd: float | None = None, max_tokens: int | None = None,
             limit: int | None = None, retry_failed: bool = False,
             warn: Callable[[str], None] = lambda message: None) -> AnnotateResult:
    """The annotate use case: label what has no label from this model and prompt yet, with a
    runs row that says failed when every commit failed (and partially failed when some did)."""
    config = llm_config(settings, model=model, verify=verify, concurrency=concurrency,
                        max_usd=max_usd, max_tokens=max_tokens)
    for warning in config_warnings(config):
        warn(warning)
    parameters = {"repos": repos, "model": config.model, "verify": verify,
                  "base_url": settings.llm_base_url, "max_usd": max_usd,
                  "max_tokens": max_tokens, "limit": limit}
    with recorded_run(settings.warehouse, "annotate", parameters) as run:
        result = annotate_with_llm(settings.warehouse, config, run.run_id, repos=repos,
                                   limit=limit, retry_failed=retry_failed)
        summary = result.summary
        run.counts = {"commits": result.commits, "cache_hits": result.cache_hits,
                      **dataclasses.asdict(summary)}
        if summary.failed:
            run.errors = [f"{summary.failed} of {summary.labeled + summary.failed} commits "
                          "got no valid label (annotations.failure says why)"]
        run.judge(succeeded=summary.labeled + result.cache_hits, failed=summary.failed)
    return dataclasses.replace(result, status=run.status.value)


def llm_config(settings: Settings, *, model: str | None = None, verify: bool = False,
               concurrency: int | None = None, max_usd: float | None = None,
               max_tokens: int | None = None) -> LLMConfig:
    """The LLM settings of a run: command-line values over RACEMINE_* settings.

    With no model named, OpenAI's gpt-4o-mini is used when a key is set; with neither, no
    request is sent: LLMNotConfigured says what to set."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    name = model or settings.llm_model or ("gpt-4o-mini" if key else None)
    if name is None:
        raise LLMNotConfigured(
            "no LLM is configured: set RACEMINE_LLM_MODEL (with RACEMINE_LLM_BASE_URL for "
            "your own server) or RACEMINE_LLM_API_KEY for OpenAI, or pass --model")
    if settings.llm_base_url is None and key is None:
        raise LLMNotConfigured(
            f"model {name!r} at OpenAI needs a key: set RACEMINE_LLM_API_KEY, or "
            "RACEMINE_LLM_BASE_URL to a server of your own")
    return LLMConfig(
        model=name, base_url=settings.llm_base_url, api_key=key,
        price=price_for(name, settings.llm_price_in, settings.llm_price_out),
        concurrency=concurrency or settings.llm_concurrency,
        requests_per_minute=settings.llm_requests_per_minute,
        tokens_per_minute=settings.llm_tokens_per_minute,
        max_usd=settings.llm_max_usd if max_usd is None else max_usd,
        max_tokens=settings.llm_max_tokens if max_tokens is None else max_tokens,
        timeout_s=settings.llm_timeout, verify=verify,
        max_input_chars=settings.llm_max_input_chars,
        max_output_tokens=settings.llm_max_output_tokens, reasoning=settings.llm_reasoning)


def annotate_with_llm(warehouse: Path, config: LLMConfig, run_id: str, *,
                      repos: list[str] | None = None, limit: int | None = None,
                      retry_failed: bool = False) -> AnnotateResult:
    """Label every stored commit that has no label from this model and prompt yet."""
    with open_warehouse(warehouse) as con:
        annotator = config.annotator
        todo = [(repo, sha) for repo in (repos or repo_names(con))
                for sha in unlabeled_commits(con, repo, annotator, retry_failed)]
        todo = todo[:limit] if limit is not None else todo
        hits = 0

        def commits() -> Iterator[CommitInput]:
            # Read in batches as the workers ask, so memory does not grow with the backlog.
            nonlocal hits
            for start in range(0, len(todo), BATCH):
                chunk = todo[start:start + BATCH]
                inputs = [commit for repo in dict.fromkeys(r for r, _ in chunk)
                          for commit in read_commit_inputs(
                              con, repo, [s for r, s in chunk if r == repo])]
                hashes = {(c.repo, c.sha): input_hash(c) for c in inputs}
                copied = copy_cached_labels(con, annotator, run_id,
                                            [(r, s, h) for (r, s), h in hashes.items()])
                hits += len(copied)
                yield from (c for c in inputs if (c.repo, c.sha) not in copied)

        with _Writer(con.cursor(), run_id, annotator) as writer:
            summary = asyncio.run(annotate_commits(commits(), config, writer.put))
        return AnnotateResult(annotator, len(todo), hits, summary)


class _Writer(threading.Thread):
    """Saves outcomes as they arrive, off the event loop, on its own DuckDB cursor.

    The labels that arrive within _GATHER_S of each other are one transaction, so a label
    is on disk a fraction of a second after it was paid for, and the workers never wait for
    the database.
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection, run_id: str, annotator: str) -> None:
        super().__init__(name="racemine-label-writer", daemon=True)
        self._cursor = cursor
        self._run_id = run_id
        self._annotator = annotator
        self._queue: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._error: BaseException | None = None

    def put(self, outcome: Outcome) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(outcome)

    def __enter__(self) -> _Writer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self.join()
        self._cursor.close()
        if self._error is not None and exc[0] is None:
            raise self._error

    def run(self) -> None:
        done = False
        while not done:
            batch: list[Outcome] = []
            item = self._queue.get()
            # Labels that arrive within a short window share one transaction: a commit per
            # label would keep this thread busy (and holding the GIL the workers need).
            deadline = time.monotonic() + _GATHER_S
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            done = item is None
            if batch and self._error is None:
                try:
                    self._save(batch)
                except BaseException as exc:  # handed to the event loop via put()
                    self._error = exc

    def _save(self, batch: list[Outcome]) -> None:
        by_repo: dict[str, list[tuple[str, str, Annotation]]] = {}
        for outcome in batch:
            commit, verdict = outcome.commit, outcome.verdict
            annotation = dataclasses.replace(
                outcome.annotation, input_hash=input_hash(commit),
                input_note=outcome.input_note,
                is_plausible=verdict.is_plausible if verdict else None,
                critique=verdict.critique if verdict else None,
                verifier=verdict.verifier if verdict else None)
            by_repo.setdefault(commit.repo, []).append((commit.sha, "", annotation))
        cur = self._cursor
        cur.execute("BEGIN")
        for repo, items in by_repo.items():
            save_annotations(cur, repo, self._run_id, items)
        save_llm_calls(cur, self._run_id, self._annotator, [
            (o.commit.repo, o.commit.sha,
             [{k: v for k, v in dataclasses.asdict(c).items() if k != "sha"} for c in o.calls])
            for o in batch])
        cur.execute("COMMIT")
