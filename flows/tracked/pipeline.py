"""The tracked `pipeline` flow: discover → mine → annotate → export, the scheduled one.

Each step is its own sub-flow (so its own flow run and runs row) and can be skipped; what
each step covers is decided by the pipeline job, as in a direct run.
"""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path, where annotations
# kept as strings cannot be resolved ("`Pipeline_FlowModel` is not fully defined").

from pathlib import Path

from prefect import flow
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.jobs.mine import parse_repo_args
from flows.jobs.pipeline import (
    PipelinePlan,
    annotates,
    failed_steps,
    repos_for_mine,
    summarize_mine,
)
from flows.jobs.runs import RunStatus
from flows.settings import Settings
from flows.tracked.annotate import annotate_flow
from flows.tracked.discover import discover_flow
from flows.tracked.export import export_flow
from flows.tracked.mine import mine_flow
from flows.tracked.states import final_state, value_of


@flow(name="pipeline")
def pipeline_flow(discover: bool = True, mine: bool = True, annotate: bool = True,
                  export: bool = True, repos: list[str] | None = None,
                  repo_list: Path | None = None, min_stars: int = 10,
                  export_dir: Path = Path("exports"), warehouse: str | None = None,
                  include_unknown_license: bool = False) -> State:
    """Run the steps in order; mine covers `repos` if given, else every stored remote repo."""
    plan = PipelinePlan(discover, mine, annotate, export,
                        tuple(repos) if repos is not None else None, repo_list, min_stars,
                        export_dir, include_unknown_license)
    settings = Settings.load(warehouse)
    db = str(settings.warehouse)
    done: dict[str, object] = {}
    if plan.discover:
        found = discover_flow(min_stars=plan.min_stars, list_file=plan.repo_list,
                              search=plan.repo_list is None, warehouse=db)
        done["discover"] = {"stored": found.stored, "requests": found.requests}
    if plan.mine:
        specs = parse_repo_args(repos_for_mine(settings, plan))
        runner = ThreadPoolTaskRunner(max_workers=settings.concurrency)
        state = mine_flow.with_options(task_runner=runner)(specs, warehouse=db,
                                                          return_state=True)
        done["mine"] = summarize_mine(value_of(state))
    if annotates(settings, plan):
        result = value_of(annotate_flow(warehouse=db, return_state=True))
        done["annotate"] = {"labeled": result.summary.labeled,
                            "failed": result.summary.failed, "status": result.status}
    if plan.export:
        done["export"] = export_flow(plan.export_dir, warehouse=db,
                                     include_unknown_license=plan.include_unknown_license)
    failed = failed_steps(done)
    return final_state(RunStatus.FAILED if failed else RunStatus.COMPLETED,
                       [f"step {step} failed" for step in failed], done)
