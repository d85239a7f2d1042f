"""The heuristic annotator's id names an explicit rules version: labels that change must come
with a new version (a new version relabels every stored commit on the next mine; a comment
edit must not).

The fingerprint is a hash of the labels the rules give a fixed grid of commits (cue words in
several message shapes over real-shaped diffs). After changing what the rules decide, raise
RULES_VERSION in annotators/heuristic.py and run `uv run python -m tests.test_rules_version`
to write the new fingerprint.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path

from annotators.heuristic import ANNOTATOR_ID, RULES_VERSION, annotate_heuristic
from annotators.schema import CommitInput, FileInput
from tests.conftest import (
    COUNTER_FIXED,
    COUNTER_RACY,
    COUNTER_TEST_FIXED,
    COUNTER_TEST_FLAKY,
    POOL_DEADLOCK,
    POOL_FIXED,
)

FINGERPRINT = Path(__file__).with_name("rules_fingerprint.json")
WORDS = ("race condition", "deadlock", "livelock", "timeout", "flaky test", "memory leak",
         "process leak", "monitor", "linked process", "mailbox overflow", "message ordering",
         "lock", "ets table", "atomic", "hang", "non-blocking", "trap_exit", "crash")
SHAPES = ("Fix {w} in the pool", "{w} when two callers check out at once",
          "Add {w} option", "Docs: explain {w}", "Bump version\n\nThere is a {w} here.")
PLAIN = "defmodule A do\n  def a, do: 1\nend\n"
DIFFS = (("lib/counter.ex", "elixir", False, COUNTER_RACY, COUNTER_FIXED),
         ("src/pool.erl", "erlang", False, POOL_DEADLOCK, POOL_FIXED),
         ("test/counter_test.exs", "elixir", True, COUNTER_TEST_FLAKY, COUNTER_TEST_FIXED),
         ("lib/a.ex", "elixir", False, PLAIN, PLAIN.replace("1", "2")))


def _commits() -> list[CommitInput]:
    commits = []
    for path, language, is_test, before, after in DIFFS:
        diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                            f"a/{path}", f"b/{path}"))
        file = FileInput(path, language, is_test, before, diff)
        commits += [CommitInput("r", f"{len(commits)}", shape.format(w=word), (file,))
                    for word in WORDS for shape in SHAPES]
    return commits


def fingerprint() -> str:
    labels = []
    for commit in _commits():
        annotation = annotate_heuristic(commit)
        label = annotation.label
        labels.append([label.model_dump(mode="json") if label else None,
                       list(annotation.evidence)])
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()


def test_labels_change_only_with_the_rules_version() -> None:
    """The labels of the grid match the fingerprint stored for this RULES_VERSION."""
    stored = json.loads(FINGERPRINT.read_text())
    assert ANNOTATOR_ID.startswith(f"heuristic/rules-v{RULES_VERSION}/")
    assert stored["rules_version"] == RULES_VERSION, (
        "RULES_VERSION changed: write the new fingerprint (python -m tests.test_rules_version)")
    assert fingerprint() == stored["sha256"], (
        "the heuristic rules label the grid differently: raise RULES_VERSION in "
        "annotators/heuristic.py, then python -m tests.test_rules_version")


if __name__ == "__main__":
    FINGERPRINT.write_text(json.dumps({"rules_version": RULES_VERSION,
                                       "sha256": fingerprint()}, indent=2) + "\n")
    print(f"wrote {FINGERPRINT}")
