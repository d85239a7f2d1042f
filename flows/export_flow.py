"""The `export` Prefect flow: the labeled pairs as dataset folders, with a runs row."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.exporting import run_export
from flows.runs import recorded_run
from flows.settings import Settings
from warehouse.dataset import ExportLevel, Selection
from warehouse.formats import ExportFormat
from warehouse.splits import SplitPlan


@flow(name="export")
def export_flow(out_dir: str, warehouse: str | None = None, min_confidence: float = 0.0,
                include_unknown_license: bool = False, seed: int = 0,
                formats: list[str] | None = None, gold: str | None = None) -> dict[str, int]:
    """Write file- and function-level datasets into out_dir/file and out_dir/function."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    chosen = [ExportFormat(f) for f in (formats if formats is not None else
                                        ("jsonl", "hf", "dspy"))]
    parameters = {"out_dir": out_dir, "min_confidence": min_confidence,
                  "include_unknown_license": include_unknown_license, "seed": seed,
                  "formats": [f.value for f in chosen], "gold": gold}
    with recorded_run(settings.warehouse, "export", parameters) as run:
        for level in ExportLevel:
            selection = Selection(level=level, min_confidence=min_confidence,
                                  include_unknown_license=include_unknown_license)
            result = run_export(settings.warehouse, Path(out_dir) / level.value, selection,
                                SplitPlan(seed=seed), chosen,
                                gold=Path(gold) if gold else None,
                                memory_limit=settings.export_memory)
            run.counts[level.value] = result.total
    return run.counts
