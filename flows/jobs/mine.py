"""The mine use case: mirror, mine and label repositories, side by side, with a runs row.

`mine_repos` is what `racemine mine` runs directly; the tracked Prefect flow runs the same
steps (`mirror`, `mine_and_label`, `load_and_label_shards`, `record_results`) as tasks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from flows.jobs.labeling import label_unlabeled
from flows.jobs.mining import RepoResult, mine_repository
from flows.jobs.progress import Progress, no_progress
from flows.jobs.retry import retrying
from flows.jobs.runs import RunRecord, RunStatus, recorded_run, status_of
from flows.settings import Settings
from miners.classify import PatternSet, load_pattern_set
from miners.errors import GitCommandError, MinerError
from miners.git import fetch_mirror, open_local
from miners.records import RepoRef
from miners.sources import canonical_local_name, check_spec, is_local_spec, parse_remote_spec
from warehouse.db import open_warehouse
from warehouse.errors import WarehouseError
from warehouse.shards import load_shards

_T = TypeVar("_T")
# A name given after the last "=" of an argument: letters, digits, . _ - in two or more
# segments (owner/name, host/owner/name).
_NAMED = re.compile(r"^(?P<spec>.+)=(?P<name>[\w.-]+(?:/[\w.-]+)+)$")
COUNTS = ("commits_scanned", "matches", "pairs", "functions", "skipped", "labels", "fixes")


@dataclass(frozen=True)
class RepoSpec:
    """A repository to mine as the user named it, and the warehouse name given to it."""

    spec: str
    name: str | None = None


def parse_repo_args(args: Sequence[str], name: str | None = None) -> list[RepoSpec]:
    """Specs from command-line arguments: `PATH=owner/name` names a local repository; `name`
    (--name) names the only one. Raises the error a bad spec would meet, before any work."""
    specs = []
    for arg in args:
        named = _NAMED.match(arg)
        if named and is_local_spec(named["spec"]) and not is_local_spec(arg):
            specs.append(RepoSpec(named["spec"], canonical_local_name(named["name"])))
        else:
            specs.append(RepoSpec(arg, canonical_local_name(name) if name else None))
    for spec in specs:
        check_spec(spec.spec)
    return specs


MIRROR_RETRY_DELAYS = (5.0, 30.0)


def mirror(spec: RepoSpec, cache_dir: Path, token: str | None, *,
           retry_delays: Sequence[float] = MIRROR_RETRY_DELAYS) -> RepoRef:
    """A local path is read in place; anything else is mirrored into the cache first, asked
    again after each delay when git could not reach it (a bad URL or a missing repository
    is not retried)."""
    if is_local_spec(spec.spec):
        return open_local(spec.spec, spec.name)
    remote = parse_remote_spec(spec.spec)
    ref = retrying(lambda: fetch_mirror(remote, cache_dir, token), GitCommandError,
                   retry_delays)
    return replace(ref, name=spec.name) if spec.name else ref


def mine_and_label(ref: RepoRef, settings: Settings, patterns: PatternSet, run_id: str, *,
                   all_branches: bool = False, progress: Progress = no_progress) -> RepoResult:
    """Mine what is new in ref, labeled as it is mined, then label what an earlier run left
    unlabeled (a killed mine, a shard, new rules)."""
    result = mine_repository(ref, settings.warehouse, patterns, run_id,
                             max_file_bytes=settings.max_file_bytes,
                             all_branches=all_branches, progress=progress)
    with open_warehouse(settings.warehouse) as con:
        caught_up = label_unlabeled(con, ref.name, run_id, progress)
    return replace(result, labels=result.labels + caught_up.labels,
                   fixes=result.fixes + caught_up.fixes)


def load_and_label_shards(settings: Settings, result: RepoResult, run_id: str) -> RepoResult:
    """Load the shards mined elsewhere into the warehouse and label what they brought."""
    with open_warehouse(settings.warehouse) as con:
        load_shards(con, shard_root(settings))
        caught_up = label_unlabeled(con, result.repo, run_id)
    return replace(result, labels=result.labels + caught_up.labels,
                   fixes=result.fixes + caught_up.fixes)


def shard_root(settings: Settings) -> Path:
    """Where mine tasks that run away from the DuckDB file write their shards."""
    root = settings.warehouse.parent / f"{settings.warehouse.stem}.shards"
    root.mkdir(parents=True, exist_ok=True)
    return root


def failed_result(spec: RepoSpec, exc: MinerError | WarehouseError) -> RepoResult:
    """A repository whose mine stopped on a known error: a row of the summary, not a crash."""
    return RepoResult(repo=spec.name or spec.spec, error=str(exc))


def mine_one(spec: RepoSpec, settings: Settings, patterns: PatternSet, run_id: str, *,
             all_branches: bool = False, progress: Progress = no_progress) -> RepoResult:
    """Mirror, mine and label one repository; a known error becomes its failed result."""
    try:
        ref = mirror(spec, settings.cache_dir, settings.github_token_value)
        return mine_and_label(ref, settings, patterns, run_id, all_branches=all_branches,
                              progress=progress)
    except (MinerError, WarehouseError) as exc:
        return failed_result(spec, exc)


def run_parameters(specs: Sequence[RepoSpec], patterns_file: Path | None, all_branches: bool,
                   **extra: object) -> dict[str, object]:
    """The runs row's parameters of a mine (no secrets: settings are not among them)."""
    return {"repos": [s.spec for s in specs], "names": [s.name for s in specs],
            "patterns_file": str(patterns_file) if patterns_file else None,
            "all_branches": all_branches, **extra}


def mine_status(results: Sequence[RepoResult]) -> RunStatus:
    """Failed when every repository failed, partially failed when some did."""
    failed = sum(1 for r in results if r.error)
    return status_of(len(results) - failed, failed)


def record_results(run: RunRecord, results: Sequence[RepoResult]) -> None:
    """Counts, errors and status of a mine from its repositories' results."""
    run.errors = [f"{r.repo}: {r.error}" for r in results if r.error]
    run.status = mine_status(results)
    run.counts = {k: sum(getattr(r, k) for r in results) for k in COUNTS}


@dataclass(frozen=True)
class MineReport:
    run_id: str
    results: list[RepoResult]
    status: str


def mine_repos(specs: Sequence[RepoSpec], settings: Settings, *,
               patterns_file: Path | None = None, all_branches: bool = False,
               progress: Progress = no_progress) -> MineReport:
    """Mine and label each repository, `settings.concurrency` side by side on threads (each
    with its own DuckDB connection); one runs row for the whole."""
    patterns = load_pattern_set(patterns_file)  # a bad pattern file fails before any work
    with recorded_run(settings.warehouse, "mine",
                      run_parameters(specs, patterns_file, all_branches), keep_open=True) as run:
        one = partial(mine_one, settings=settings, patterns=patterns, run_id=run.run_id,
                      all_branches=all_branches, progress=progress)
        results = _map(one, specs, settings.concurrency)
        record_results(run, results)
    return MineReport(run.run_id, results, run.status.value)


def _map(fn: Callable[[RepoSpec], _T], items: Sequence[RepoSpec], workers: int) -> list[_T]:
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="racemine-mine") as pool:
        return list(pool.map(fn, items))
