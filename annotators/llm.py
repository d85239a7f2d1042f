"""The LLM edge: label commits through any OpenAI-compatible endpoint (async client).

Bounded concurrency with a fixed number of workers (memory stays flat however many commits
come), retries with backoff that honour Retry-After on 429/5xx/timeouts, a rate limiter, a
budget that stops cleanly, structured output with fallbacks for servers that lack it, and
bounded re-asks when a reply does not validate. Every request is reported for the ledger.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import openai
from openai import AsyncOpenAI

from annotators.checks import check_label
from annotators.errors import LLMError
from annotators.limits import Budget, Price, RateLimiter
from annotators.prompting import (
    DEFAULT_MAX_INPUT_CHARS,
    annotator_id,
    build_label_messages,
    build_verify_messages,
    estimate_tokens,
    label_schema,
    load_template,
    new_fence,
    strict_label_schema,
)
from annotators.replies import (
    Completion,
    ReplyError,
    parse_label,
    parse_verdict,
    read_completion,
)
from annotators.schema import Annotation, BugLabel, CommitInput, LabelChecks, StepReview

# Model families that reason before answering: they take max_completion_tokens and reject
# max_tokens and a temperature other than the default.
_REASONING_FAMILIES = re.compile(r"(^|/)(o\d+|gpt-5)([-.:]|$)", re.IGNORECASE)
DEFAULT_OUTPUT_TOKENS = 2048
DEFAULT_REASONING_OUTPUT_TOKENS = 16_384
SAME_FAILURES_STOP = 10  # the first this many commits failing alike stop the run


def is_reasoning_model(model: str) -> bool:
    """Whether model names an OpenAI reasoning family (o1, o3, o4-mini, gpt-5, …)."""
    return bool(_REASONING_FAMILIES.search(model))


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
    max_output_tokens: int | None = None  # None: the default for the kind of model
    reasoning: bool | None = None  # None: known reasoning families are detected by name
    verify: bool = False
    verify_negatives: float = 0.0  # the share of "not a fix" labels the reviewer also checks
    template: str = "label_v3"
    verify_template: str = "verify_v3"

    def __repr__(self) -> str:  # never print the key
        return f"LLMConfig(model={self.model!r}, base_url={self.base_url!r}, api_key=***)"

    @property
    def annotator(self) -> str:
        return annotator_id(self.model, load_template(self.template))

    @property
    def is_reasoning(self) -> bool:
        return is_reasoning_model(self.model) if self.reasoning is None else self.reasoning

    @property
    def output_cap(self) -> int:
        if self.max_output_tokens is not None:
            return self.max_output_tokens
        return DEFAULT_REASONING_OUTPUT_TOKENS if self.is_reasoning else DEFAULT_OUTPUT_TOKENS


@dataclass
class CallRecord:
    """One request as the ledger stores it."""

    sha: str
    kind: str  # label | reask | retry (a smaller input or a larger output cap) | verify
    status: str  # ok | invalid | error
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Verdict:
    is_plausible: bool
    critique: str
    verifier: str
    steps: tuple[StepReview, ...] = ()


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
    cached_tokens: int = 0
    cost_usd: float = 0.0
    stopped_by_budget: bool = False


class CommitError(Exception):
    """This commit cannot be labeled (the server refused its request); the run goes on."""


class InputTooLong(CommitError):
    """The server's context cannot hold this commit's request: ask again with less code."""


# The response formats asked for, most useful first; a server that rejects one gets the next.
FORMATS = ("json_schema_strict", "json_schema", "json_object", "text")


@functools.cache  # read-only dicts, built once per level
def response_format(level: int, structured: bool = True) -> dict[str, Any] | None:
    """The response_format of a format level (None: plain text); not structured asks for
    JSON mode at most (the reviewer's verdict has its own small shape)."""
    kind = FORMATS[level]
    if kind == "text":
        return None
    if not structured or kind == "json_object":
        return {"type": "json_object"}
    strict = kind == "json_schema_strict"
    return {"type": "json_schema",
            "json_schema": {"name": "bug_label", "strict": strict,
                            "schema": strict_label_schema() if strict else label_schema()}}


def request_body(model: str, messages: list[dict[str, str]], fmt: dict[str, Any] | None,
                 output_cap: int, reasoning: bool) -> dict[str, Any]:
    """A chat-completions request; reasoning models take max_completion_tokens and only
    their own temperature."""
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
    if reasoning:
        body["max_completion_tokens"] = output_cap
    else:
        body["temperature"] = 0
        body["max_tokens"] = output_cap
    if fmt is not None:
        body["response_format"] = fmt
    return body


class _Session:
    """State shared by the workers of one run."""

    def __init__(self, config: LLMConfig, client: AsyncOpenAI) -> None:
        self.config = config
        self.client = client
        self.limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.budget = Budget(config.max_usd, config.max_tokens)
        self.format = 0  # index into FORMATS; lowered when a server rejects one
        self.reasoning = config.is_reasoning
        self.answered = False  # some request got a completion: the server is reachable

    def lower_format(self, failed: int) -> None:
        """The server rejected format level `failed`: use the next one, once however many
        workers saw the rejection (each saw it at the level it sent)."""
        if self.format == failed and self.format < len(FORMATS) - 1:
            self.format += 1

    async def chat(self, messages: list[dict[str, str]], record: CallRecord,
                   structured: bool = True, output_cap: int | None = None) -> Completion:
        """One completion with retries of what is transient (429, 5xx, timeouts).

        Raises LLMError for what stops the whole run, CommitError (or InputTooLong) for a
        request the server refuses, ReplyError for an answer that cannot be used."""
        estimate = estimate_tokens(sum(len(m["content"]) for m in messages))
        delay = 1.0
        where = self.config.base_url or "OpenAI"
        attempt = 0
        while attempt < self.config.max_attempts:
            await self.limiter.acquire(estimate)
            level, reasoning = self.format, self.reasoning  # what this request sends
            body = request_body(self.config.model, messages,
                                response_format(level, structured),
                                output_cap or self.config.output_cap, reasoning)
            started = time.perf_counter()
            try:
                # The body is plain JSON already. chat.completions.create would run the
                # client's typed transform over the messages and the label schema on every
                # request (~1.3 ms of CPU each, the largest cost of a call at concurrency 32),
                # and building the typed reply costs another third of a millisecond; the
                # client's generic post keeps its auth, error types and JSON decoding.
                reply = await self.client.post("/chat/completions", cast_to=dict[str, Any],
                                               body=body)
            except json.JSONDecodeError as exc:  # a 200 that says it is JSON but is not
                self._not_json(exc.doc)
            except openai.RateLimitError as exc:
                wait = _retry_after(exc) or delay
            except openai.APIConnectionError as exc:  # timeouts are a kind of these
                if not self.answered and _unreachable(exc):
                    raise LLMError(f"endpoint {where}: cannot connect ({_cause(exc)}); check "
                                   "RACEMINE_LLM_BASE_URL and that the server is running"
                                   ) from exc
                wait = delay
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMError(f"endpoint {where}: the API key was refused; check "
                               "RACEMINE_LLM_API_KEY") from exc
            except openai.NotFoundError as exc:
                raise LLMError(f"model {self.config.model!r}: not found at {where}; check "
                               "RACEMINE_LLM_MODEL (and RACEMINE_LLM_BASE_URL)") from exc
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 and exc.status_code != 501:
                    wait = _retry_after(exc) or delay
                else:
                    self._refused(exc, level, reasoning, structured)
                    continue  # the session changed what it sends: ask again at once
            else:
                self.answered = True
                record.latency_ms += (time.perf_counter() - started) * 1000
                if isinstance(reply, str):  # the client hands back text that is not JSON
                    self._not_json(reply)
                return self._charge(read_completion(reply), record, estimate)
            record.latency_ms += (time.perf_counter() - started) * 1000
            attempt += 1
            record.retries = attempt
            if attempt < self.config.max_attempts:
                await asyncio.sleep(min(wait, 60.0) * (1 + random.random() * 0.1))
                delay = min(delay * 2, 30.0)
        raise ReplyError(f"no answer after {self.config.max_attempts} attempts "
                         "(rate limits, server errors or timeouts)")

    def _not_json(self, text: str) -> NoReturn:
        if text.lstrip().startswith(("data:", "event:")):
            raise LLMError(f"endpoint {self.config.base_url or 'OpenAI'}: answers with a stream "
                           "(server-sent events) even when asked not to; racemine needs a "
                           "non-streaming chat-completions API there")
        raise CommitError("the server's answer is not JSON; check that RACEMINE_LLM_BASE_URL "
                          "is a chat-completions API")

    def _refused(self, exc: openai.APIStatusError, level: int, reasoning: bool,
                 structured: bool) -> None:
        """A 4xx to a request sent at format `level` with `reasoning` parameters: change what
        is sent when that is what the server asks (once, however many workers were told),
        else raise."""
        text = _short(exc).lower()
        if exc.status_code == 400 and structured and level < len(FORMATS) - 1 \
                and _about_format(text):
            self.lower_format(level)  # this server lacks the format: use the next one
            return
        if exc.status_code == 400 and not reasoning and _about_reasoning_params(text):
            self.reasoning = True  # a reasoning model: max_completion_tokens, no temperature
            return
        if exc.status_code == 413 or _too_long(text):
            raise InputTooLong(f"the request is too long for the model ({_short(exc)})")
        raise CommitError(f"request refused ({exc.status_code}: {_short(exc)})")

    def _charge(self, completion: Completion, record: CallRecord, estimate: int) -> Completion:
        tokens_in = completion.tokens_in if completion.tokens_in is not None else estimate
        tokens_out = completion.tokens_out or 0
        cost = self.config.price.cost(tokens_in, tokens_out, completion.cached_tokens)
        record.tokens_in += tokens_in
        record.tokens_out += tokens_out
        record.cached_tokens += completion.cached_tokens
        record.reasoning_tokens += completion.reasoning_tokens
        record.cost_usd += cost
        self.budget.charge(tokens_in + tokens_out, cost)
        if completion.refusal:  # paid for, then failed with the model's words
            raise ReplyError(f"the model refused: {completion.refusal[:200]}")
        return completion


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _about_format(text: str) -> bool:
    return "response_format" in text or "json_schema" in text or "json_object" in text \
        or "strict" in text


def _about_reasoning_params(text: str) -> bool:
    return ("max_completion_tokens" in text or
            ("unsupported" in text and ("max_tokens" in text or "temperature" in text)))


def _too_long(text: str) -> bool:
    return any(k in text for k in ("context length", "context_length", "too long",
                                   "too many tokens", "reduce the length", "maximum context"))


def _unreachable(exc: Exception) -> bool:
    """A refused connection or a name that does not resolve: not worth minutes of retries."""
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__name__ == "ConnectError":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _cause(exc: Exception) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause).splitlines()[0][:120] or type(cause).__name__


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc).splitlines()[0][:200]


