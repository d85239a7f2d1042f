"""The discover use case: GitHub search or a curated list into the repos table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flows.jobs.retry import retrying
from flows.jobs.runs import recorded_run
from flows.settings import Settings
from miners.github import (
    GitHubClient,
    GitHubUnavailable,
    RepoInfo,
    SearchQuery,
    fetch_repo,
    github_http_client,
    iter_search,
)
from miners.sources import check_spec, parse_remote_spec
from warehouse.db import open_warehouse
from warehouse.save import WarehousePageCache, save_discovered


def read_repo_list(path: Path) -> list[str]:
    """Specs from a curated list: one per line, '#' comments and blank lines ignored."""
    specs = []
    for line in path.read_text("utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            check_spec(spec)
            specs.append(spec)
    return specs


def discover(warehouse: Path, api_url: str, token: str | None, query: SearchQuery | None,
             list_file: Path | None = None, limit: int | None = None,
             sleep: Callable[[float], None] | None = None) -> tuple[int, int, int]:
    """Store what the search (or the list) finds; returns (repos, requests, not modified)."""
    with open_warehouse(warehouse, serve_reads=True) as con, \
            github_http_client(api_url, token) as http:
        gh = GitHubClient(http, WarehousePageCache(con),
                          **({"sleep": sleep} if sleep is not None else {}))
        found: list[RepoInfo] = []
        if list_file is not None:
            for spec in read_repo_list(list_file):
                remote = parse_remote_spec(spec)
                if remote.host == "github.com":
                    found.append(fetch_repo(gh, api_url, "/".join(remote.path)))
                else:
                    found.append(RepoInfo(remote.name, remote.url, 0, None, None, None,
                                          False, False, None, ()))
        if query is not None:
            for info in iter_search(gh, api_url, query):
                found.append(info)
                if limit is not None and len(found) >= limit:
                    break
        saved = save_discovered(con, found)
        return saved, gh.requests, gh.not_modified


# GitHub unreachable after the client's own retries: the whole search is asked again later.
DISCOVER_RETRY_DELAYS = (30.0, 120.0)


@dataclass(frozen=True)
class DiscoverResult:
    stored: int
    requests: int
    not_modified: int  # requests answered from the ETag cache


def discover_repos(settings: Settings, query: SearchQuery | None, list_file: Path | None = None,
                   limit: int | None = None,
                   retry_delays: Sequence[float] = DISCOVER_RETRY_DELAYS) -> DiscoverResult:
    """Search GitHub (and/or read a curated list) into repos, with a runs row."""
    parameters = {"query": repr(query), "list_file": str(list_file) if list_file else None,
                  "limit": limit}
    with recorded_run(settings.warehouse, "discover", parameters) as run:
        stored, requests, cached = retrying(
            lambda: discover(settings.warehouse, settings.github_api_url.rstrip("/"),
                             settings.github_token_value,
                             query, list_file, limit), GitHubUnavailable, retry_delays)
        run.counts = {"repos": stored, "requests": requests, "not_modified": cached}
    return DiscoverResult(stored, requests, cached)
