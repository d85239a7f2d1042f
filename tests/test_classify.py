"""The commit-message classifier: word-bounded, weighted patterns with exclusions."""

from __future__ import annotations

from pathlib import Path

import pytest

from miners.classify import PatternSet, classify_message, load_pattern_set
from miners.errors import PatternFileError

CASES = [
    ("Fix race condition in Registry.register", True, ("race",)),
    ("Avoid races when two nodes join", True, ("race",)),
    ("Fix racy test", True, ("race",)),
    ("Fix deadlock in pool checkout", True, ("deadlock",)),
    ("Prevent livelock between retries", True, ("livelock",)),
    ("Fix flaky test in supervisor suite", True, ("flaky",)),
    ("Handle EXIT messages from trapped exits", True, ("trap_exit", "exit_down")),
    ("Fix timeout when the server is busy", True, ("timeout",)),
    ("Fix trace output formatting", False, ()),
    ("Handle brace in the formatter", False, ()),
    ("Update mix.lock", False, ()),
    ("Bump rebar.lock for new deps", False, ()),
    ("Add grace period option", False, ()),
    ("Embrace the new API", False, ()),
    ("Add timeout option", False, ("timeout",)),
    ("Support atomic values in the type checker", False, ()),
    ("Use atomically updated counters to fix lost increments", True, ("atomic",)),
    ("Fix issues with graceful shutdown of workers", True, ("shutdown",)),
    ("Ensure the call is non-blocking", True, ("blocking",)),
    ("Use start_timer instead of send_after for idle timeouts", True, ("timeout", "timer")),
    ("Add a timeout so this test passes", False, ("timeout",)),
    ("Add some sleep to get this test to pass", False, ()),
    ("Longer timeout to make the tests pass", True, ("timeout",)),
    ("Shutdown the node", False, ("shutdown",)),
    ("Fix leakage of connection processes", True, ("leak",)),
    ("Rewrite the client to run synchronously", False, ("synchronous",)),
    ("Ensure stop is synchronous", True, ("synchronous",)),
    ("Check for {atomic, ok} from the transaction", False, ()),
    # a race by its other name
    ("Verify the port hand-off\n\nThis shrinks the TOCTOU window.", True, ("race",)),
    ("Re-read the row after the time-of-check", True, ("race",)),
    # every form of timing out, as the annotator reads them
    ("Fix the checkout that times out under load", True, ("timeout",)),
]


@pytest.mark.parametrize(("message", "matched", "terms"), CASES)
def test_classify_message(patterns: PatternSet, message: str, matched: bool,
                          terms: tuple[str, ...]) -> None:
    """Each message matches (or not) with exactly the named patterns."""
    result = classify_message(message, patterns)
    assert result.matched is matched
    assert result.terms == terms


def test_weak_terms_need_fix_intent(patterns: PatternSet) -> None:
    """A weak word alone stays below the threshold; with a fix-intent word it reaches it."""
    assert not classify_message("Monitor the worker", patterns).matched
    assert classify_message("Fix leak of monitors when the worker dies", patterns).matched


def test_pattern_file_overrides_defaults(tmp_path: Path) -> None:
    """A user's pattern file replaces the built-in patterns entirely."""
    path = tmp_path / "p.toml"
    path.write_text('min_score = 1.0\n[[pattern]]\nname = "gremlin"\nregex = \'\\bgremlins?\\b\'\n')
    custom = load_pattern_set(path)
    assert classify_message("Remove the gremlins", custom).terms == ("gremlin",)
    assert not classify_message("Fix race condition", custom).matched


@pytest.mark.parametrize("text", ["not toml [[", '[[pattern]]\nname = "x"\nregex = "("\n',
                                  "min_score = 1\n"])
def test_bad_pattern_file_names_the_file(tmp_path: Path, text: str) -> None:
    """An unreadable pattern file stops with an error naming the file."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PatternFileError, match=r"bad\.toml"):
        load_pattern_set(path)


def test_prefilter_is_a_superset(patterns: PatternSet) -> None:
    """Every message the classifier matches also hits the prefilter git greps with."""
    for message, matched, _ in CASES:
        if matched:
            assert patterns.prefilter.search(message)


def test_a_users_patterns_run_in_linear_time(tmp_path: Path) -> None:
    """A nested quantifier in a user's pattern file meets an adversarial message and the
    classifier still answers at once (RE2); Python's backtracking engine would spin."""
    import time

    path = tmp_path / "patterns.toml"
    path.write_text('[[pattern]]\nname = "a"\nregex = \'(a+)+$\'\n')
    patterns = load_pattern_set(path)
    assert patterns.linear
    started = time.perf_counter()
    for n in (40, 4_000, 400_000):
        assert not classify_message("a" * n + "b", patterns).matched
    assert time.perf_counter() - started < 1.0
    assert classify_message("aaaa", patterns).terms == ("a",)


def test_a_pattern_the_linear_engine_cannot_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "patterns.toml"
    path.write_text('[[pattern]]\nname = "fix_race"\nregex = \'fix(?= race)\'\n')
    with pytest.raises(PatternFileError, match=r"fix_race.*linear-time engine \(RE2\)"):
        load_pattern_set(path)


def test_user_patterns_keep_their_meaning_on_re2(tmp_path: Path,
                                                 patterns: PatternSet) -> None:
    """racemine's own file, read as a user's file (RE2), classifies like the default (re)."""
    from importlib import resources

    path = tmp_path / "patterns.toml"
    path.write_text(resources.files("miners").joinpath("patterns.toml").read_text("utf-8"))
    linear = load_pattern_set(path)
    for message, _, _ in CASES:
        assert classify_message(message, linear) == classify_message(message, patterns), message