async def _label_one(session: _Session, commit: CommitInput, annotator: str) -> Outcome:
    """Label one commit: re-ask an unusable answer (twice at most), ask once more with a
    smaller input when the server's context is too small and with a larger output cap when
    the answer was cut off; a refusal fails this commit only."""
    config = session.config
    template = load_template(config.template)
    fence = new_fence()
    max_chars, output_cap = config.max_input_chars, config.output_cap
    messages, note = build_label_messages(commit, template, fence, max_chars)
    outcome = Outcome(commit, Annotation(annotator=annotator, label=None), input_note=note)
    last_text: str | None = None
    reason = ""
    reasks = 0
    checked_once = False  # a label that failed the trace checks was asked again
    kind = "label"
    while True:
        record = CallRecord(commit.sha, kind, "error")
        outcome.calls.append(record)
        try:
            completion = await session.chat(messages, record, output_cap=output_cap)
            last_text = completion.content
            if completion.finish_reason == "length":
                if output_cap < 4 * config.output_cap:
                    record.status, record.error = "invalid", "cut off at the output cap"
                    output_cap *= 2
                    kind = "retry"
                    continue
                raise ReplyError(f"the reply was cut off at {output_cap} output tokens (raise "
                                 "RACEMINE_LLM_MAX_OUTPUT_TOKENS); answer with a shorter JSON "
                                 "object")
            parsed = parse_label(completion.content, commit)
        except InputTooLong as exc:
            record.error = str(exc)
            if max_chars == config.max_input_chars:  # once, with a third of the input
                max_chars //= 3
                messages, note = build_label_messages(commit, template, fence, max_chars)
                outcome.input_note = note
                kind = "retry"
                continue
            reason = str(exc)
            break
        except CommitError as exc:
            reason = record.error = str(exc)
            break
        except ReplyError as exc:
            reason = str(exc)
            record.status, record.error = "invalid", reason
            if last_text is None or reasks >= config.max_reasks:
                break
            reasks += 1
            kind = "reask"
            messages = [*messages, {"role": "assistant", "content": last_text[:4000]},
                        {"role": "user", "content": f"That answer cannot be used: {reason}. "
                                                    "Reply with the corrected JSON object only."}]
            continue
        record.status = "ok"
        label, checks = check_label(parsed.label, commit)
        if not checks.passed and not checked_once and reasks < config.max_reasks:
            # Once: quote every failed check and ask for a corrected label.
            checked_once = True
            reasks += 1
            kind = "reask"
            record.status, record.error = "invalid", "failed the trace checks"
            messages = [*messages, {"role": "assistant", "content": (last_text or "")[:4000]},
                        {"role": "user", "content": _checks_reask(checks)}]
            continue
        outcome.annotation = _annotation(annotator, label, outcome.calls, completion.content,
                                         reasks, parsed.extra, checks)
        if config.verify and (label.is_concurrency_bug
                              or _sampled(commit.sha, config.verify_negatives)):
            outcome.verdict = await _verify(session, commit, label, outcome.calls)
        return outcome
    outcome.annotation = Annotation(annotator=annotator, label=None, failure=reason[:500],
                                    raw_response=(last_text or "")[:20_000], reasks=reasks,
                                    **_totals(outcome.calls))
    return outcome


