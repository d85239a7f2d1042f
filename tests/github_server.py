"""A GitHub REST API stand-in on 127.0.0.1: repository search and repository lookups.

Search honours the qualifiers racemine sends (language, stars ranges, created ranges,
archived, fork), returns at most 1,000 results like GitHub, paginates with Link headers,
and answers If-None-Match with 304. `faults` script failures by request number.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

Fault = Callable[[int, str], tuple[int, dict[str, str], str] | None]


def _matches(repo: dict[str, Any], q: str) -> bool:
    for token in q.split():
        key, _, value = token.partition(":")
        if key == "language" and repo["language"].lower() != value.lower():
            return False
        if key == "stars":
            if value.startswith(">="):
                if repo["stargazers_count"] < int(value[2:]):
                    return False
            else:
                lo, hi = value.split("..")
                if not int(lo) <= repo["stargazers_count"] <= int(hi):
                    return False
        if key == "created":
            lo, hi = value.split("..")
            if not date.fromisoformat(lo) <= date.fromisoformat(repo["created_at"][:10]) <= \
                    date.fromisoformat(hi):
                return False
        if key == "archived" and value == "false" and repo["archived"]:
            return False
    return "fork:true" in q or not repo["fork"]


class FakeGitHub:
    def __init__(self, repos: list[dict[str, Any]], faults: Fault | None = None) -> None:
        self.repos = repos
        self.faults = faults
        self.authorizations: list[str | None] = []
        self.calls: list[str] = []
        self.quota_used = 0
        self.max_page_results = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with threading.Lock():
                    number = len(outer.calls)
                    outer.calls.append(self.path)
                    outer.authorizations.append(self.headers.get("Authorization"))
                fault = outer.faults(number, self.path) if outer.faults else None
                if fault is not None:
                    self._send(*fault)
                    return
                status, headers, body = outer.answer(self.path)
                etag = '"' + hashlib.sha1(body.encode()).hexdigest() + '"'
                if status == 200 and self.headers.get("If-None-Match") == etag:
                    self._send(304, {"ETag": etag}, "")
                    return
                outer.quota_used += 1
                self._send(status, {"ETag": etag, **headers}, body)

            def _send(self, status: int, headers: dict[str, str], body: str) -> None:
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            request_queue_size = 64

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path.startswith("/repos/"):
            name = parts.path[len("/repos/"):]
            repo = next((r for r in self.repos if r["full_name"] == name), None)
            if repo is None:
                return 404, {}, json.dumps({"message": "Not Found"})
            return 200, {}, json.dumps(repo)
        q = params["q"]
        hits = sorted((r for r in self.repos if _matches(r, q)),
                      key=lambda r: (-r["stargazers_count"], r["full_name"]))
        per_page, page = int(params.get("per_page", 30)), int(params.get("page", 1))
        reachable = hits[:1000]
        items = reachable[(page - 1) * per_page:page * per_page]
        self.max_page_results = max(self.max_page_results, page * per_page
                                    if items else 0)
        headers = {}
        if page * per_page < len(reachable):
            nxt = urlencode({**params, "page": page + 1})
            headers["Link"] = f'<{self.url}{parts.path}?{nxt}>; rel="next"'
        return 200, headers, json.dumps({"total_count": len(hits), "incomplete_results": False,
                                         "items": items})

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_repos(n: int, crowded_stars: int = 0, crowd: int = 0) -> list[dict[str, Any]]:
    """n Elixir/Erlang repos with varied stars, plus `crowd` repos sharing one star count."""
    repos = []
    for i in range(n + crowd):
        stars = crowded_stars if i >= n else 10 + (i * 37) % 5000
        repos.append({
            "full_name": f"owner{i % 97}/repo{i}", "clone_url": f"https://github.com/o/r{i}.git",
            "stargazers_count": stars, "language": "Elixir" if i % 3 else "Erlang",
            "license": {"spdx_id": "NOASSERTION" if i % 11 == 0 else "MIT"},
            "default_branch": "main", "archived": i % 50 == 1, "fork": i % 40 == 2,
            "pushed_at": "2025-01-01T00:00:00Z",
            "created_at": f"{2010 + i % 14}-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z",
            "topics": ["otp"] if i % 5 == 0 else []})
    return repos
