"""A rich progress display for the CLI's long commands: one bar per repository."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

from flows.jobs.progress import Progress as Reporter
from flows.jobs.progress import no_progress

if TYPE_CHECKING:  # rich.progress is imported only when bars are shown
    from rich.progress import Progress, TaskID

_active: Reporter = no_progress  # what tracked tasks report to while the CLI shows bars


class _Bars:
    """A Progress reporter that moves one bar per key."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, key: str, stage: str, done: int, total: int) -> None:
        with self._lock:
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(key, total=None)
            self._progress.update(self._tasks[key], description=f"{key}: {stage}",
                                  completed=done, total=total or None)


@contextmanager
def live(console: Console) -> Iterator[Reporter]:
    """Bars for the duration of the block on a terminal; nothing in a log or a pipe (the
    summary printed at the end says what was done)."""
    global _active
    if not console.is_terminal:
        yield no_progress
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    with progress:
        _active = _Bars(progress)
        try:
            yield _active
        finally:
            _active = no_progress


def active_reporter() -> Reporter:
    """The reporter of the bars on show, or one that reports nothing."""
    return _active
