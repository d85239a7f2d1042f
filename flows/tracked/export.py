"""The tracked export flows: the pipeline's export step, and one dataset as `racemine export`
writes it, each as a Prefect task."""

# No `from __future__ import annotations`: Prefect validates a deployment's parameters
# against these signatures in a process that loads this file by path, where annotations
# kept as strings cannot be resolved ("`Pipeline_FlowModel` is not fully defined").

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.jobs.export import DEFAULT_FORMATS, export_levels, run_export
from flows.settings import Settings
from warehouse.dataset import Selection
from warehouse.export import ExportResult
from warehouse.formats import ExportFormat, PartitionBy
from warehouse.splits import SplitPlan


@task(cache_policy=NO_CACHE)
def export_task(settings: Settings, out_dir: Path, min_confidence: float,
                include_unknown_license: bool, seed: int, formats: list[ExportFormat],
                gold: Path | None) -> dict[str, int]:
    return export_levels(settings, out_dir, min_confidence=min_confidence,
                         include_unknown_license=include_unknown_license, seed=seed,
                         formats=formats, gold=gold)


@flow(name="export")
def export_flow(out_dir: Path, warehouse: str | None = None, min_confidence: float = 0.0,
                include_unknown_license: bool = False, seed: int = 0,
                formats: list[ExportFormat] | None = None, gold: Path | None = None
                ) -> dict[str, int]:
    """Write file- and function-level datasets into out_dir/file and out_dir/function."""
    return export_task(Settings.load(warehouse), out_dir, min_confidence,
                       include_unknown_license, seed,
                       list(DEFAULT_FORMATS if formats is None else formats), gold)


@task(cache_policy=NO_CACHE)
def export_dataset_task(settings: Settings, out: Path, selection: Selection, plan: SplitPlan,
                        formats: list[ExportFormat], partition_by: PartitionBy | None,
                        gold: Path | None) -> ExportResult:
    return run_export(settings.warehouse, out, selection, plan, formats,
                      partition_by=partition_by, gold=gold, memory_limit=settings.export_memory)


@flow(name="export-dataset")
def export_dataset_flow(out: Path, selection: Selection, plan: SplitPlan,
                        formats: list[ExportFormat], partition_by: PartitionBy | None = None,
                        gold: Path | None = None, warehouse: str | None = None
                        ) -> ExportResult:
    """One dataset folder, as `racemine export` writes it."""
    return export_dataset_task(Settings.load(warehouse), out, selection, plan, formats,
                               partition_by, gold)
