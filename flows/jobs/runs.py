"""The runs row every job leaves behind: started, then completed, partially failed or failed
with why."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from warehouse.db import open_warehouse
from warehouse.save import finish_run, start_run


class RunStatus(StrEnum):
    COMPLETED = "completed"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


@dataclass
class RunRecord:
    """What a job fills in while it works; written when the block ends."""

    run_id: str
    counts: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    status: RunStatus = RunStatus.COMPLETED

    def judge(self, succeeded: int, failed: int) -> None:
        """The status of work in units (repositories, commits) of which some failed."""
        self.status = status_of(succeeded, failed)


def status_of(succeeded: int, failed: int) -> RunStatus:
    """Completed when nothing failed; failed when nothing succeeded; else partially failed."""
    if not failed:
        return RunStatus.COMPLETED
    return RunStatus.PARTIALLY_FAILED if succeeded else RunStatus.FAILED


@contextmanager
def recorded_run(warehouse: str | Path, kind: str, parameters: Mapping[str, Any], *,
                 keep_open: bool = False) -> Iterator[RunRecord]:
    """A runs row for the block: an exception marks it failed with its first line.

    keep_open holds a connection for the block, so that the work's own read-write
    connections join the open database instead of opening the file (and checkpointing it at
    close) once each; work that opens the file read-only cannot use it. Meanwhile other
    processes' reads are answered from it (warehouse.host)."""
    with open_warehouse(warehouse, serve_reads=True) if keep_open else nullcontext():
        with open_warehouse(warehouse) as con:
            record = RunRecord(start_run(con, kind, parameters))
        status = RunStatus.FAILED
        try:
            yield record
            status = record.status
        except BaseException as exc:
            reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
            record.errors = [*record.errors, f"{reason} (the next run resumes)"]
            raise
        finally:
            with open_warehouse(warehouse) as con:
                finish_run(con, record.run_id, status=status.value, counts=record.counts,
                           errors=record.errors)
