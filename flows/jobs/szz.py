"""The szz use case: trace stored fixes back to the commits that introduced their bugs.

Only commits this SZZ version has not traced (or whose tracing failed) are traced, in
batches each saved in one transaction, so a killed run loses at most a batch and the next
run resumes. Blame runs on threads (each blame is a git process), `os.cpu_count()` at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from flows.jobs.progress import Progress, no_progress
from flows.jobs.runs import recorded_run
from flows.settings import Settings
from miners.blame import Blamer, owned_clone
from miners.errors import MinerError
from miners.sources import cache_dir_for, parse_remote_spec
from miners.szz import FixInput, Trace
from warehouse.db import open_warehouse
from warehouse.queries import Located, read_szz_inputs, repo_sources, szz_todo
from warehouse.save import save_traces

BATCH = 100  # commits per transaction


@dataclass
class SzzResult:
    """What one szz run did."""

    run_id: str = ""
    traced: int = 0
    found: int = 0
    none: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # repositories that could not be traced
    status: str = "completed"

    def count(self, traces: Iterable[Trace | str]) -> None:
        for trace in traces:
            self.traced += 1
            if isinstance(trace, str):
                self.failed += 1
            elif trace.candidates:
                self.found += 1
            else:
                self.none += 1


def source_clone(repo: str, url: str | None, local_path: str | None, cache_root: Path) -> str:
    """The git dir SZZ may open for repo: the cache's mirror of a remote, or racemine's own
    clone of a local repository (never the repository itself)."""
    if url:
        mirror = cache_dir_for(parse_remote_spec(url), cache_root)
        if not (mirror / "HEAD").exists():
            raise MinerError(f"repository {repo}: its mirror is not in the cache ({mirror}); "
                             f"run `racemine mine {url}` first")
        return str(mirror)
    if not local_path or not Path(local_path).is_dir():
        raise MinerError(f"repository {repo}: the folder it was mined from "
                         f"({local_path or 'unknown'}) is gone; mine it again from where "
                         "it is now")
    return owned_clone(local_path, cache_root, repo)


def trace_one(blamer: Blamer, fix: FixInput) -> Trace | str:
    """A fix's trace, or why tracing it failed (one bad commit never stops a run)."""
    try:
        return blamer.trace(fix)
    except MinerError as exc:
        return str(exc)


def trace_origins(settings: Settings, repos: list[str] | None = None, *,
                  every_commit: bool = False, redo: bool = False,
                  progress: Progress = no_progress) -> SzzResult:
    """Trace every stored concurrency fix without candidates (every stored commit with
    every_commit; all again with redo); one runs row for the whole."""
    started = time.perf_counter()
    result = SzzResult()
    params = {"repos": repos, "every_commit": every_commit, "redo": redo}
    with recorded_run(settings.warehouse, "szz", params) as run, \
            open_warehouse(settings.warehouse, serve_reads=True) as con:
        result.run_id = run.run_id
        todo = szz_todo(con, repos, every_commit=every_commit, redo=redo)
        total = sum(len(located) for located in todo.values())
        sources = repo_sources(con, list(todo))
        progress("szz", "tracing", 0, total)
        workers = max(1, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers, thread_name_prefix="racemine-szz") as pool:
            for repo, located in todo.items():
                try:
                    blamer = Blamer(source_clone(repo, *sources.get(repo, (None, None)),
                                                 settings.cache_dir))
                except MinerError as exc:
                    result.errors.append(str(exc))
                    result.failed += len(located)
                    continue
                for batch in _batches(located):
                    fixes = read_szz_inputs(con, repo, batch)
                    traced = pool.map(lambda fix, b=blamer: trace_one(b, fix), fixes)
                    traces = dict(zip((f.sha for f in fixes), traced, strict=True))
                    save_traces(con, repo, run.run_id, traces)
                    result.count(traces.values())
                    progress("szz", "tracing", result.traced, total)
        result.seconds = time.perf_counter() - started
        run.counts = {"traced": result.traced, "found": result.found, "none": result.none,
                      "failed": result.failed}
        run.errors = list(result.errors)
        run.judge(result.found + result.none, result.failed)
        result.status = run.status.value
    return result


def _batches(located: dict[str, Located]) -> Iterator[dict[str, Located]]:
    shas = list(located)
    for start in range(0, len(shas), BATCH):
        yield {sha: located[sha] for sha in shas[start:start + BATCH]}