def _totals(calls: list[CallRecord]) -> dict[str, Any]:
    return {"tokens_in": sum(c.tokens_in for c in calls),
            "tokens_out": sum(c.tokens_out for c in calls),
            "cost_usd": sum(c.cost_usd for c in calls),
            "latency_ms": sum(c.latency_ms for c in calls)}


def _annotation(annotator: str, label: BugLabel, calls: list[CallRecord], text: str | None,
                reasks: int, extra: dict[str, Any], checks: LabelChecks) -> Annotation:
    return Annotation(annotator=annotator, label=label, raw_response=(text or "")[:20_000],
                      evidence=(), reasks=reasks, extra=extra or None, **_totals(calls),
                      explanation_source="model", checks=checks)


def _checks_reask(checks: LabelChecks) -> str:
    failures = "\n".join(f"- {f}" for f in checks.failures[:20])
    return ("That label fails these checks against the code:\n" + failures + "\nEach step "
            "must point at a line of the BEFORE version, inside the function it names, where "
            "its action is written. Reply with the corrected JSON object only.")


def _sampled(sha: str, rate: float) -> bool:
    """Whether a commit falls in a review sample of this rate (the same commits every run)."""
    return rate > 0 and int(sha[:8] or "0", 16) / 0x1_0000_0000 < rate


