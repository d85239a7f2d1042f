"""The review pages as a Starlette app (Starlette comes with Prefect; no asset is fetched
from the network: the CSS and the few lines of JavaScript are in the templates).

Every request opens the warehouse for its own short use and closes it, read-only except to
store a decision, so a mine can run between two pages.
"""

from __future__ import annotations

import threading
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from annotators.schema import BugType
from flows.jobs.review import (
    Decision,
    ReviewInputError,
    record_decision,
    reviewer_name,
    steps_text,
)
from flows.settings import Settings
from flows.web.views import list_query, panes, query_string, shown
from warehouse.db import open_warehouse
from warehouse.errors import WarehouseError
from warehouse.review import (
    CHECK_STATES,
    KINDS,
    REVIEW_STATES,
    SORTS,
    ListSnapshot,
    facets,
    fix_record,
    list_page,
    neighbours,
)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
BUG_TYPES = tuple(b.value for b in BugType)


def create_app(settings: Settings) -> Starlette:
    """The review app over settings.warehouse."""
    writing = threading.Lock()  # one decision at a time: DuckDB has one writer per file
    listed = ListSnapshot(settings.warehouse)

    def read(work: Any) -> Any:
        with open_warehouse(settings.warehouse, read_only=True) as con:
            return work(con)

    async def home(request: Request) -> Response:
        query = list_query(dict(request.query_params))
        cursor = listed.cursor()
        rows, total = list_page(cursor, query)
        options = facets(cursor)
        pages = max(1, -(-total // query.size))
        return TEMPLATES.TemplateResponse(request, "list.html", {
            "rows": rows, "total": total, "query": query, "pages": pages,
            "options": options, "kinds": KINDS, "reviews": REVIEW_STATES,
            "checks": CHECK_STATES, "sorts": SORTS, "qs": lambda **c: query_string(query, **c),
            "offset": (query.page - 1) * query.size, "reviewer": reviewer_name(settings)})

    async def fix(request: Request) -> Response:
        sha = request.path_params["sha"]
        params = dict(request.query_params)
        repo = params.get("repo", "")
        record = read(lambda con: fix_record(con, repo, sha))
        if record is None:
            return HTMLResponse(f"<p>commit {escape(sha)} of {escape(repo)} is not in the "
                                "warehouse</p>", status_code=404)
        return _fix_page(request, record, params, error=None)

    def _fix_page(request: Request, record: dict[str, Any], params: dict[str, str],
                  error: str | None, status: int = 200) -> Response:
        label = next((x for x in record["labels"] if x["target"] == ""),
                     record["labels"][0] if record["labels"] else None)
        file, function = shown(record, label, params.get("file"), params.get("fn"))
        before, after = panes(file, function) if file else (None, None)
        back = params.get("q", "")
        index = int(params.get("i", "-1") or -1)
        query = list_query(dict(parse_qsl(back)))
        moves = neighbours(listed.cursor(), query, index) if index >= 0 else (None, None)
        return TEMPLATES.TemplateResponse(request, "fix.html", {
            "c": record, "label": label, "others": [x for x in record["labels"] if x is not label],
            "file": file, "function": function,
            "before": before, "after": after, "back": back, "index": index,
            "previous": _link(moves[0], back, index - 1),
            "next": _link(moves[1], back, index + 1), "error": error,
            "bug_types": BUG_TYPES, "steps_text": steps_text(
                (record["review"] or {}).get("steps") or (label or {}).get("steps")),
            "reviewer": reviewer_name(settings)}, status_code=status)

    async def decide(request: Request) -> Response:
        sha = request.path_params["sha"]
        # A plain urlencoded form: parsed here (Starlette's form() needs python-multipart).
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        repo = str(form.get("repo", ""))
        decision = Decision(
            repo=repo, sha=sha, decision=str(form.get("decision", "")),
            annotator=str(form.get("annotator") or "") or None,
            **{k: str(form.get(k, "")) for k in ("bug_type", "scope", "location_file",
                                                 "location_function", "steps", "note")})
        try:
            with writing:
                record_decision(settings, decision)
                listed.decided(repo, sha, decision.decision, reviewer_name(settings))
        except ReviewInputError as exc:
            record = read(lambda con: fix_record(con, repo, sha))
            return _fix_page(request, record, {"q": str(form.get("q", "")),
                                               "i": str(form.get("i", "-1"))},
                             error=str(exc), status=400)
        back, index = str(form.get("q", "")), int(str(form.get("i", "-1")) or -1)
        if form.get("then") == "next" and index >= 0:
            following = neighbours(listed.cursor(), list_query(dict(parse_qsl(back))),
                                   index)[1]
            if following:
                return RedirectResponse(_link(following, back, index + 1), status_code=303)
        return RedirectResponse(_link((repo, sha), back, index), status_code=303)

    async def failed(request: Request, exc: Exception) -> Response:
        return HTMLResponse(f"<p>{escape(str(exc))}</p>", status_code=503)

    return Starlette(routes=[Route("/", home), Route("/fix/{sha}", fix),
                             Route("/fix/{sha}/decision", decide, methods=["POST"])],
                     exception_handlers={WarehouseError: failed})


def _link(key: tuple[str, str] | None, back: str, index: int) -> str | None:
    if key is None:
        return None
    return f"/fix/{key[1]}?" + urlencode({"repo": key[0], "q": back, "i": index})
