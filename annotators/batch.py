"""The Batch API edge: label requests as one batch file, at half the price, collected later.

The requests are those an interactive run would send first (same prompt, strict schema,
reasoning parameters by model family). Answers are read and validated as interactive ones;
a commit whose answer cannot be used is left for an interactive run to ask again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from openai import OpenAI

from annotators.checks import check_label
from annotators.llm import CallRecord, LLMConfig, Outcome, request_body, response_format
from annotators.prompting import build_label_messages, load_template, new_fence
from annotators.replies import ReplyError, parse_label, read_completion
from annotators.schema import Annotation, CommitInput

ENDPOINT = "/v1/chat/completions"
OPEN = ("validating", "in_progress", "finalizing", "cancelling")  # the server is still at it
DONE = "completed"


def custom_id(commit: CommitInput) -> str:
    return f"{commit.repo}@{commit.sha}"


def build_batch_file(commits: Iterable[CommitInput], config: LLMConfig) -> bytes:
    """The batch input file (JSONL): one chat-completions request per commit."""
    template = load_template(config.template)
    lines = []
    for commit in commits:
        messages, _ = build_label_messages(commit, template, new_fence(),
                                           config.max_input_chars)
        body = request_body(config.model, messages, response_format(0), config.output_cap,
                            config.is_reasoning)
        lines.append(json.dumps({"custom_id": custom_id(commit), "method": "POST",
                                 "url": ENDPOINT, "body": body}))
    return ("\n".join(lines) + "\n").encode()


def batch_client(config: LLMConfig) -> OpenAI:
    return OpenAI(base_url=config.base_url, api_key=config.api_key or "not-needed",
                  timeout=config.timeout_s)


def upload(client: OpenAI, content: bytes, name: str) -> str:
    """Upload a batch input file; returns its file id."""
    return client.files.create(file=(name, content, "application/jsonl"), purpose="batch").id


def create(client: OpenAI, input_file_id: str, metadata: Mapping[str, str]) -> str:
    """Start the batch of an uploaded file; returns the batch id."""
    return client.batches.create(input_file_id=input_file_id, endpoint=ENDPOINT,
                                 completion_window="24h", metadata=dict(metadata)).id


def find_batch(client: OpenAI, input_file_id: str) -> str | None:
    """The batch already made from this file (a run killed while creating it), if any."""
    for batch in client.batches.list(limit=100):
        if batch.input_file_id == input_file_id:
            return batch.id
    return None


@dataclass(frozen=True)
class BatchState:
    status: str
    output_file_id: str | None


def state(client: OpenAI, batch_id: str) -> BatchState:
    batch = client.batches.retrieve(batch_id)
    return BatchState(batch.status, batch.output_file_id)


def read_results(client: OpenAI, output_file_id: str, commits: Iterable[CommitInput],
                 config: LLMConfig) -> list[Outcome]:
    """Outcomes of the commits whose answers validate; the others are left out (an
    interactive run asks again)."""
    wanted = {custom_id(c): c for c in commits}
    outcomes = []
    for line in client.files.content(output_file_id).text.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        commit = wanted.get(item.get("custom_id", ""))
        response = item.get("response") or {}
        if commit is None or response.get("status_code") != 200:
            continue
        record = CallRecord(commit.sha, "batch", "invalid")
        try:
            completion = read_completion(response.get("body"))
            tokens_in, tokens_out = completion.tokens_in or 0, completion.tokens_out or 0
            record.tokens_in, record.tokens_out = tokens_in, tokens_out
            record.cached_tokens = completion.cached_tokens
            record.reasoning_tokens = completion.reasoning_tokens
            record.cost_usd = config.price.cost(tokens_in, tokens_out, completion.cached_tokens,
                                                batch=True)
            parsed = parse_label(completion.content, commit)
        except ReplyError:
            continue
        label, checks = check_label(parsed.label, commit)
        if not checks.passed:  # an interactive run asks again, quoting the failed checks
            continue
        record.status = "ok"
        annotation = Annotation(annotator=config.annotator, label=label,
                                raw_response=(completion.content or "")[:20_000],
                                extra=parsed.extra or None, tokens_in=record.tokens_in,
                                tokens_out=record.tokens_out, cost_usd=record.cost_usd,
                                explanation_source="model", checks=checks)
        outcomes.append(Outcome(commit, annotation, [record]))
    return outcomes
