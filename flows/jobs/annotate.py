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
import openai

from annotators.errors import LLMError, LLMNotConfigured
from annotators.limits import price_for
from annotators.llm import LLMConfig, Outcome, RunSummary, annotate_commits
from annotators.prompting import input_hash
from annotators.schema import Annotation, CommitInput
from flows.jobs.runs import recorded_run
from flows.settings import Settings
from warehouse.db import open_warehouse, transaction
from warehouse.queries import open_batches, read_commit_inputs, repo_names, unlabeled_commits
from warehouse.save import (
    copy_cached_labels,
    save_annotations,
    save_batch_state,
    save_batch_upload,
    save_llm_calls,
)

BATCH = 100
# How long the writer gathers labels into one transaction: each costs the event loop GIL
# time (0.1 s gave 0.80-0.86 of ideal in bench/annotate_bench.py, 0.25 s 0.84-0.85), and a
# killed run loses at most this much of what it paid for.
_GATHER_S = 0.25


@dataclass(frozen=True)
class AnnotateResult:
    annotator: str
    commits: int  # commits that needed a label
    cache_hits: int
    summary: RunSummary
    status: str = "completed"  # of the runs row: completed, partially_failed or failed
    batch_submitted: int = 0  # commits sent as a new batch, collected by a later run
    batch_pending: int = 0  # commits of earlier batches the server is still working on


def config_warnings(config: LLMConfig) -> tuple[str, ...]:
    """What the user should know about a run's settings before trusting its numbers."""
    if config.max_usd is not None and not config.price.known:
        return (f"--max-usd / RACEMINE_LLM_MAX_USD: no price is known for model "
                f"{config.model!r}, so its cost counts as $0 and the budget never stops the "
                "run; set RACEMINE_LLM_PRICE_IN and RACEMINE_LLM_PRICE_OUT (USD per million "
                "tokens) or use --max-tokens",)
    return ()


def annotate(settings: Settings, *, repos: list[str] | None = None, model: str | None = None,
             verify: bool = False, verify_negatives: float = 0.0,
             concurrency: int | None = None,
             max_usd: float | None = None, max_tokens: int | None = None,
             limit: int | None = None, retry_failed: bool = False, batch: bool = False,
             warn: Callable[[str], None] = lambda message: None) -> AnnotateResult:
    """The annotate use case: label what has no label from this model and prompt yet, with a
    runs row that says failed when every commit failed (and partially failed when some did)."""
    config = llm_config(settings, model=model, verify=verify,
                        verify_negatives=verify_negatives, concurrency=concurrency,
                        max_usd=max_usd, max_tokens=max_tokens)
    for warning in config_warnings(config):
        warn(warning)
    parameters = {"repos": repos, "model": config.model, "verify": verify,
                  "verify_negatives": config.verify_negatives, "batch": batch,
                  "base_url": settings.llm_base_url, "max_usd": max_usd,
                  "max_tokens": max_tokens, "limit": limit}
    with recorded_run(settings.warehouse, "annotate", parameters) as run:
        result = annotate_with_llm(settings.warehouse, config, run.run_id, repos=repos,
                                   limit=limit, retry_failed=retry_failed, batch=batch)
        summary = result.summary
        run.counts = {"commits": result.commits, "cache_hits": result.cache_hits,
                      **dataclasses.asdict(summary)}
        if summary.failed:
            run.errors = [f"{summary.failed} of {summary.labeled + summary.failed} commits "
                          "got no valid label (annotations.failure says why)"]
        run.judge(succeeded=summary.labeled + result.cache_hits, failed=summary.failed)
    return dataclasses.replace(result, status=run.status.value)


def llm_config(settings: Settings, *, model: str | None = None, verify: bool = False,
               verify_negatives: float = 0.0, concurrency: int | None = None,
               max_usd: float | None = None,
               max_tokens: int | None = None) -> LLMConfig:
    """The LLM settings of a run: command-line values over RACEMINE_* settings.

    With no model named, OpenAI's gpt-4o-mini is used when a key is set; with neither, no
    request is sent: LLMNotConfigured says what to set."""
    key = settings.llm_api_key_value
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
        verify_negatives=verify_negatives if verify else 0.0,
        max_input_chars=settings.llm_max_input_chars,
        max_output_tokens=settings.llm_max_output_tokens, reasoning=settings.llm_reasoning)


