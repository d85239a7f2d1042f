"""The tracked `pipeline` flow: discover → mine → annotate → szz → export, the scheduled one.

The pipeline job's sequence of steps, each step a sub-flow of its own (so its own flow run
and runs row).
"""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path, where annotations
# kept as strings cannot be resolved ("`Pipeline_FlowModel` is not fully defined").

from pathlib import Path

from prefect import flow
from prefect.states import State

from flows.jobs.pipeline import PipelinePlan, PipelineSteps, failed_steps, run_pipeline
from flows.jobs.runs import RunStatus
from flows.settings import Settings
from flows.tracked.annotate import annotate_flow
from flows.tracked.discover import discover_flow
from flows.tracked.export import export_flow
from flows.tracked.mine import run_tracked_mine
from flows.tracked.states import final_state, value_of
from flows.tracked.szz import szz_flow

TRACKED = PipelineSteps(
    discover=lambda settings, query, repo_list: discover_flow(
        query, repo_list, warehouse=str(settings.warehouse)),
    mine=lambda settings, specs, progress: run_tracked_mine(specs, settings, None, False)[0],
    annotate=lambda settings: value_of(annotate_flow(warehouse=str(settings.warehouse),
                                                     return_state=True)),
    szz=lambda settings, progress: value_of(szz_flow(warehouse=str(settings.warehouse),
                                                     return_state=True)),
    export=lambda settings, plan: export_flow(
        plan.export_dir, warehouse=str(settings.warehouse),
        include_unknown_license=plan.include_unknown_license))


@flow(name="pipeline")
def pipeline_flow(discover: bool = True, mine: bool = True, annotate: bool = True,
                  szz: bool = True, export: bool = True, repos: list[str] | None = None,
                  repo_list: Path | None = None, min_stars: int = 10,
                  export_dir: Path = Path("exports"), warehouse: str | None = None,
                  include_unknown_license: bool = False) -> State:
    """Run the steps in order; mine covers `repos` if given, else every stored remote repo.
    Fails when a step's work failed."""
    plan = PipelinePlan(discover, mine, annotate, szz, export,
                        tuple(repos) if repos is not None else None, repo_list, min_stars,
                        export_dir, include_unknown_license)
    done = run_pipeline(Settings.load(warehouse), plan, steps=TRACKED)
    failed = failed_steps(done)
    return final_state(RunStatus.FAILED if failed else RunStatus.COMPLETED,
                       [f"step {step} failed" for step in failed], done)
