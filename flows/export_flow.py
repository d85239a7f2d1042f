"""The `export` Prefect flow: the labeled pairs as dataset files, with a runs row."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.runs import recorded_run
from flows.settings import Settings
from warehouse.db import connect
from warehouse.export import ExportFormat, ExportLevel, export_pairs


@flow(name="export")
def export_flow(out_dir: str, warehouse: str | None = None, min_confidence: float = 0.0
                ) -> dict[str, int]:
    """Write file- and function-level pairs as JSONL and Parquet into out_dir."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    parameters = {"out_dir": out_dir, "min_confidence": min_confidence}
    with recorded_run(settings.warehouse, "export", parameters) as run:
        con = connect(settings.warehouse)
        try:
            for level in ExportLevel:
                for fmt in ExportFormat:
                    target = Path(out_dir) / f"{level.value}_pairs.{fmt.value}"
                    run.counts[target.name] = export_pairs(con, target, fmt, level=level,
                                                           min_confidence=min_confidence)
        finally:
            con.close()
    return run.counts