def annotate_with_llm(warehouse: Path, config: LLMConfig, run_id: str, *,
                      repos: list[str] | None = None, limit: int | None = None,
                      retry_failed: bool = False, batch: bool = False) -> AnnotateResult:
    """Label every stored commit that has no label from this model and prompt yet.

    Batches submitted before are collected first, and their commits are left alone while
    the server still works on them. With batch, the commits are submitted as a new batch
    instead of asked one by one (but those a collected batch answered unusably)."""
    with open_warehouse(warehouse, serve_reads=True) as con:
        annotator = config.annotator
        batches = _collect_batches(con, config, run_id) if open_batches(con, annotator) \
            else _Batches()
        todo = [(repo, sha) for repo in (repos or repo_names(con))
                for sha in unlabeled_commits(con, repo, annotator, retry_failed)
                if (repo, sha) not in batches.pending]
        todo = todo[:limit] if limit is not None else todo
        hits = 0

        def commits(keys: list[tuple[str, str]], cursor: duckdb.DuckDBPyConnection
                    ) -> Iterator[CommitInput]:
            # Read in batches as the workers ask, so memory does not grow with the backlog;
            # a small first batch, so the first requests leave at once.
            nonlocal hits
            for start, end in _chunks(len(keys), config.concurrency, BATCH):
                chunk = keys[start:end]
                inputs = _read_inputs(cursor, chunk)
                hashes = {(c.repo, c.sha): input_hash(c) for c in inputs}
                copied = copy_cached_labels(cursor, annotator, run_id,
                                            [(r, s, h) for (r, s), h in hashes.items()])
                hits += len(copied)
                yield from (c for c in inputs if (c.repo, c.sha) not in copied)

        submitted = 0
        asked = todo
        if batch:
            asked = [k for k in todo if k in batches.unusable]
            submitted = _submit_batch(con, config, run_id, list(commits(
                [k for k in todo if k not in batches.unusable], con)))
        with _Writer(con.cursor(), run_id, annotator) as writer, \
                _Prefetched(commits(asked, con.cursor())) as source:
            summary = asyncio.run(annotate_commits(source, config, writer.put))
        summary.labeled += batches.labeled
        return AnnotateResult(annotator, len(todo) + batches.labeled, hits, summary,
                              batch_submitted=submitted, batch_pending=len(batches.pending))


