"""Prompts for the LLM annotator (pure): versioned templates, fenced untrusted data, caps."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources

from annotators.schema import SCHEMA_VERSION, BugLabel, CommitInput, FileInput

DEFAULT_MAX_INPUT_CHARS = 48_000  # about 14k tokens of code and message
# Characters per token of Elixir/Erlang code and English for the usual BPE tokenizers; chars/4
# undercounts code by about an eighth.
CHARS_PER_TOKEN = 3.5


def estimate_tokens(text_chars: int) -> int:
    """Tokens a request of this many characters is likely to count, before the server says."""
    return int(text_chars / CHARS_PER_TOKEN) + 1


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
    """A prompt template shipped in annotators/prompts (name like 'label_v2')."""
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


@cache
def _strict_schema_json() -> str:
    return json.dumps(_strict(BugLabel.model_json_schema()), separators=(",", ":"))


def strict_label_schema() -> dict[str, object]:
    """The label schema in the form OpenAI's strict structured outputs take: every object
    closed (additionalProperties false) with all its properties required (optional ones are
    nullable already), and no defaults."""
    return json.loads(_strict_schema_json())


def _strict(node: object) -> object:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k != "default"}
    if out.get("type") == "object" and isinstance(out.get("properties"), dict):
        out["additionalProperties"] = False
        out["required"] = list(out["properties"])
    return out


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


def _numbered(lines: list[str], start: int, end: int) -> str:
    return "\n".join(f"{n:5d}  {lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1))


_BEHAVIOUR = re.compile(r"^\s*(?:use\s+(?:GenServer|GenStage|GenStateMachine|Supervisor|Agent|"
                        r"DynamicSupervisor|GenEvent|:gen_statem)\b|-behaviou?r\((?:gen_server|"
                        r"gen_statem|gen_event|supervisor|gen_fsm)\))", re.MULTILINE)
_CALLBACK_HEAD = re.compile(r"^\s*(?:def\s+)?(handle_\w+|init|terminate|code_change|"
                            r"format_status|callback_mode)\s*\(")
_ATTRIBUTE = re.compile(r"^[-+]\s*(?:@([a-z_]\w*)\s+\S|-define\(\s*([A-Za-z_]\w*))")


def _context(f: FileInput) -> list[str]:
    """What a reader needs beside the diff of one file: the changed functions before and
    after, the module's other callbacks when it is a process, the uses of a changed module
    attribute or macro."""
    before = (f.before or "").split("\n")
    after = (f.after or "").split("\n")
    parts = []
    for fn in f.functions:
        if fn.before:
            parts.append(f"--- {f.path}: {fn.name} (before, lines {fn.before[0]}-"
                         f"{fn.before[1]})\n{_numbered(before, *fn.before)}")
        if fn.after and f.after:
            parts.append(f"--- {f.path}: {fn.name} (after, lines {fn.after[0]}-"
                         f"{fn.after[1]})\n{_numbered(after, *fn.after)}")
    if f.before and _BEHAVIOUR.search(f.before):
        changed = [fn.before for fn in f.functions if fn.before]
        heads = [f"{n:5d}  {line}" for n, line in enumerate(before, 1)
                 if _CALLBACK_HEAD.match(line) and not any(a <= n <= b for a, b in changed)]
        if heads:
            parts.append(f"--- {f.path}: the process's other callbacks (before, heads only)\n"
                         + "\n".join(heads[:60]))
    names = {m.group(1) or m.group(2) for m in map(_ATTRIBUTE.match, (f.diff or "").split("\n"))
             if m}
    for name in sorted(names)[:5]:
        use = re.compile(rf"@{re.escape(name)}\b|\?{re.escape(name)}\b")
        hits = [f"{n:5d}  {line}" for n, line in enumerate(before, 1) if use.search(line)]
        if hits:
            parts.append(f"--- {f.path}: lines that use {name} (before)\n"
                         + "\n".join(hits[:30]))
    return parts


def render_code(commit: CommitInput, max_chars: int) -> CodeView:
    """The changed code, changed functions first; cuts unchanged context before diffs.

    Order of what is dropped to fit max_chars: the context (the changed functions before
    and after, the other callbacks, the uses of changed attributes), then diffs of test
    files, then the tail of the remaining diffs.
    """
    diffs = [(f, f.diff or "") for f in commit.files]
    parts = [f"=== diff of {f.path} ({f.language}{', test' if f.is_test else ''}) ===\n{d}"
             for f, d in diffs]
    context = "\n\n".join(part for f in commit.files for part in _context(f))
    notes = []
    text = "\n\n".join(parts)
    if context and len(text) + len(context) <= max_chars:
        text = text + "\n\n=== context: line numbers are those of each version ===\n" + context
    elif context:
        notes.append("the changed functions' full text and the module context were left out")
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
    # The system message is the same bytes for every commit (no fence, no commit), so a
    # server's prefix cache (OpenAI's prompt caching, vLLM's prefix caching) can reuse it.
    system = _fill(template.system, schema=_schema_json())
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
    system = template.system  # the same bytes for every request: a cacheable prefix
    user = _fill(template.user, fence=fence, message=_defang(commit.message, fence),
                 code=_defang(code.text, fence), report=_report(label))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _report(label: BugLabel) -> str:
    """The label as the reviewer sees it: numbered steps, and no confidence (a reviewer that
    sees the labeler's certainty leans on it)."""
    data = label.model_dump(mode="json", exclude={"confidence"})
    data["event_sequence"] = [{"step": i, **step}
                              for i, step in enumerate(data["event_sequence"], 1)]
    return json.dumps(data, indent=1)


def _defang(text: str, fence: str) -> str:
    # The fence is random per request, but never let data carry it anyway.
    return text.replace(fence, "[fence]")


def input_hash(commit: CommitInput) -> str:
    """What the model sees of a commit, hashed: equal inputs can share one label."""
    digest = hashlib.sha256(commit.message.encode())
    for f in commit.files:
        digest.update(f"\0{f.path}\0{f.diff or ''}\0{f.functions!r}".encode())
        digest.update(hashlib.sha256((f.before or "").encode()).digest())
    return digest.hexdigest()[:20]
