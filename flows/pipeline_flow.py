"""The `pipeline` Prefect flow: discover → mine → annotate → export, the scheduled one.

Each step is its own flow (so its own runs row) and can be skipped; every step is
incremental, so a nightly run only does what is new.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.annotate_flow import annotate_flow
from flows.discover_flow import discover_flow
from flows.export_flow import export_flow
from flows.mine_flow import mine_flow
from flows.settings import Settings
from warehouse.db import open_warehouse
from warehouse.queries import repos_to_mine


@flow(name="pipeline")
def pipeline_flow(discover: bool = True, mine: bool = True, annotate: bool = True,
                  export: bool = True, repos: list[str] | None = None,
                  repo_list: str | None = None, min_stars: int = 10,
                  export_dir: str = "exports", warehouse: str | None = None,
                  include_unknown_license: bool = False) -> dict[str, object]:
    """Run the steps in order; mine covers `repos` if given, else every stored remote repo."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    db = str(settings.warehouse)
    done: dict[str, object] = {}
    if discover:
        done["discover"] = discover_flow(min_stars=min_stars, list_file=repo_list,
                                         search=repo_list is None, warehouse=db)
    if mine:
        specs = repos
        if specs is None:
            with open_warehouse(db) as con:
                specs = [url for _, url in repos_to_mine(con)]
        runner = ThreadPoolTaskRunner(max_workers=settings.concurrency)
        results = mine_flow.with_options(task_runner=runner)(specs, warehouse=db)
        done["mine"] = {"repos": len(results), "errors": sum(1 for r in results if r.error)}
    if annotate and settings.llm_configured:
        result = annotate_flow(warehouse=db)
        done["annotate"] = {"labeled": result.summary.labeled, "failed": result.summary.failed}
    if export:
        done["export"] = export_flow(export_dir, warehouse=db,
                                     include_unknown_license=include_unknown_license)
    return done
