"""The runs row every flow leaves behind: started, then completed or failed with why."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warehouse.db import open_warehouse
from warehouse.save import finish_run, start_run


@dataclass
class RunRecord:
    """What a flow fills in while it works; written when the block ends."""

    run_id: str
    counts: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failed: bool = False  # set when the work finished but nothing succeeded


@contextmanager
def recorded_run(warehouse: str | Path, kind: str, parameters: Mapping[str, Any]
                 ) -> Iterator[RunRecord]:
    """A runs row for the block: an exception marks it failed with its first line."""
    with open_warehouse(warehouse) as con:
        record = RunRecord(start_run(con, kind, parameters))
    status = "failed"
    try:
        yield record
        status = "failed" if record.failed else "completed"
    except BaseException as exc:
        reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
        record.errors = [*record.errors, f"{reason} (the next run resumes)"]
        raise
    finally:
        with open_warehouse(warehouse) as con:
            finish_run(con, record.run_id, status=status, counts=record.counts,
                       errors=record.errors)
