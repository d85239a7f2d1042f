"""The LLM edge: label commits through any OpenAI-compatible endpoint (async client).

Bounded concurrency with a fixed number of workers (memory stays flat however many commits
come), retries with backoff that honour Retry-After on 429/5xx/timeouts, a rate limiter, a
budget that stops cleanly, structured output with fallbacks for servers that lack it, and
bounded re-asks when a reply does not validate. Every request is reported for the ledger.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI

from annotators.errors import LLMError
from annotators.limits import Budget, Price, RateLimiter
from annotators.prompting import (
    DEFAULT_MAX_INPUT_CHARS,
    annotator_id,
    build_label_messages,
    build_verify_messages,
    label_schema,
    load_template,
    new_fence,
)
from annotators.replies import ReplyError, parse_label, parse_verdict, read_completion
from annotators.schema import Annotation, BugLabel, CommitInput


@dataclass(frozen=True)
class LLMConfig:
    model: str
    base_url: str | None
    api_key: str | None
    price: Price
    concurrency: int = 8
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_usd: float | None = None
    max_tokens: int | None = None
    timeout_s: float = 120.0
    max_attempts: int = 5
    max_reasks: int = 2
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS
    max_output_tokens: int = 2048
    verify: bool = False
    template: str = "label_v1"
    verify_template: str = "verify_v1"

    def __repr__(self) -> str:  # never print the key
        return f"LLMConfig(model={self.model!r}, base_url={self.base_url!r}, api_key=***)"

    @property
    def annotator(self) -> str:
        return annotator_id(self.model, load_template(self.template))


@dataclass
class CallRecord:
    """One request as the ledger stores it."""

    sha: str
    kind: str  # label | reask | verify
    status: str  # ok | invalid | error
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    is_plausible: bool
    critique: str
    verifier: str


@dataclass
class Outcome:
    """What labeling one commit produced."""

    commit: CommitInput
    annotation: Annotation
    calls: list[CallRecord] = field(default_factory=list)
    verdict: Verdict | None = None
    input_note: str = ""


@dataclass
class RunSummary:
    labeled: int = 0
    failed: int = 0
    not_started: int = 0  # left for the next run because the budget ran out
    requests: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    stopped_by_budget: bool = False


class _Session:
    """State shared by the workers of one run."""

    _FORMATS = ("json_schema", "json_object", "text")

    def __init__(self, config: LLMConfig, client: AsyncOpenAI) -> None:
        self.config = config
        self.client = client
        self.limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.budget = Budget(config.max_usd, config.max_tokens)
        self.format = 0  # index into _FORMATS; lowered when a server rejects one

    def response_format(self) -> dict[str, Any] | None:
        kind = self._FORMATS[self.format]
        if kind == "json_schema":
            return {"type": "json_schema",
                    "json_schema": {"name": "bug_label", "schema": label_schema()}}
        if kind == "json_object":
            return {"type": "json_object"}
        return None

    async def chat(self, messages: list[dict[str, str]], record: CallRecord,
                   structured: bool = True) -> tuple[str | None, str | None]:
        """One completion with retries; returns (content, finish_reason)."""
        estimate = sum(len(m["content"]) for m in messages) // 4
        delay = 1.0
        for attempt in range(self.config.max_attempts):
            await self.limiter.acquire(estimate)
            fmt = self.response_format()
            if not structured and fmt is not None:
                fmt = {"type": "json_object"}  # the verdict has its own small shape
            body: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                    "temperature": 0, "max_tokens": self.config.max_output_tokens}
            if fmt is not None:
                body["response_format"] = fmt
            started = time.perf_counter()
            try:
                # The body is plain JSON already. chat.completions.create would run the
                # client's typed transform over the messages and the label schema on every
                # request (~1.3 ms of CPU each, the largest cost of a call at concurrency 32),
                # and building the typed reply costs another third of a millisecond; the
                # client's generic post keeps its auth, error types and JSON decoding.
                reply = await self.client.post("/chat/completions", cast_to=dict[str, Any],
                                               body=body)
            except json.JSONDecodeError as exc:  # a 200 that is not JSON (a proxy page, wrong URL)
                raise ReplyError("the server's answer is not JSON; check that "
                                 "RACEMINE_LLM_BASE_URL is a chat-completions API") from exc
            except openai.RateLimitError as exc:
                wait = _retry_after(exc) or delay
            except (openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as exc:
                wait = _retry_after(exc) or delay
            except openai.BadRequestError as exc:
                if structured and self.format < len(self._FORMATS) - 1 and _about_format(exc):
                    self.format += 1  # this server lacks the format: use the next one
                    continue
                raise LLMError(f"model {self.config.model}: request rejected ({_short(exc)})"
                               ) from exc
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMError(f"endpoint {self.config.base_url or 'OpenAI'}: the API key was "
                               "refused; check RACEMINE_LLM_API_KEY") from exc
            except openai.NotFoundError as exc:
                raise LLMError(f"model {self.config.model!r}: not found at "
                               f"{self.config.base_url or 'OpenAI'}; check "
                               "RACEMINE_LLM_MODEL") from exc
            else:
                record.latency_ms += (time.perf_counter() - started) * 1000
                completion = read_completion(reply)
                tokens_in = completion.tokens_in if completion.tokens_in is not None \
                    else estimate
                tokens_out = completion.tokens_out or 0
                cost = self.config.price.cost(tokens_in, tokens_out)
                record.tokens_in += tokens_in
                record.tokens_out += tokens_out
                record.cost_usd += cost
                self.budget.charge(tokens_in + tokens_out, cost)
                if completion.refusal:  # paid for, then failed with the model's words
                    raise ReplyError(f"the model refused: {completion.refusal[:200]}")
                return completion.content, completion.finish_reason
            record.latency_ms += (time.perf_counter() - started) * 1000
            record.retries = attempt + 1
            if attempt + 1 < self.config.max_attempts:
                await asyncio.sleep(min(wait, 60.0) * (1 + random.random() * 0.1))
                delay = min(delay * 2, 30.0)
        raise ReplyError(f"no answer after {self.config.max_attempts} attempts "
                         "(rate limits, server errors or timeouts)")


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _about_format(exc: openai.BadRequestError) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text or "json_object" in text


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


async def _label_one(session: _Session, commit: CommitInput, annotator: str) -> Outcome:
    config = session.config
    template = load_template(config.template)
    messages, note = build_label_messages(commit, template, new_fence(), config.max_input_chars)
    outcome = Outcome(commit, Annotation(annotator=annotator, label=None), input_note=note)
    last_text: str | None = None
    reason = ""
    for attempt in range(config.max_reasks + 1):
        record = CallRecord(commit.sha, "label" if attempt == 0 else "reask", "error")
        outcome.calls.append(record)
        try:
            text, finish = await session.chat(messages, record)
            last_text = text
            if finish == "length":
                raise ReplyError("the reply was cut off; answer with a shorter JSON object")
            label = parse_label(text, commit)
        except ReplyError as exc:
            reason = str(exc)
            record.status, record.error = "invalid", reason
            if last_text is None:
                break
            messages = [*messages, {"role": "assistant", "content": last_text[:4000]},
                        {"role": "user", "content": f"That answer cannot be used: {reason}. "
                                                    "Reply with the corrected JSON object only."}]
            continue
        record.status = "ok"
        outcome.annotation = _annotation(annotator, label, outcome.calls, text)
        if config.verify and label.is_concurrency_bug:
            outcome.verdict = await _verify(session, commit, label, outcome.calls)
        return outcome
    outcome.annotation = Annotation(annotator=annotator, label=None, failure=reason[:500],
                                    raw_response=(last_text or "")[:20_000],
                                    **_totals(outcome.calls))
    return outcome


def _totals(calls: list[CallRecord]) -> dict[str, Any]:
    return {"tokens_in": sum(c.tokens_in for c in calls),
            "tokens_out": sum(c.tokens_out for c in calls),
            "cost_usd": sum(c.cost_usd for c in calls),
            "latency_ms": sum(c.latency_ms for c in calls)}


def _annotation(annotator: str, label: BugLabel, calls: list[CallRecord], text: str | None
                ) -> Annotation:
    return Annotation(annotator=annotator, label=label, raw_response=(text or "")[:20_000],
                      evidence=(), **_totals(calls))


async def _verify(session: _Session, commit: CommitInput, label: BugLabel,
                  calls: list[CallRecord]) -> Verdict | None:
    template = load_template(session.config.verify_template)
    record = CallRecord(commit.sha, "verify", "error")
    calls.append(record)
    messages = build_verify_messages(commit, label, template, new_fence(),
                                     session.config.max_input_chars)
    verifier = f"llm/{session.config.model}/{template.name}-{template.digest}"
    try:
        text, _ = await session.chat(messages, record, structured=False)
        plausible, critique = parse_verdict(text)
    except ReplyError as exc:
        record.error = str(exc)
        return None
    record.status = "ok"
    return Verdict(plausible, critique, verifier)


async def annotate_commits(commits: Iterable[CommitInput], config: LLMConfig,
                           on_outcome: Callable[[Outcome], None],
                           client: AsyncOpenAI | None = None) -> RunSummary:
    """Label commits with config.concurrency workers; on_outcome gets each as it completes.

    Stops starting new commits once the budget is spent; those are counted as not started
    and will be labeled by the next run.
    """
    client = client or AsyncOpenAI(base_url=config.base_url,
                                   api_key=config.api_key or "not-needed",
                                   max_retries=0, timeout=config.timeout_s)
    session = _Session(config, client)
    summary = RunSummary()
    annotator = config.annotator
    source = iter(commits)
    lock = asyncio.Lock()

    async def next_commit() -> AsyncIterator[CommitInput]:
        while True:
            async with lock:
                if session.budget.exhausted:
                    summary.stopped_by_budget = True
                    return
                item = next(source, None)
            if item is None:
                return
            yield item

    async def worker() -> None:
        async for commit in next_commit():
            outcome = await _label_one(session, commit, annotator)
            summary.labeled += outcome.annotation.label is not None
            summary.failed += outcome.annotation.label is None
            for call in outcome.calls:
                summary.requests += 1
                summary.retries += call.retries
                summary.tokens_in += call.tokens_in
                summary.tokens_out += call.tokens_out
                summary.cost_usd += call.cost_usd
            on_outcome(outcome)

    try:
        await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    finally:
        await client.close()
    if summary.stopped_by_budget:
        summary.not_started = sum(1 for _ in source)
    return summary