async def _verify(session: _Session, commit: CommitInput, label: BugLabel,
                  calls: list[CallRecord]) -> Verdict | None:
    template = load_template(session.config.verify_template)
    record = CallRecord(commit.sha, "verify", "error")
    calls.append(record)
    messages = build_verify_messages(commit, label, template, new_fence(),
                                     session.config.max_input_chars)
    verifier = f"llm/{session.config.model}/{template.name}-{template.digest}"
    try:
        completion = await session.chat(messages, record, structured=False)
        verdict = parse_verdict(completion.content, len(label.event_sequence))
    except (ReplyError, CommitError) as exc:
        record.error = str(exc)
        return None
    record.status = "ok"
    return Verdict(verdict.is_plausible, verdict.critique, verifier, verdict.steps)


class _FailureWatch:
    """Holds back the failures of a run's first commits: when the first SAME_FAILURES_STOP
    all fail the same way, the cause is global (a wrong model, a server that answers
    nonsense) and the run stops without marking them failed; a success releases them."""

    def __init__(self, on_outcome: Callable[[Outcome], None], limit: int) -> None:
        self._on_outcome = on_outcome
        self._limit = limit
        self._held: list[Outcome] | None = []  # None once a commit was labeled

    def __call__(self, outcome: Outcome) -> None:
        if self._held is None:
            self._on_outcome(outcome)
        elif outcome.annotation.label is not None:
            held, self._held = self._held, None
            for item in [*held, outcome]:
                self._on_outcome(item)
        else:
            self._held.append(outcome)
            reasons = {_kind_of(o.annotation.failure) for o in self._held}
            if len(self._held) >= self._limit and len(reasons) == 1:
                raise LLMError(f"the first {len(self._held)} commits all failed the same way "
                               f"({self._held[0].annotation.failure}); stopped without marking "
                               "them failed: check RACEMINE_LLM_MODEL and the server")

    def release(self) -> None:
        """The run ended before the limit: what failed is stored as failed."""
        held, self._held = self._held or [], None
        for item in held:
            self._on_outcome(item)


