"""Reading model replies (pure): tolerant JSON, schema validation, location checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from annotators.checks import canonical_location
from annotators.schema import BugLabel, CommitInput, StepReview

_CODE_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
MAX_REPLY_CHARS = 200_000


class ReplyError(ValueError):
    """A reply that cannot be used; the message is what the model is told on a re-ask."""


@dataclass(frozen=True)
class Completion:
    """What racemine reads from a chat-completions answer."""

    content: str | None
    finish_reason: str | None
    refusal: str | None
    tokens_in: int | None  # None where the server reports no usage
    tokens_out: int | None
    cached_tokens: int = 0  # input tokens served from the server's prefix cache
    reasoning_tokens: int = 0  # output tokens a reasoning model spent thinking


def read_completion(answer: object) -> Completion:
    """The content, finish reason and usage of a decoded chat-completions answer.

    Raises ReplyError for an answer that is no completion object.
    """
    if not isinstance(answer, dict):
        raise ReplyError("the server's answer is JSON but not a chat completion; check that "
                         "RACEMINE_LLM_BASE_URL is a chat-completions API")
    usage = _object(answer.get("usage"))
    choices = answer.get("choices")
    choice = _object(choices[0] if isinstance(choices, list) and choices else None)
    message = _object(choice.get("message"))
    refusal = message.get("refusal")
    content = message.get("content")
    reason = choice.get("finish_reason")
    prompt_details = _object(usage.get("prompt_tokens_details"))
    output_details = _object(usage.get("completion_tokens_details"))
    return Completion(content if isinstance(content, str) else None,
                      reason if isinstance(reason, str) else None,
                      str(refusal) if refusal else None,
                      _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")),
                      _count(prompt_details.get("cached_tokens")) or 0,
                      _count(output_details.get("reasoning_tokens")) or 0)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


_REASONING = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|$)", re.DOTALL | re.IGNORECASE)
_MAX_STARTS = 200  # braces tried as the start of the object, at most


def strip_reasoning(text: str) -> str:
    """The reply without the <think>…</think> blocks reasoning models put before an answer
    (an unclosed one runs to the end)."""
    return _REASONING.sub("", text)


def json_objects(text: str | None) -> list[dict[str, Any]]:
    """Every JSON object in a reply, in order: bare, inside ``` fences, or anywhere in prose
    or after a reasoning block (each opening brace is tried, so a `{:ok, pid}` in prose does
    not hide the object after it)."""
    found = list(_iter_objects(text))
    if not found:
        raise ReplyError("the reply was not a JSON object; answer with one JSON object only")
    return found


def _iter_objects(text: str | None) -> Iterator[dict[str, Any]]:
    if not text or not text.strip():
        raise ReplyError("the reply was empty; answer with one JSON object")
    text = strip_reasoning(text[:MAX_REPLY_CHARS])
    candidates = [(text.strip(), 0),
                  *((m.group(1).strip(), 0) for m in _CODE_FENCE.finditer(text))]
    starts = [m.start() for m in re.finditer(r"\{", text)][:_MAX_STARTS]
    candidates += [(text, i) for i in starts]
    seen: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for candidate, start in candidates:
        try:
            value, _ = decoder.raw_decode(candidate, start)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested too deep
            continue
        if isinstance(value, dict) and value not in seen:
            seen.append(value)
            yield value


def parse_json_reply(text: str | None) -> dict[str, Any]:
    """The first JSON object in a reply (see json_objects)."""
    return json_objects(text)[0]


_FIELDS = frozenset(BugLabel.model_fields)


@dataclass(frozen=True)
class ParsedLabel:
    label: BugLabel
    extra: dict[str, Any]  # keys the schema does not name (a critique, notes): kept, not fatal


def parse_label(text: str | None, commit: CommitInput) -> ParsedLabel:
    """The first object in the reply that validates as a label whose location exists in the
    change, with the keys the schema does not name; or a ReplyError that lists every problem
    of the most label-like object at once."""
    objects = _iter_objects(text)
    first = next(objects, None)
    if first is None:
        raise ReplyError("the reply was not a JSON object; answer with one JSON object only")
    best: tuple[int, list[str]] = (-1, [])  # the most label-like object's problems

    def candidates() -> Iterator[dict[str, Any]]:
        # Most replies are one object that validates: the rest of the text is read only
        # when the first object does not.
        yield first
        yield from sorted(objects, key=lambda d: -len(_FIELDS & d.keys()))

    for data in candidates():
        score = len(_FIELDS & data.keys())
        try:
            label = BugLabel.model_validate({k: v for k, v in data.items() if k in _FIELDS})
            label, problems = canonical_location(label, commit)
            if problems:
                raise ReplyError("; ".join(problems))
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc']) or 'the object'}: {e['msg']}"
                        for e in exc.errors()]
        except ReplyError as exc:
            problems = [str(exc)]
        else:
            return ParsedLabel(label, {k: v for k, v in data.items() if k not in _FIELDS})
        if score > best[0]:
            best = (score, problems)
    errors = best[1]
    raise ReplyError("; ".join(errors[:20]) + "; answer again following the schema")


@dataclass(frozen=True)
class ParsedVerdict:
    is_plausible: bool
    critique: str
    steps: tuple[StepReview, ...]  # one per step of the label, in order (empty if not given)


def parse_verdict(text: str | None, n_steps: int = 0) -> ParsedVerdict:
    """The reviewer's verdict: the whole report, and each of its n_steps steps when the
    reviewer judged them (steps it left out count as not judged: the list is then empty)."""
    data = parse_json_reply(text)
    plausible = data.get("is_plausible")
    if not isinstance(plausible, bool):
        raise ReplyError("is_plausible must be true or false")
    judged: dict[int, StepReview] = {}
    items = data.get("steps")
    for number, item in enumerate(items if isinstance(items, list) else [], 1):
        if isinstance(item, dict) and isinstance(item.get("plausible"), bool):
            step = item.get("step")
            key = step if isinstance(step, int) and not isinstance(step, bool) else number
            judged[key] = StepReview(item["plausible"], str(item.get("note") or "")[:1000])
    steps = tuple(judged[i] for i in range(1, n_steps + 1)) \
        if n_steps and all(i in judged for i in range(1, n_steps + 1)) else ()
    return ParsedVerdict(plausible, str(data.get("critique", ""))[:4000], steps)
