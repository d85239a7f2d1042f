"""Writing a dataset export from the warehouse: the wiring shared by the CLI and the flow."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from flows.evaluating import measure
from warehouse.dataset import Selection
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
