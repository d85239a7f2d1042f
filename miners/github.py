"""The GitHub edge: repository search through httpx, polite to every limit GitHub has.

Pagination through Link headers; the primary rate limit (X-RateLimit-Remaining/Reset) and
secondary limits (403/429 with Retry-After) are waited out, not crashed on; conditional
requests with ETags make an unchanged page cost no quota; and a query that matches more
than the 1,000 results search returns is split into star ranges, then creation-date
ranges, until each part fits. The cache is a callback pair, so this module never sees the
warehouse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from miners.errors import MinerError

SEARCH_CAP = 1000
PER_PAGE = 100


class GitHubError(MinerError):
    """The GitHub API refused or failed in a way waiting does not fix."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached or kept failing: worth retrying later."""


class PageCache(Protocol):
    """Where conditional requests keep their ETags and the bodies they stand for."""

    def get(self, url: str) -> tuple[str, str] | None: ...

    def put(self, url: str, etag: str, body: str) -> None: ...


class _License(BaseModel):
    model_config = ConfigDict(extra="ignore")
    spdx_id: str | None = None


class _Repo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    full_name: str
    clone_url: str
    stargazers_count: int = 0
    language: str | None = None
    license: _License | None = None
    default_branch: str | None = None
    archived: bool = False
    fork: bool = False
    pushed_at: str | None = None
    created_at: str | None = None
    topics: list[str] = []


class _SearchPage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    total_count: int
    incomplete_results: bool = False
    items: list[_Repo]


@dataclass(frozen=True)
class RepoInfo:
    """What discovery stores about a repository."""

    name: str  # github.com/owner/name
    url: str
    stars: int
    language: str | None
    license: str | None  # SPDX id; None when GitHub does not know it
    default_branch: str | None
    archived: bool
    fork: bool
    pushed_at: str | None
    topics: tuple[str, ...]


@dataclass(frozen=True)
class SearchQuery:
    languages: tuple[str, ...] = ("Elixir", "Erlang")
    min_stars: int = 10
    pushed_since: date | None = None
    topics: tuple[str, ...] = ()
    include_forks: bool = False
    include_archived: bool = False

    def qualifiers(self, language: str, stars: tuple[int, int | None],
                   created: tuple[date, date] | None = None) -> str:
        lo, hi = stars
        parts = [f"language:{language}", f"stars:{lo}..{hi}" if hi is not None else
                 f"stars:>={lo}"]
        if self.pushed_since:
            parts.append(f"pushed:>={self.pushed_since.isoformat()}")
        parts += [f"topic:{t}" for t in self.topics]
        if self.include_forks:
            parts.append("fork:true")
        if not self.include_archived:
            parts.append("archived:false")
        if created:
            parts.append(f"created:{created[0].isoformat()}..{created[1].isoformat()}")
        return " ".join(parts)


