"""Retries for the network steps (mirror fetch, GitHub), the same with or without Prefect."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

_T = TypeVar("_T")


def retrying(call: Callable[[], _T], transient: type[Exception] | tuple[type[Exception], ...],
             delays: Sequence[float], sleep: Callable[[float], None] = time.sleep) -> _T:
    """call(), asked again after each delay while it raises a transient error; the last
    error, or any other, is raised."""
    for delay in delays:
        try:
            return call()
        except transient:
            sleep(delay)
    return call()
