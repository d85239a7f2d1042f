"""How a job reports progress: a plain callback, so the jobs never know who is watching."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, key: str, stage: str, done: int, total: int) -> None:
        """key (a repository, a run) has done `done` of `total` (0: not known yet) of stage."""


def no_progress(key: str, stage: str, done: int, total: int) -> None:
    """Report nothing (scheduled runs, tests, benchmarks)."""
