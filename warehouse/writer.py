"""Warehouse writes on a thread of their own, so that the caller goes on meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any


class WriteBehind:
    """Runs writes one at a time on one thread while the caller goes on (DuckDB lets go of
    the GIL as it inserts and compresses). A failed write is raised by the next submit()
    or by wait(); leaving the block waits for the write in flight."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="racemine-writer")
        self._pending: Future[None] | None = None

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        """Start write(*args) once the write before it has finished."""
        self.wait()
        self._pending = self._pool.submit(write, *args)

    def wait(self) -> None:
        """Wait for the write in flight; raise its failure."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
