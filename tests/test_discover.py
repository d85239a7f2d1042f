"""Discovery against a GitHub API stand-in on 127.0.0.1, through the real httpx client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.jobs.discover import discover
from miners.github import GitHubError, SearchQuery
from tests.github_server import FakeGitHub, make_repos
from warehouse.db import connect


def _expected(repos: list[dict], min_stars: int = 10) -> set[str]:
    return {f"github.com/{r['full_name']}" for r in repos
            if r["stargazers_count"] >= min_stars and not r["fork"] and not r["archived"]}


def _stored(warehouse: Path) -> set[str]:
    con = connect(warehouse)
    names = {r[0] for r in con.execute("SELECT repo FROM repos").fetchall()}
    con.close()
    return names


def test_search_splits_past_the_1000_cap(warehouse_path: Path) -> None:
    """2,700 matches (1,200 sharing one star count) are all found, each once."""
    repos = make_repos(1500, crowded_stars=50, crowd=1200)
    sleeps: list[float] = []
    with FakeGitHub(repos) as gh:
        saved, _, _ = discover(warehouse_path, gh.url, None, SearchQuery(), sleep=sleeps.append)
        assert gh.max_page_results <= 1000
    assert _stored(warehouse_path) == _expected(repos)
    assert saved == len(_expected(repos)) and sleeps == []


def test_facts_are_stored(warehouse_path: Path) -> None:
    """Stars, SPDX license (NOASSERTION as unknown), branch, flags and topics are kept."""
    repos = make_repos(30)
    with FakeGitHub(repos) as gh:
        discover(warehouse_path, gh.url, None, SearchQuery(include_forks=True))
    con = connect(warehouse_path)
    row = con.execute("SELECT stars, license, default_branch, fork, topics, language FROM repos "
                      "WHERE repo = 'github.com/owner0/repo0'").fetchone()
    assert row == (10, None, "main", False, ["otp"], "erlang")
    assert con.execute("SELECT count(*) FROM repos WHERE fork").fetchone()[0] > 0


def test_limits_are_waited_out(warehouse_path: Path) -> None:
    """A secondary limit (403 + Retry-After), an exhausted quota and a 502 cost waits only."""
    repos = make_repos(50)
    reset = int(time.time()) + 5

    def faults(number: int, path: str) -> tuple[int, dict[str, str], str] | None:
        if number == 0:
            return 403, {"Retry-After": "7"}, '{"message": "secondary rate limit"}'
        if number == 1:
            return 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}, \
                '{"message": "API rate limit exceeded"}'
        if number == 2:
            return 502, {}, "bad gateway"
        return None

    sleeps: list[float] = []
    with FakeGitHub(repos, faults) as gh:
        discover(warehouse_path, gh.url, "tok", SearchQuery(), sleep=sleeps.append)
    assert sleeps[0] == 7.0 and 1.0 <= sleeps[1] <= 6.0 and len(sleeps) == 3
    assert _stored(warehouse_path) == _expected(repos)


def test_second_run_is_answered_by_etags(warehouse_path: Path) -> None:
    """An unchanged search is served by 304s and costs no quota."""
    repos = make_repos(300)
    with FakeGitHub(repos) as gh:
        discover(warehouse_path, gh.url, None, SearchQuery())
        used = gh.quota_used
        _, requests, not_modified = discover(warehouse_path, gh.url, None, SearchQuery())
        assert gh.quota_used == used and not_modified == requests > 0
    assert _stored(warehouse_path) == _expected(repos)


def test_curated_list(tmp_path: Path, warehouse_path: Path) -> None:
    """A list file adds GitHub repos with their facts and other hosts by name."""
    repos = make_repos(5)
    listing = tmp_path / "repos.txt"
    listing.write_text("# my list\nowner1/repo1  # a comment\n\nhttps://gitlab.com/g/app.git\n")
    with FakeGitHub(repos) as gh:
        discover(warehouse_path, gh.url, None, None, list_file=listing)
    assert _stored(warehouse_path) == {"github.com/owner1/repo1", "gitlab.com/g/app"}


@pytest.mark.parametrize(("status", "body", "match"), [
    (404, '{"message": "Not Found"}', "HTTP 404"),
    (200, "<html>not json</html>", "not JSON"),
    (401, '{"message": "Bad credentials"}', "RACEMINE_GITHUB_TOKEN"),
])
def test_api_errors_are_one_sentence(tmp_path: Path, warehouse_path: Path, status: int,
                                     body: str, match: str) -> None:
    """Refusals and garbage stop with a sentence naming the URL and what to do."""
    listing = tmp_path / "repos.txt"
    listing.write_text("owner1/repo1\n")
    with FakeGitHub([], lambda n, p: (status, {}, body)) as gh, \
            pytest.raises(GitHubError, match=match):
        discover(warehouse_path, gh.url, None, None, list_file=listing)


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_api_fails_at_once(tmp_path: Path, warehouse_path: Path) -> None:
    """A refused connection is not retried for minutes: one sentence, at once."""
    from flows.jobs.discover import discover_repos
    from flows.settings import Settings

    settings = Settings(warehouse=warehouse_path,
                        github_api_url=f"http://127.0.0.1:{_closed_port()}")
    started = time.perf_counter()
    with pytest.raises(GitHubError, match=r"cannot connect.*RACEMINE_GITHUB_API_URL"):
        discover_repos(settings, SearchQuery(), retry_delays=(60.0, 60.0))
    assert time.perf_counter() - started < 5
