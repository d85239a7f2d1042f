"""The label every annotator produces: validated, versioned, shared by heuristic and LLM."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


class BugType(StrEnum):
    RACE_CONDITION = "race_condition"
    DEADLOCK = "deadlock"
    LIVELOCK = "livelock"
    MESSAGE_ORDERING = "message_ordering"
    TIMEOUT = "timeout"
    MAILBOX_OVERFLOW = "mailbox_overflow"
    RESOURCE_LEAK = "resource_leak"
    EXIT_SIGNAL = "exit_signal"
    OTHER_CONCURRENCY = "other_concurrency"
    NOT_CONCURRENCY = "not_concurrency"


class Scope(StrEnum):
    PRODUCTION = "production"
    TEST = "test"


class BugLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    function: str | None = None  # name/arity
    start_line: int | None = Field(default=None, ge=1)  # in the before version
    end_line: int | None = Field(default=None, ge=1)


class BugLabel(BaseModel):
    """A structured description of the bug a commit fixes (or says it is no such fix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    is_concurrency_bug: bool
    bug_type: BugType
    scope: Scope
    bug_location: BugLocation | None = None
    event_sequence: list[str] = Field(default_factory=list)
    explanation: str
    fix_summary: str
    confidence: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _type_agrees_with_flag(self) -> BugLabel:
        if self.is_concurrency_bug == (self.bug_type == BugType.NOT_CONCURRENCY):
            raise ValueError("bug_type is not_concurrency exactly when is_concurrency_bug is false")
        return self


@dataclass(frozen=True)
class FileInput:
    """One changed file as an annotator sees it."""

    path: str
    language: str
    is_test: bool
    before: str | None
    diff: str | None
    # (name/arity, first line, last line) of each changed function in the before version
    functions: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class CommitInput:
    """A commit to label: its message and its changed Elixir/Erlang files."""

    repo: str
    sha: str
    message: str
    files: tuple[FileInput, ...]


@dataclass(frozen=True)
class Annotation:
    """A label (or the reason there is none) with what it cost to make."""

    annotator: str
    label: BugLabel | None
    evidence: tuple[str, ...] = ()
    failure: str | None = None
    raw_response: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    input_hash: str | None = None  # what the annotator saw; equal inputs share a label
    input_note: str = ""  # what an input cap left out, "" when nothing
    is_plausible: bool | None = None  # the skeptical reviewer's verdict, when asked
    critique: str | None = None
    verifier: str | None = None
    reasks: int = 0  # times the model was asked again after an unusable answer
    extra: dict[str, Any] | None = None  # keys of the reply the schema does not name
