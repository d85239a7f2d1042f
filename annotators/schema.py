"""The label every annotator produces: validated, versioned, shared by heuristic and LLM."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# 2: event steps as records, the analysis and explanation before the verdict, explanation
# optional (NULL when nothing derived one).
SCHEMA_VERSION = 2


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


class Action(StrEnum):
    """What one step of an interleaving does (a closed set the trace checks know)."""

    CALL = "call"
    CAST = "cast"
    SEND = "send"
    RECEIVE = "receive"
    REPLY = "reply"
    SPAWN = "spawn"
    LINK = "link"
    MONITOR = "monitor"
    EXIT = "exit"
    DOWN = "down"
    ETS_READ = "ets_read"
    ETS_WRITE = "ets_write"
    REGISTER = "register"
    LOOKUP = "lookup"
    DB_READ = "db_read"
    DB_WRITE = "db_write"
    TIMER = "timer"
    TIMEOUT = "timeout"
    OTHER = "other"


class EventStep(BaseModel):
    """One step of the interleaving that triggers the bug."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str = Field(min_length=1, max_length=120)  # a process role: "caller", "Pool server"
    action: Action
    target: str | None = None  # the process, table or name acted on, when there is one
    file: str | None = None  # where in the code it happens, in the before version
    function: str | None = None  # name/arity
    line: int | None = Field(default=None, ge=1)
    note: str = Field(default="", max_length=400)


def render_step(number: int, step: EventStep) -> str:
    """A step as one line for reading: 1. [caller] call → Pool (lib/pool.ex:40 checkout/2): …"""
    target = f" \u2192 {step.target}" if step.target else ""
    place = ""
    if step.file:
        where = step.file + (f":{step.line}" if step.line else "")
        place = f" ({where}{' ' + step.function if step.function else ''})"
    note = f": {step.note}" if step.note else ""
    return f"{number}. [{step.actor}] {step.action.value}{target}{place}{note}"


class BugLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    function: str | None = None  # name/arity
    start_line: int | None = Field(default=None, ge=1)  # in the before version
    end_line: int | None = Field(default=None, ge=1)


class BugLabel(BaseModel):
    """A structured description of the bug a commit fixes (or says it is no such fix).

    The fields are in the order a model should write them: the analysis, the steps and the
    explanation come before the verdict, so under schema-enforced decoding the model
    reasons before it decides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    analysis: str = ""  # the reasoning: what the code does, which processes take part
    event_sequence: list[EventStep] = Field(default_factory=list)
    explanation: str | None = None  # why the steps break the code; None when none was derived
    bug_location: BugLocation | None = None
    fix_summary: str
    is_concurrency_bug: bool
    bug_type: BugType
    scope: Scope
    confidence: float = Field(ge=0.0, le=1.0)

    @property
    def event_text(self) -> list[str]:
        return [render_step(i, s) for i, s in enumerate(self.event_sequence, 1)]

    @model_validator(mode="after")
    def _type_agrees_with_flag(self) -> BugLabel:
        if self.is_concurrency_bug == (self.bug_type == BugType.NOT_CONCURRENCY):
            raise ValueError("bug_type is not_concurrency exactly when is_concurrency_bug is false")
        return self


@dataclass(frozen=True)
class FunctionSpan:
    """A changed function of a file: its lines in the before and after versions (1-based,
    inclusive; None on the side where it does not exist)."""

    name: str  # name/arity, or test "description"
    change: str  # added | removed | modified
    before: tuple[int, int] | None
    after: tuple[int, int] | None = None


@dataclass(frozen=True)
class FileInput:
    """One changed file as an annotator sees it."""

    path: str
    language: str
    is_test: bool
    before: str | None
    diff: str | None
    functions: tuple[FunctionSpan, ...] = ()  # the changed functions
    after: str | None = None

    def before_spans(self) -> list[tuple[str, int, int]]:
        """(name/arity, first line, last line) of each changed function that existed before."""
        return [(f.name, *f.before) for f in self.functions if f.before]


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
    explanation_source: str | None = None  # model | rule:<name> | none: <why>
    checks: LabelChecks | None = None  # the trace checks' outcome (annotators/checks.py)
    step_reviews: tuple[StepReview, ...] = ()  # the reviewer's verdict per step, when asked


@dataclass(frozen=True)
class StepCheck:
    """The trace checks' outcome for one step: ok, or why not (None: nothing to check)."""

    ok: bool | None
    failure: str | None = None


@dataclass(frozen=True)
class LabelChecks:
    """The trace checks' outcome for a label: every failure, and each step's outcome."""

    failures: tuple[str, ...]
    steps: tuple[StepCheck, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class StepReview:
    plausible: bool
    note: str = ""