def github_http_client(api_url: str, token: str | None, timeout: float = 30.0
                       ) -> httpx.Client:
    """An httpx client for the GitHub REST API (the token only goes to api_url)."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
               "User-Agent": "racemine"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=api_url, headers=headers, timeout=timeout)


class GitHubClient:
    """Search requests with waiting on limits; `sleep` is injectable for tests."""

    def __init__(self, client: httpx.Client, cache: PageCache | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_wait_s: float = 3600,
                 attempts: int = 5) -> None:
        self._client = client
        self._cache = cache
        self._sleep = sleep
        self._max_wait = max_wait_s
        self._attempts = attempts
        self.requests = 0
        self.not_modified = 0

    def get_json(self, url: str, params: dict[str, Any] | None = None
                 ) -> tuple[Any, httpx.Headers]:
        """GET with ETag, retries and limit waits; returns (JSON, headers)."""
        request = self._client.build_request("GET", url, params=params)
        key = str(request.url)
        cached = self._cache.get(key) if self._cache else None
        if cached:
            request.headers["If-None-Match"] = cached[0]
        for attempt in range(self._attempts):
            self.requests += 1
            try:
                response = self._client.send(request)
            except httpx.ConnectError as exc:  # no name resolution, nothing listening
                raise GitHubError(f"GitHub API {key}: cannot connect ({exc}); check the "
                                  "network connection and RACEMINE_GITHUB_API_URL") from exc
            except httpx.TransportError as exc:
                if attempt + 1 == self._attempts:
                    raise GitHubUnavailable(f"GitHub API {key}: unreachable ({exc}); check "
                                      "RACEMINE_GITHUB_API_URL and the network") from exc
                self._sleep(min(2 ** attempt, 60))
                continue
            if response.status_code == 304 and cached:
                self.not_modified += 1
                return _json(cached[1], key), response.headers
            if response.status_code == 200:
                etag = response.headers.get("ETag")
                if etag and self._cache:
                    self._cache.put(key, etag, response.text)
                self._wait_if_exhausted(response.headers)
                return _json(response.text, key), response.headers
            wait = self._limit_wait(response)
            if wait is not None:
                self._wait(wait, key)
                continue
            if response.status_code >= 500 and attempt + 1 < self._attempts:
                self._sleep(min(2 ** attempt, 60))
                continue
            raise GitHubError(f"GitHub API {key}: HTTP {response.status_code} "
                              f"({_message(response)}); "
                              + ("set RACEMINE_GITHUB_TOKEN" if response.status_code in
                                 (401, 403) else "check the query"))
        raise GitHubUnavailable(f"GitHub API {key}: no answer after {self._attempts} attempts; "
                          "try again later")

    def _limit_wait(self, response: httpx.Response) -> float | None:
        if response.status_code not in (403, 429):
            return None
        if "retry-after" in response.headers:  # secondary rate limit
            return _number(response.headers["retry-after"], 60.0)
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = _number(response.headers.get("x-ratelimit-reset", ""), time.time() + 60)
            return max(1.0, reset - time.time())
        return None

    def _wait_if_exhausted(self, headers: httpx.Headers) -> None:
        if headers.get("x-ratelimit-remaining") == "0":
            reset = _number(headers.get("x-ratelimit-reset", ""), time.time() + 60)
            self._wait(max(1.0, reset - time.time()), "the next request")

    def _wait(self, seconds: float, what: str) -> None:
        if seconds > self._max_wait:
            raise GitHubError(f"GitHub API {what}: rate limited for {seconds:.0f}s, longer "
                              f"than the {self._max_wait:.0f}s allowed; run again later or "
                              "set RACEMINE_GITHUB_TOKEN")
        self._sleep(seconds)


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]


def _json(text: str, url: str) -> Any:
    try:
        return httpx.Response(200, text=text).json()
    except ValueError as exc:
        raise GitHubError(f"GitHub API {url}: the reply was not JSON; check "
                          "RACEMINE_GITHUB_API_URL") from exc


def _page(data: Any, url: str) -> _SearchPage:
    try:
        return _SearchPage.model_validate(data)
    except ValidationError as exc:
        raise GitHubError(f"GitHub API {url}: unexpected search reply ({exc.errors()[0]['msg']})"
                          ) from exc


def _info(item: _Repo) -> RepoInfo:
    spdx = item.license.spdx_id if item.license else None
    return RepoInfo(name=f"github.com/{item.full_name}", url=item.clone_url,
                    stars=item.stargazers_count, language=item.language,
                    license=None if spdx in (None, "NOASSERTION") else spdx,
                    default_branch=item.default_branch, archived=item.archived, fork=item.fork,
                    pushed_at=item.pushed_at, topics=tuple(item.topics))


def iter_search(gh: GitHubClient, api_url: str, query: SearchQuery,
                today: date | None = None) -> Iterator[RepoInfo]:
    """Every repository matching the query, each once, past the 1,000-result cap."""
    seen: set[str] = set()
    for language in query.languages:
        for q in _split(gh, api_url, query, language, today or date.today()):
            for info in _all_pages(gh, api_url, q):
                if info.name not in seen:
                    seen.add(info.name)
                    yield info


def _count(gh: GitHubClient, api_url: str, q: str) -> int:
    data, _ = gh.get_json(f"{api_url}/search/repositories", {"q": q, "per_page": 1})
    return _page(data, q).total_count


def _split(gh: GitHubClient, api_url: str, query: SearchQuery, language: str,
           today: date) -> Iterator[str]:
    """Queries of at most 1,000 results that together cover the language."""
    pending: list[tuple[int, int | None]] = [(query.min_stars, None)]
    while pending:
        lo, hi = pending.pop()
        q = query.qualifiers(language, (lo, hi))
        if _count(gh, api_url, q) <= SEARCH_CAP:
            yield q
            continue
        if hi is None:
            # Find a finite top: double until the open range above it fits.
            top = max(lo * 2, lo + 100)
            pending += [(top + 1, None), (lo, top)]
        elif lo < hi:
            mid = (lo + hi) // 2
            pending += [(mid + 1, hi), (lo, mid)]
        else:
            yield from _split_by_date(gh, api_url, query, language, (lo, hi),
                                      date(2008, 1, 1), today)


def _split_by_date(gh: GitHubClient, api_url: str, query: SearchQuery, language: str,
                   stars: tuple[int, int | None], start: date, end: date) -> Iterator[str]:
    q = query.qualifiers(language, stars, (start, end))
    if start >= end or _count(gh, api_url, q) <= SEARCH_CAP:
        yield q  # a single day over the cap cannot be split further: take its first 1,000
        return
    mid = start + timedelta(days=(end - start).days // 2)
    yield from _split_by_date(gh, api_url, query, language, stars, start, mid)
    yield from _split_by_date(gh, api_url, query, language, stars,
                              mid + timedelta(days=1), end)


def _all_pages(gh: GitHubClient, api_url: str, q: str) -> Iterator[RepoInfo]:
    url: str | None = f"{api_url}/search/repositories"
    params: dict[str, Any] | None = {"q": q, "per_page": PER_PAGE, "sort": "stars",
                                     "order": "desc"}
    while url:
        data, headers = gh.get_json(url, params)
        for item in _page(data, q).items:
            yield _info(item)
        url = _next_link(headers.get("link", ""))
        params = None  # the next link carries them


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            return part[part.find("<") + 1:part.find(">")]
    return None


def fetch_repo(gh: GitHubClient, api_url: str, full_name: str) -> RepoInfo:
    """One repository's facts (for curated lists)."""
    data, _ = gh.get_json(f"{api_url}/repos/{full_name}")
    try:
        return _info(_Repo.model_validate(data))
    except ValidationError as exc:
        raise GitHubError(f"GitHub API repos/{full_name}: unexpected reply") from exc
