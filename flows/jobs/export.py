"""The export use case: dataset folders written from the warehouse."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from flows.jobs.evaluate import measure
from flows.jobs.runs import recorded_run
from flows.settings import Settings
from warehouse.dataset import ExportLevel, Selection
from warehouse.db import SCHEMA_VERSION, open_warehouse
from warehouse.export import MEMORY_LIMIT, ExportResult, export_dataset
from warehouse.formats import ExportFormat, PartitionBy
from warehouse.splits import SplitPlan


def _versions() -> dict[str, str]:
    try:
        racemine = version("racemine")
    except PackageNotFoundError:  # running from a source tree that was never installed
        racemine = "unknown"
    return {"racemine version": racemine, "warehouse schema version": str(SCHEMA_VERSION)}


def run_export(warehouse: Path, out: Path, selection: Selection, plan: SplitPlan,
               formats: Sequence[ExportFormat] = (), *, partition_by: PartitionBy | None = None,
               gold: Path | None = None, strict: bool = False, memory_limit: str = MEMORY_LIMIT
               ) -> ExportResult:
    """Export the dataset folder; with a gold file, the card reports the measured quality."""
    quality = None
    if gold is not None:
        report = measure(warehouse, gold, selection.annotator, strict, mined_only=True)
        quality = {**json.loads(json.dumps(asdict(report))), "gold_file": gold.name,
                   "annotator": selection.annotator}
    with open_warehouse(warehouse, read_only=True) as con:
        return export_dataset(con, out, selection, plan, formats, partition_by=partition_by,
                              quality=quality, versions=_versions(),
                              memory_limit=memory_limit)


DEFAULT_FORMATS = (ExportFormat.JSONL, ExportFormat.HF, ExportFormat.DSPY)


def export_levels(settings: Settings, out_dir: Path, *, min_confidence: float = 0.0,
                  include_unknown_license: bool = False, seed: int = 0,
                  formats: Sequence[ExportFormat] = DEFAULT_FORMATS, gold: Path | None = None
                  ) -> dict[str, int]:
    """The pipeline's export: file- and function-level datasets in out_dir/file and
    out_dir/function, with a runs row; returns the rows written per level."""
    parameters = {"out_dir": str(out_dir), "min_confidence": min_confidence,
                  "include_unknown_license": include_unknown_license, "seed": seed,
                  "formats": [f.value for f in formats], "gold": str(gold) if gold else None}
    with recorded_run(settings.warehouse, "export", parameters) as run:
        for level in ExportLevel:
            selection = Selection(level=level, min_confidence=min_confidence,
                                  include_unknown_license=include_unknown_license)
            result = run_export(settings.warehouse, out_dir / level.value, selection,
                                SplitPlan(seed=seed), formats, gold=gold,
                                memory_limit=settings.export_memory)
            run.counts[level.value] = result.total
    return dict(run.counts)
