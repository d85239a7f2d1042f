"""A rich progress display that tasks report to when the CLI is showing one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

_lock = threading.Lock()
_progress: Progress | None = None
_tasks: dict[str, TaskID] = {}


@contextmanager
def live(console: Console) -> Iterator[None]:
    """Show progress bars for the duration of the block (the CLI's long commands)."""
    global _progress
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    with progress:
        _progress = progress
        try:
            yield
        finally:
            _progress = None
            _tasks.clear()


def reporter(key: str) -> Callable[[str, int, int], None]:
    """A callback (stage, done, total) that moves key's bar; a no-op when nothing is shown."""

    def report(stage: str, done: int, total: int) -> None:
        with _lock:
            if _progress is None:
                return
            if key not in _tasks:
                _tasks[key] = _progress.add_task(key, total=None)
            _progress.update(_tasks[key], description=f"{key}: {stage}", completed=done,
                             total=total or None)

    return report