def _chunks(total: int, first: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive chunks of total items: `first` items, then `size` each."""
    start = 0
    while start < total:
        end = min(total, start + (first if start == 0 else size))
        yield start, end
        start = end


class _Prefetched:
    """An iterator read on its own thread, a batch ahead: the event loop that asks for the
    next commit never waits on DuckDB while requests are in flight."""

    _DONE = object()

    def __init__(self, source: Iterator[CommitInput], depth: int = 2 * BATCH) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,),
                                        name="racemine-read-inputs", daemon=True)

    def _run(self, source: Iterator[CommitInput]) -> None:
        try:
            for item in source:
                self._put(item)
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
            return
        self._put(self._DONE)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> _Prefetched:
        return self

    def __next__(self) -> CommitInput:
        item = self._queue.get()
        if item is self._DONE:
            self._queue.put(item)  # every later call ends too
            raise StopIteration
        if isinstance(item, _Failed):
            raise item.error
        return item  # type: ignore[return-value]

    def __enter__(self) -> _Prefetched:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _read_inputs(con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]]
                 ) -> list[CommitInput]:
    """What the annotator sees of each (repo, sha), read repository by repository."""
    return [commit for repo in dict.fromkeys(r for r, _ in keys)
            for commit in read_commit_inputs(con, repo, [s for r, s in keys if r == repo])]


@dataclass
class _Batches:
    """What collecting the open batches found."""

    labeled: int = 0
    pending: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # still running
    unusable: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # ask one by one


def _collect_batches(con: duckdb.DuckDBPyConnection, config: LLMConfig, run_id: str
                     ) -> _Batches:
    """Collect this annotator's finished batches into the warehouse; a batch whose creation
    a killed run never saw answered is found again by its input file."""
    from annotators import batch as batch_api

    found = _Batches()
    client = batch_api.batch_client(config)
    try:
        for row in open_batches(con, config.annotator):
            batch_id = row.batch_id or batch_api.find_batch(client, row.input_file_id) or \
                batch_api.create(client, row.input_file_id, {"racemine_run": run_id})
            if row.batch_id is None:
                save_batch_state(con, row.key, batch_id, "submitted")
            state = batch_api.state(client, batch_id)
            if state.status in batch_api.OPEN:
                found.pending.update(row.commits)
                continue
            if state.status != batch_api.DONE or state.output_file_id is None:
                save_batch_state(con, row.key, batch_id, "failed")  # its commits are free again
                continue
            outcomes = batch_api.read_results(client, state.output_file_id,
                                              _read_inputs(con, row.commits), config)
            with transaction(con):
                _save_outcomes(con, run_id, config.annotator, outcomes)
                save_batch_state(con, row.key, batch_id, "collected")
            found.labeled += len(outcomes)
            answered = {(o.commit.repo, o.commit.sha) for o in outcomes}
            found.unusable.update(k for k in row.commits if k not in answered)
    except openai.OpenAIError as exc:
        raise LLMError(f"endpoint {config.base_url or 'OpenAI'}: the Batch API failed "
                       f"({str(exc).splitlines()[0][:200]}); the next run collects again") from exc
    finally:
        client.close()
    return found


def _submit_batch(con: duckdb.DuckDBPyConnection, config: LLMConfig, run_id: str,
                  inputs: list[CommitInput]) -> int:
    """Submit the commits as one batch: the upload is recorded before the batch is created,
    so a run killed in between is resumed, not paid twice."""
    if not inputs:
        return 0
    from annotators import batch as batch_api

    client = batch_api.batch_client(config)
    try:
        file_id = batch_api.upload(client, batch_api.build_batch_file(inputs, config),
                                   f"racemine-{run_id}.jsonl")
        key = save_batch_upload(con, config.annotator, run_id, file_id,
                                [(c.repo, c.sha) for c in inputs])
        batch_id = batch_api.create(client, file_id, {"racemine_run": run_id})
        save_batch_state(con, key, batch_id, "submitted")
    except openai.OpenAIError as exc:
        raise LLMError(f"endpoint {config.base_url or 'OpenAI'}: the Batch API refused the "
                       f"batch ({str(exc).splitlines()[0][:200]})") from exc
    finally:
        client.close()
    return len(inputs)


def _save_outcomes(con: duckdb.DuckDBPyConnection, run_id: str, annotator: str,
                   batch: list[Outcome]) -> None:
    """Labels and ledger rows of outcomes, in the caller's transaction."""
    by_repo: dict[str, list[tuple[str, str, Annotation]]] = {}
    for outcome in batch:
        commit, verdict = outcome.commit, outcome.verdict
        annotation = dataclasses.replace(
            outcome.annotation, input_hash=input_hash(commit),
            input_note=outcome.input_note,
            is_plausible=verdict.is_plausible if verdict else None,
            critique=verdict.critique if verdict else None,
            verifier=verdict.verifier if verdict else None,
            step_reviews=verdict.steps if verdict else ())
        by_repo.setdefault(commit.repo, []).append((commit.sha, "", annotation))
    for repo, items in by_repo.items():
        save_annotations(con, repo, run_id, items)
    save_llm_calls(con, run_id, annotator, [
        (o.commit.repo, o.commit.sha,
         [{k: v for k, v in dataclasses.asdict(c).items() if k != "sha"} for c in o.calls])
        for o in batch])


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
        with transaction(self._cursor):
            _save_outcomes(self._cursor, self._run_id, self._annotator, batch)
