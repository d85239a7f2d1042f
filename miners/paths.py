"""Pure facts about file paths: which are Elixir/Erlang source, which are tests."""

from __future__ import annotations

import re

# Git pathspecs for the files racemine extracts (fnmatch: `*` also matches `/`).
SOURCE_PATHSPECS = ("*.ex", "*.exs", "*.erl", "*.hrl", "*.escript", "*.app.src")

_LANGUAGE = {".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hrl": "erlang",
             ".escript": "erlang", ".src": "erlang"}
_TEST = re.compile(
    r"(?:^|/)(?:test|tests|spec|integration_test)/|_test\.exs?$|_tests?\.erl$|_SUITE\.erl$"
    r"|(?:^|/)test_helper\.exs$"
)


def language_of(path: str) -> str | None:
    """'elixir' or 'erlang' for source paths racemine extracts, None for anything else."""
    dot = path.rfind(".")
    if dot < 0:
        return None
    if path.endswith(".app.src"):
        return "erlang"
    return _LANGUAGE.get(path[dot:]) if not path.endswith(".src") else None


def is_test_path(path: str) -> bool:
    """True for test code: files under test/ folders and *_test / *_SUITE modules."""
    return bool(_TEST.search(path))
