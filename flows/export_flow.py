"""The `export` Prefect flow: the labeled pairs as dataset files, with a runs row."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.settings import Settings
from warehouse.db import connect
from warehouse.export import ExportFormat, ExportLevel, export_pairs
from warehouse.save import finish_run, start_run


@flow(name="export")
def export_flow(out_dir: str, warehouse: str | None = None, min_confidence: float = 0.0
                ) -> dict[str, int]:
    """Write file- and function-level pairs as JSONL and Parquet into out_dir."""
    settings = Settings(**({"warehouse": Path(warehouse)} if warehouse else {}))
    con = connect(settings.warehouse)
    try:
        run_id = start_run(con, "export", {"out_dir": out_dir, "min_confidence": min_confidence})
        counts = {}
        for level in ExportLevel:
            for fmt in ExportFormat:
                target = Path(out_dir) / f"{level.value}_pairs.{fmt.value}"
                counts[target.name] = export_pairs(con, target, fmt, level=level,
                                                   min_confidence=min_confidence)
        finish_run(con, run_id, status="completed", counts=counts)
        return counts
    finally:
        con.close()