def _kind_of(failure: str | None) -> str:
    """A failure reason without the parts that differ from commit to commit."""
    return re.sub(r"'[^']*'|\d+", "_", (failure or "")[:80])


async def annotate_commits(commits: Iterable[CommitInput], config: LLMConfig,
                           on_outcome: Callable[[Outcome], None],
                           client: AsyncOpenAI | None = None,
                           stop_after_same_failures: int = SAME_FAILURES_STOP) -> RunSummary:
    """Label commits with config.concurrency workers; on_outcome gets each as it completes.

    A commit the server refuses or answers unusably is failed and the run goes on; what is
    global (no connection, a refused key, an unknown model, a streaming-only server, the
    first commits all failing alike) raises LLMError. Stops starting new commits once the
    budget is spent; those are counted as not started and will be labeled by the next run.
    """
    client = client or AsyncOpenAI(base_url=config.base_url,
                                   api_key=config.api_key or "not-needed",
                                   max_retries=0, timeout=config.timeout_s)
    session = _Session(config, client)
    summary = RunSummary()
    annotator = config.annotator
    source = iter(commits)
    lock = asyncio.Lock()
    watch = _FailureWatch(on_outcome, stop_after_same_failures)

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
                summary.cached_tokens += call.cached_tokens
                summary.cost_usd += call.cost_usd
            watch(outcome)

    try:
        # A task group: an error that stops the run cancels the other workers at once.
        async with asyncio.TaskGroup() as group:
            for _ in range(config.concurrency):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        stop = next((e for e in group_error.exceptions if isinstance(e, LLMError)),
                    group_error.exceptions[0])
        raise stop from None
    finally:
        await client.close()
    watch.release()
    if summary.stopped_by_budget:
        summary.not_started = sum(1 for _ in source)
    return summary
