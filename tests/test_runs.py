"""The runs row every job writes: completed, partially failed or failed with its reason,
never left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.jobs.runs import recorded_run
from warehouse.db import connect


def _rows(warehouse: Path) -> list[tuple]:
    con = connect(warehouse)
    try:
        return con.execute("SELECT kind, status, errors, counts->>'n', finished_at IS NOT NULL "
                           "FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()


def test_completed_and_crashed_runs(warehouse_path: Path) -> None:
    """A finished block completes with its counts; an exception fails it with its reason;
    work that failed in part or in whole says so."""
    with recorded_run(warehouse_path, "export", {"out_dir": "x"}) as run:
        run.counts["n"] = 3
    with pytest.raises(OSError), recorded_run(warehouse_path, "mine", {}):
        raise OSError("disk full")
    with recorded_run(warehouse_path, "mine", {}) as run:
        run.errors = ["repo x: not found"]
        run.judge(succeeded=0, failed=1)
    with recorded_run(warehouse_path, "annotate", {}) as run:
        run.errors = ["commit y: invalid reply"]
        run.judge(succeeded=2, failed=1)
    with recorded_run(warehouse_path, "annotate", {}) as run:
        run.judge(succeeded=2, failed=0)
    assert _rows(warehouse_path) == [
        ("export", "completed", [], "3", True),
        ("mine", "failed", ["disk full (the next run resumes)"], None, True),
        ("mine", "failed", ["repo x: not found"], None, True),
        ("annotate", "partially_failed", ["commit y: invalid reply"], None, True),
        ("annotate", "completed", [], None, True)]
