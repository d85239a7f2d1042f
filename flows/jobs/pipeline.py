"""The pipeline use case: discover → mine → annotate → szz → export, each step with its runs
row.

Every step is incremental, so a nightly run only does what is new. `run_pipeline` is the one
sequence of steps; a direct run gives it the jobs, the tracked pipeline flow gives it the
tracked sub-flows (PipelineSteps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.jobs.progress import Progress, no_progress
from flows.jobs.runs import RunStatus
from flows.settings import Settings
from miners.github import SearchQuery
from warehouse.db import open_warehouse
from warehouse.queries import repos_to_mine

if TYPE_CHECKING:  # the mining code is imported by the steps that run it
    from flows.jobs.annotate import AnnotateResult
    from flows.jobs.discover import DiscoverResult
    from flows.jobs.mine import RepoSpec
    from flows.jobs.mining import RepoResult
    from flows.jobs.szz import SzzResult

STEPS = ("discover", "mine", "annotate", "szz", "export")


@dataclass(frozen=True)
class PipelinePlan:
    """What one pipeline run does; plain values, so a deployment can carry it."""

    discover: bool = True
    mine: bool = True
    annotate: bool = True
    szz: bool = True
    export: bool = True
    repos: tuple[str, ...] | None = None  # mine these (default: every stored remote one)
    repo_list: Path | None = None  # discover from this curated list instead of searching
    min_stars: int = 10
    export_dir: Path = Path("exports")
    include_unknown_license: bool = False

    def search(self) -> SearchQuery | None:
        """The GitHub search of the discover step (None when a curated list replaces it)."""
        return None if self.repo_list is not None else SearchQuery(min_stars=self.min_stars)

    def parameters(self, warehouse: Path) -> dict[str, Any]:
        """The plan as the tracked pipeline flow's parameters (JSON, for a deployment)."""
        return {"discover": self.discover, "mine": self.mine, "annotate": self.annotate,
                "szz": self.szz, "export": self.export,
                "repos": list(self.repos) if self.repos else None,
                "repo_list": str(self.repo_list) if self.repo_list else None,
                "min_stars": self.min_stars, "export_dir": str(self.export_dir),
                "warehouse": str(warehouse),
                "include_unknown_license": self.include_unknown_license}


@dataclass(frozen=True)
class PipelineSteps:
    """How each step runs: the jobs (a direct run) or the tracked sub-flows."""

    discover: Callable[[Settings, SearchQuery | None, Path | None], DiscoverResult]
    mine: Callable[[Settings, list[RepoSpec], Progress], Sequence[RepoResult]]
    annotate: Callable[[Settings], AnnotateResult]
    szz: Callable[[Settings, Progress], SzzResult]
    export: Callable[[Settings, PipelinePlan], dict[str, int]]


def _discover(settings: Settings, query: SearchQuery | None, repo_list: Path | None
              ) -> DiscoverResult:
    from flows.jobs.discover import discover_repos

    return discover_repos(settings, query, repo_list)


def _mine(settings: Settings, specs: list[RepoSpec], progress: Progress
          ) -> Sequence[RepoResult]:
    from flows.jobs.mine import mine_repos

    return mine_repos(specs, settings, progress=progress).results


def _annotate(settings: Settings) -> AnnotateResult:
    from flows.jobs.annotate import annotate

    return annotate(settings)


def _szz(settings: Settings, progress: Progress) -> SzzResult:
    from flows.jobs.szz import trace_origins

    return trace_origins(settings, progress=progress)


def _export(settings: Settings, plan: PipelinePlan) -> dict[str, int]:
    from flows.jobs.export import export_levels

    return export_levels(settings, plan.export_dir,
                         include_unknown_license=plan.include_unknown_license)


DIRECT = PipelineSteps(_discover, _mine, _annotate, _szz, _export)


def repos_for_mine(settings: Settings, plan: PipelinePlan) -> list[str]:
    """The repositories the mine step covers: the plan's, else every stored remote one."""
    if plan.repos is not None:
        return list(plan.repos)
    with open_warehouse(settings.warehouse) as con:
        return [url for _, url in repos_to_mine(con)]


def run_pipeline(settings: Settings, plan: PipelinePlan, progress: Progress = no_progress,
                 steps: PipelineSteps = DIRECT) -> dict[str, object]:
    """Run the plan's steps in order; returns what each step did. The annotate step runs
    only when an LLM is configured (mining labels offline)."""
    from flows.jobs.mine import mine_status, parse_repo_args

    done: dict[str, object] = {}
    if plan.discover:
        found = steps.discover(settings, plan.search(), plan.repo_list)
        done["discover"] = {"stored": found.stored, "requests": found.requests}
    if plan.mine:
        results = steps.mine(settings, parse_repo_args(repos_for_mine(settings, plan)),
                             progress)
        done["mine"] = {"repos": len(results), "errors": sum(1 for r in results if r.error),
                        "status": mine_status(results).value}
    if plan.annotate and settings.llm_configured:
        result = steps.annotate(settings)
        done["annotate"] = {"labeled": result.summary.labeled,
                            "failed": result.summary.failed, "status": result.status}
    if plan.szz:
        traced = steps.szz(settings, progress)
        done["szz"] = {"traced": traced.traced, "found": traced.found, "none": traced.none,
                       "failed": traced.failed, "status": traced.status}
    if plan.export:
        done["export"] = steps.export(settings, plan)
    return done


def failed_steps(done: dict[str, object]) -> list[str]:
    """The steps whose work failed, in whole or in part."""
    return [step for step, what in done.items() if isinstance(what, dict)
            and what.get("status", RunStatus.COMPLETED) != RunStatus.COMPLETED]
