"""Properties under random and pathological input: the message classifier, the diff and
function parsers and the LLM-reply parser never crash and never hang."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotators.diffs import parse_hunks
from annotators.heuristic import annotate_heuristic
from annotators.replies import ReplyError, parse_label, parse_verdict
from annotators.schema import CommitInput, FileInput, FunctionSpan
from miners.classify import classify_message, load_pattern_set
from miners.extract import count_changed_lines, split_patch
from miners.functions import build_function_pairs, parse_functions
from miners.records import ParseStatus

PATTERNS = load_pattern_set()
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
HANG = 20  # seconds: far above any honest run, far below a catastrophic one

# Text that looks like the inputs: commit words, code tokens, diff markers, JSON.
WORDS = st.sampled_from([
    "fix", "race", "condition", "deadlock", "timeout", "flaky", "lock", "ets", "monitor",
    "GenServer.call", "receive", "after", "spawn_link", "trap_exit", "defmodule", "def",
    "defp", "do", "end", "fn", "->", "(", ")", "[", "]", "{", "}", "%{", "#", "%", ";", ".",
    ",", "\n", "  ", "\t", "@@ -1,3 +1,4 @@", "+", "-", "diff --git a/x b/x", "index ",
    "\"", "'", "\\", "é", "\x00", "-module(m).", "foo(X) ->", "when", "quote", "unquote",
])
CODEISH = st.lists(WORDS, max_size=300).map(" ".join)
TEXT = st.one_of(st.text(max_size=3000), CODEISH)


@contextmanager
def no_hang(seconds: int = HANG) -> Iterator[None]:
    """Fail, rather than wait forever, when a call does not return in time."""
    def stop(*_: object) -> None:
        raise TimeoutError(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@FUZZ
@given(TEXT)
def test_classifier_never_crashes(message: str) -> None:
    """Any message gets a verdict; a match always names the terms it rests on."""
    match = classify_message(message, PATTERNS)
    assert isinstance(match.matched, bool)
    assert not match.matched or match.terms


@FUZZ
@given(TEXT, st.sampled_from(["elixir", "erlang"]))
def test_function_parser_never_crashes(source: str, language: str) -> None:
    """Any text parses to a status and units whose spans lie inside it."""
    status, units = parse_functions(source, language)
    assert isinstance(status, ParseStatus)
    lines = source.count("\n") + 1
    assert all(1 <= u.start_line <= u.end_line <= lines for u in units)


@FUZZ
@given(TEXT, TEXT, st.sampled_from(["elixir", "erlang"]))
def test_function_pairs_never_crash(before: str, after: str, language: str) -> None:
    build_function_pairs(before, after, language)


@FUZZ
@given(TEXT)
def test_diff_parsers_never_crash(text: str) -> None:
    """Hunks, patch sections and line counts come out of any text without an exception."""
    parse_hunks(text)
    data = text.encode("utf-8", errors="surrogatepass")
    split_patch(data)
    added, removed = count_changed_lines(data)
    assert added >= 0 and removed >= 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)
LABELISH = st.fixed_dictionaries({}, optional={
    "is_concurrency_bug": st.booleans() | JSON, "bug_type": st.sampled_from(
        ["race_condition", "deadlock", "not_concurrency", "nonsense"]) | JSON,
    "scope": st.sampled_from(["production", "test"]) | JSON,
    "bug_location": st.fixed_dictionaries({"file": st.sampled_from(["lib/a.ex", "x"])},
                                          optional={"function": st.text(max_size=20),
                                                    "start_line": st.integers(-5, 50),
                                                    "end_line": st.integers(-5, 50)}) | JSON,
    "event_sequence": st.lists(st.fixed_dictionaries(
        {"actor": st.text(max_size=10), "action": st.sampled_from(["send", "call", "x"])},
        optional={"file": st.sampled_from(["lib/a.ex", "x"]), "line": st.integers(-1, 9),
                  "function": st.text(max_size=8)}) | st.text(max_size=30), max_size=4) | JSON,
    "explanation": st.text(max_size=50) | JSON, "fix_summary": st.text(max_size=50) | JSON,
    "confidence": st.floats(-1, 2) | JSON, "is_plausible": st.booleans() | JSON})
COMMIT = CommitInput("github.com/a/b", "0" * 40, "Fix race", (
    FileInput("lib/a.ex", "elixir", False, "defmodule A do\n  def f, do: 1\nend\n",
              "@@ -1,3 +1,3 @@\n-a\n+b\n", (FunctionSpan("f/0", "modified", (2, 2), (2, 2)),)),))


def _reply_texts() -> st.SearchStrategy[str]:
    wrapped = LABELISH.map(json.dumps)
    return st.one_of(TEXT, JSON.map(json.dumps), wrapped,
                     wrapped.map(lambda s: f"Here you go:\n```json\n{s}\n```\nThanks"),
                     wrapped.map(lambda s: s[: len(s) // 2]))  # truncated


@FUZZ
@given(_reply_texts())
def test_reply_parser_only_raises_reply_errors(text: str) -> None:
    """Any reply is a valid label or a ReplyError that can be sent back to the model."""
    for parse in (lambda t: parse_label(t, COMMIT), parse_verdict):
        try:
            parse(text)
        except ReplyError as exc:
            assert str(exc)


def _deep(depth: int) -> dict[str, str]:
    return {
        "elixir": "defmodule Deep do\n  def f(x) do\n" + "    fn ->\n" * depth
                  + "      x\n" + "    end\n" * depth + "  end\nend\n",
        "elixir_parens": "defmodule P do\n  def f, do: " + "(" * depth + "1" + ")" * depth
                         + "\nend\n",
        "erlang": "-module(d).\nf(X) ->\n" + "begin\n" * depth + "X\n" + "end\n" * depth
                  + ".\n",
        "unclosed": "defmodule U do\n" + "  def f do\n" * depth,
    }


@pytest.mark.parametrize("name", ["elixir", "elixir_parens", "erlang", "unclosed"])
def test_deeply_nested_code_is_parsed_without_crash_or_hang(name: str) -> None:
    """Code nested 5,000 deep (and never closed) parses, partially at worst."""
    source = _deep(5_000)[name]
    language = "erlang" if name == "erlang" else "elixir"
    with no_hang():
        status, _ = parse_functions(source, language)
        build_function_pairs(source, source + "\n", language)
    assert isinstance(status, ParseStatus)


PATHOLOGICAL: dict[str, Callable[[], str]] = {
    "words": lambda: "fix race condition deadlock timeout " * 30_000,
    "one_word": lambda: "a" * 1_000_000,
    "spaces": lambda: " " * 1_000_000 + "race",
    "brackets": lambda: "fix " + "(" * 500_000,
    "near_misses": lambda: "racing races raced trace brace " * 30_000,
    "nested_json": lambda: "{\"a\": " * 100_000 + "1" + "}" * 100_000,
    "open_json": lambda: "[" * 1_000_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_megabyte_inputs_do_not_hang(name: str) -> None:
    """1 MB messages, replies and diffs finish (no catastrophic backtracking or recursion)."""
    text = PATHOLOGICAL[name]()
    started = time.perf_counter()
    with no_hang():
        classify_message(text, PATTERNS)
        parse_hunks(text)
        with pytest.raises(ReplyError):
            parse_verdict(text)
        annotate_heuristic(CommitInput("github.com/a/b", "0" * 40, text, COMMIT.files))
    assert time.perf_counter() - started < HANG
