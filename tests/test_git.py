"""The git edge: streamed scans, incremental ranges, and never writing to a local repo."""

from __future__ import annotations

import multiprocessing
import subprocess
import threading
import time
from pathlib import Path

import pytest

from miners.classify import PatternSet, classify_message
from miners.errors import GitCommandError
from miners.git import (
    BlobReader,
    count_commits,
    fetch_head,
    fetch_mirror,
    iter_commits,
    open_local,
    supports_pcre_grep,
)
from miners.sources import RemoteSpec
from tests.conftest import RepoBuilder
from tests.test_faults import one_sentence


def test_scan_reads_every_commit(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """Without grep, every commit reachable from HEAD is streamed with its metadata."""
    repo, shas = history
    commits = list(iter_commits(str(repo.path), ["HEAD"]))
    assert {c.sha for c in commits} == set(shas.values())
    assert count_commits(str(repo.path), ["HEAD"]) == len(shas)
    merge = next(c for c in commits if c.sha == shas["merge"])
    assert merge.is_merge and len(merge.parents) == 2
    race = next(c for c in commits if c.sha == shas["ets_race"])
    assert race.subject == "Fix race condition in Counter.bump"
    assert "Two processes" in race.message
    assert race.author_name == "Ada"


def test_git_grep_prefilter_agrees_with_python(
        history: tuple[RepoBuilder, dict[str, str]], patterns: PatternSet) -> None:
    """git's PCRE prefilter drops no commit the Python classifier would match."""
    repo, _ = history
    git_dir = str(repo.path)
    if not supports_pcre_grep(git_dir, patterns.prefilter.pattern):
        pytest.skip("this git has no PCRE; racemine falls back to classifying every message")
    every = {c.sha for c in iter_commits(git_dir, ["HEAD"])
             if classify_message(c.message, patterns).matched}
    grepped = {c.sha for c in iter_commits(git_dir, ["HEAD"], grep=patterns.prefilter.pattern)
               if classify_message(c.message, patterns).matched}
    assert every == grepped and len(every) >= 6


def test_exclude_gives_only_new_commits(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """Excluding the last mined tip leaves exactly the commits made since."""
    repo, _ = history
    old_head = fetch_head(str(repo.path))
    assert old_head is not None
    new = repo.commit("Fix race in shutdown", {"lib/shutdown.ex": "defmodule S do\nend\n"})
    commits = list(iter_commits(str(repo.path), ["HEAD"], [old_head]))
    assert [c.sha for c in commits] == [new]


def test_empty_repository_has_no_head(tmp_path: Path) -> None:
    """An empty repository is data: no HEAD, nothing to scan."""
    repo = RepoBuilder(tmp_path / "empty")
    assert fetch_head(str(repo.path)) is None
    assert count_commits(str(repo.path), []) == 0


def test_open_local_names_from_origin(history: tuple[RepoBuilder, dict[str, str]]) -> None:
    """A local path is named after its origin remote, else after its folder."""
    repo, _ = history
    assert open_local(str(repo.path)).name == "local/project"
    repo.git("remote", "add", "origin", "git@github.com:acme/project.git")
    assert open_local(str(repo.path)).name == "github.com/acme/project"
    assert open_local(str(repo.path), "acme/other").name == "acme/other"


def test_mirror_clones_then_fetches(history: tuple[RepoBuilder, dict[str, str]],
                                    tmp_path: Path) -> None:
    """A remote is cloned bare into the cache once, then fetched; the source is untouched."""
    repo, shas = history
    remote = RemoteSpec(url=str(repo.path), host="example.org", path=("acme", "project"))
    ref = fetch_mirror(remote, tmp_path / "cache")
    assert Path(ref.git_dir) == tmp_path / "cache" / "example.org" / "acme" / "project.git"
    assert fetch_head(ref.git_dir) == shas["merge"]
    new = repo.commit("Fix race after mirroring", {"lib/x.ex": "defmodule X do\nend\n"})
    fetch_mirror(remote, tmp_path / "cache")
    assert fetch_head(ref.git_dir) == new


def _blobs(repo: RepoBuilder, texts: list[bytes]) -> list[str]:
    """Write texts into the repository's object store; returns their ids."""
    return [subprocess.run(["git", "-C", str(repo.path), "hash-object", "-w", "--stdin"],
                           input=text, capture_output=True, check=True).stdout.decode().strip()
            for text in texts]


def test_blob_reader_reads_many_in_order(tmp_path: Path) -> None:
    """Blobs come back by id across several round trips and calls, repeats once each; one
    over the cap is sized and left unread (None)."""
    repo = RepoBuilder(tmp_path / "r")
    texts = [f"defmodule M{i} do\nend\n".encode() for i in range(150)]  # > 2 round trips
    ids = _blobs(repo, [*texts, b"x" * 5000])
    with BlobReader(str(repo.path)) as reader:
        got = reader.read([*ids, ids[3]], max_bytes=4096)
        assert [got[i] for i in ids[:150]] == texts and got[ids[150]] is None
        assert reader.read(reversed(ids[:2]), max_bytes=10) == {ids[1]: None, ids[0]: None}
        assert reader.read([ids[7]], max_bytes=4096) == {ids[7]: texts[7]}


def test_blob_reader_names_a_missing_blob_and_goes_on(tmp_path: Path) -> None:
    """A blob not in the object store is a sentence pointing at git fsck; the reader then
    still answers for blobs that are there."""
    repo = RepoBuilder(tmp_path / "r")
    (present,) = _blobs(repo, [b"present\n"])
    with BlobReader(str(repo.path)) as reader:
        with pytest.raises(GitCommandError) as err:
            reader.read([present, "1" * 40], max_bytes=100)
        one_sentence(str(err.value), "fsck")
        assert "1" * 40 in str(err.value)
        assert reader.read([present], max_bytes=100) == {present: b"present\n"}


def test_blob_reader_closes_with_a_forked_child_alive(tmp_path: Path) -> None:
    """A process forked while the reader is open (a parse worker) holds a copy of git's
    stdin; closing must not wait for git to see the end of it."""
    repo = RepoBuilder(tmp_path / "r")
    (blob,) = _blobs(repo, [b"text\n"])
    reader = BlobReader(str(repo.path))
    reader.read([blob], max_bytes=100)
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    child.start()
    try:
        closed = threading.Thread(target=reader.close, daemon=True)
        closed.start()
        closed.join(10)
        assert not closed.is_alive()
    finally:
        child.kill()
        child.join()


def test_an_unreachable_remote_fails_at_once(tmp_path: Path) -> None:
    """A host that refuses connections is not retried: one sentence naming the URL, at once,
    and no half-made mirror is left."""
    import socket

    from flows.jobs.mine import RepoSpec, mirror
    from miners.errors import RemoteUnreachableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"https://127.0.0.1:{port}/acme/project.git"
    started = time.perf_counter()
    with pytest.raises(RemoteUnreachableError) as caught:
        mirror(RepoSpec(url), tmp_path / "cache", None, retry_delays=(60.0, 60.0))
    assert time.perf_counter() - started < 5
    one_sentence(str(caught.value), url, "connect", "check the network connection")
    assert not list((tmp_path / "cache").rglob("*.git"))
