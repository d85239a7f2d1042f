"""The pipeline use case: discover → mine → annotate → export, each step with its runs row.

Every step is incremental, so a nightly run only does what is new. The tracked pipeline
flow runs the same steps as sub-flows and asks the same questions of this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flows.jobs.mining import RepoResult
from flows.jobs.progress import Progress, no_progress
from flows.jobs.runs import RunStatus, status_of
from flows.settings import Settings
from miners.github import SearchQuery
from warehouse.db import open_warehouse
from warehouse.queries import repos_to_mine

STEPS = ("discover", "mine", "annotate", "export")


@dataclass(frozen=True)
class PipelinePlan:
    """What one pipeline run does; plain values, so a deployment can carry it."""

    discover: bool = True
    mine: bool = True
    annotate: bool = True
    export: bool = True
    repos: tuple[str, ...] | None = None  # mine these (default: every stored remote one)
    repo_list: Path | None = None  # discover from this curated list instead of searching
    min_stars: int = 10
    export_dir: Path = Path("exports")
    include_unknown_license: bool = False

    def search(self) -> SearchQuery | None:
        """The GitHub search of the discover step (None when a curated list replaces it)."""
        return None if self.repo_list is not None else SearchQuery(min_stars=self.min_stars)


def repos_for_mine(settings: Settings, plan: PipelinePlan) -> list[str]:
    """The repositories the mine step covers: the plan's, else every stored remote one."""
    if plan.repos is not None:
        return list(plan.repos)
    with open_warehouse(settings.warehouse) as con:
        return [url for _, url in repos_to_mine(con)]


def annotates(settings: Settings, plan: PipelinePlan) -> bool:
    """The annotate step runs when asked and an LLM is configured (mining labels offline)."""
    return plan.annotate and settings.llm_configured


def run_pipeline(settings: Settings, plan: PipelinePlan, progress: Progress = no_progress
                 ) -> dict[str, object]:
    """Run the plan's steps in order, directly; returns what each step did."""
    from flows.jobs.mine import mine_repos, parse_repo_args

    done: dict[str, object] = {}
    if plan.discover:
        from flows.jobs.discover import discover_repos

        found = discover_repos(settings, plan.search(), plan.repo_list)
        done["discover"] = {"stored": found.stored, "requests": found.requests}
    if plan.mine:
        report = mine_repos(parse_repo_args(repos_for_mine(settings, plan)), settings,
                            progress=progress)
        done["mine"] = summarize_mine(report.results)
    if annotates(settings, plan):
        from flows.jobs.annotate import annotate

        result = annotate(settings)
        done["annotate"] = {"labeled": result.summary.labeled,
                            "failed": result.summary.failed, "status": result.status}
    if plan.export:
        from flows.jobs.export import export_levels

        done["export"] = export_levels(settings, plan.export_dir,
                                       include_unknown_license=plan.include_unknown_license)
    return done


def summarize_mine(results: Sequence[RepoResult]) -> dict[str, object]:
    """The mine step's line of a pipeline's output."""
    errors = sum(1 for r in results if r.error)
    return {"repos": len(results), "errors": errors,
            "status": status_of(len(results) - errors, errors).value}


def failed_steps(done: dict[str, object]) -> list[str]:
    """The steps whose work failed, in whole or in part."""
    return [step for step, what in done.items() if isinstance(what, dict)
            and what.get("status", RunStatus.COMPLETED) != RunStatus.COMPLETED]
