"""Prompts for the LLM annotator (pure): versioned templates, fenced untrusted data, caps."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources

from annotators.schema import SCHEMA_VERSION, BugLabel, CommitInput

DEFAULT_MAX_INPUT_CHARS = 48_000  # about 12k tokens of code and message


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    user: str

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.system + "\0" + self.user).encode()).hexdigest()[:10]


@cache
def load_template(name: str) -> Template:
    """A prompt template shipped in annotators/prompts (name like 'label_v1')."""
    text = resources.files("annotators").joinpath("prompts", f"{name}.txt").read_text("utf-8")
    _, rest = text.split("=== system ===\n", 1)
    system, user = rest.split("=== user ===\n", 1)
    return Template(name, system.strip(), user.strip())


@cache
def _schema_json() -> str:
    return json.dumps(BugLabel.model_json_schema(), separators=(",", ":"))


def label_schema() -> dict[str, object]:
    """The JSON schema of a label, as sent in response_format (a fresh copy each call)."""
    return json.loads(_schema_json())


def annotator_id(model: str, template: Template) -> str:
    """model + prompt hash + schema version: a new prompt or model labels anew."""
    return f"llm/{model}/{template.name}-{template.digest}/schema-{SCHEMA_VERSION}"


def new_fence() -> str:
    """A random delimiter token the data cannot know in advance."""
    return secrets.token_hex(8)


def _fill(template: str, **values: str) -> str:
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out


@dataclass(frozen=True)
class CodeView:
    text: str
    note: str  # what was cut to fit the cap, "" when nothing was


def render_code(commit: CommitInput, max_chars: int) -> CodeView:
    """The changed code, changed functions first; cuts unchanged context before diffs.

    Order of what is dropped to fit max_chars: the full before-text of changed functions
    (context), then diffs of test files, then the tail of the remaining diffs.
    """
    diffs = [(f, f.diff or "") for f in commit.files]
    functions = []
    for f in commit.files:
        lines = (f.before or "").split("\n")
        for name, start, end in f.functions:
            body = "\n".join(f"{n:5d}  {lines[n - 1]}" for n in range(start, min(end, len(lines))
                                                                    + 1))
            functions.append(f"--- {f.path}: {name} (before, lines {start}-{end})\n{body}")
    parts = [f"=== diff of {f.path} ({f.language}{', test' if f.is_test else ''}) ===\n{d}"
             for f, d in diffs]
    context = "\n\n".join(functions)
    notes = []
    text = "\n\n".join(parts)
    if context and len(text) + len(context) <= max_chars:
        text = text + "\n\n=== changed functions, before version ===\n" + context
    elif context:
        notes.append("the before-version bodies of the changed functions were left out")
    if len(text) > max_chars:
        production = [p for (f, _), p in zip(diffs, parts, strict=True) if not f.is_test]
        if production and len("\n\n".join(production)) < len(text):
            text = "\n\n".join(production)
            notes.append("diffs of test files were left out")
    if len(text) > max_chars:
        text = text[:max_chars]
        notes.append(f"the diff was cut after {max_chars} characters")
    return CodeView(text, "; ".join(notes))


def build_label_messages(commit: CommitInput, template: Template, fence: str,
                         max_chars: int = DEFAULT_MAX_INPUT_CHARS
                         ) -> tuple[list[dict[str, str]], str]:
    """Chat messages for labeling one commit, and a note on what the cap cut."""
    code = render_code(commit, max_chars)
    system = _fill(template.system, fence=fence, schema=_schema_json())
    note = f"Note: to fit the input limit, {code.note}.\n\n" if code.note else ""
    user = _fill(template.user, fence=fence, repo=commit.repo, sha=commit.sha,
                 message=_defang(commit.message, fence),
                 files=", ".join(f.path for f in commit.files) or "(none)",
                 code=_defang(code.text, fence), note=note)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], code.note


def build_verify_messages(commit: CommitInput, label: BugLabel, template: Template,
                          fence: str, max_chars: int = DEFAULT_MAX_INPUT_CHARS
                          ) -> list[dict[str, str]]:
    """Chat messages asking a skeptical reviewer to check one label against the code."""
    code = render_code(commit, max_chars)
    system = _fill(template.system, fence=fence)
    user = _fill(template.user, fence=fence, message=_defang(commit.message, fence),
                 code=_defang(code.text, fence), report=label.model_dump_json(indent=1))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _defang(text: str, fence: str) -> str:
    # The fence is random per request, but never let data carry it anyway.
    return text.replace(fence, "[fence]")


def input_hash(commit: CommitInput) -> str:
    """What the model sees of a commit, hashed: equal inputs can share one label."""
    digest = hashlib.sha256(commit.message.encode())
    for f in commit.files:
        digest.update(f"\0{f.path}\0{f.diff or ''}\0{f.functions!r}".encode())
    return digest.hexdigest()[:20]
