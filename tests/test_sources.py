"""Turning what a user typed into a repository reference, refusing unsafe input."""

from __future__ import annotations

from pathlib import Path

import pytest

from miners.errors import RepoNotFoundError, UnsafeSourceError
from miners.sources import cache_dir_for, parse_remote_spec

GOOD = [
    ("elixir-ecto/db_connection", "https://github.com/elixir-ecto/db_connection.git",
     "github.com/elixir-ecto/db_connection"),
    ("https://github.com/ninenines/cowboy", "https://github.com/ninenines/cowboy",
     "github.com/ninenines/cowboy"),
    ("https://github.com/ninenines/cowboy.git", "https://github.com/ninenines/cowboy.git",
     "github.com/ninenines/cowboy"),
    ("git@github.com:erlang/rebar3.git", "git@github.com:erlang/rebar3.git",
     "github.com/erlang/rebar3"),
    ("ssh://git@gitlab.example.org/group/sub/app.git", "ssh://git@gitlab.example.org/group/sub/app.git",
     "gitlab.example.org/group/sub/app"),
]


@pytest.mark.parametrize(("spec", "url", "name"), GOOD)
def test_remote_specs(spec: str, url: str, name: str) -> None:
    """URLs, scp-like specs and GitHub owner/name give a clone URL and a canonical name."""
    remote = parse_remote_spec(spec)
    assert (remote.url, remote.name) == (url, name)


BAD = [
    "ext::sh -c touch% pwned",
    "fd::17",
    "file:///etc",
    "http://github.com/a/b",
    "--upload-pack=touch x",
    "https://github.com/../../etc",
    "https://user:secret@github.com/a/b",
    "https://github.com/a/b?x=1",
    "https://github.com/onlyowner",
]


@pytest.mark.parametrize("spec", BAD)
def test_unsafe_specs_are_refused(spec: str) -> None:
    """Transports that run commands, option injection and traversal are refused."""
    with pytest.raises(UnsafeSourceError):
        parse_remote_spec(spec)


def test_unknown_text_is_not_found() -> None:
    """Text that is neither a path nor a URL says so."""
    with pytest.raises(RepoNotFoundError, match="not an existing path"):
        parse_remote_spec("just some words")


def test_cache_dir_stays_inside_root(tmp_path: Path) -> None:
    """The mirror folder is host/owner/name.git under the cache root."""
    target = cache_dir_for(parse_remote_spec("elixir-lang/elixir"), tmp_path)
    assert target == tmp_path / "github.com" / "elixir-lang" / "elixir.git"
