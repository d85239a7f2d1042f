"""Writes behind the caller: one at a time, in order, failures raised to the caller."""

from __future__ import annotations

import threading

import pytest

from warehouse.writer import WriteBehind


def test_writes_run_in_order_on_a_thread_of_their_own() -> None:
    done: list[tuple[int, str]] = []
    with WriteBehind() as writer:
        for i in range(5):
            writer.submit(lambda n: done.append((n, threading.current_thread().name)), i)
    assert [n for n, _ in done] == list(range(5))
    assert {name for _, name in done} != {threading.current_thread().name}


def test_a_failed_write_is_raised_by_the_next_call() -> None:
    def fail() -> None:
        raise OSError("disk full")

    with WriteBehind() as writer:
        writer.submit(fail)
        with pytest.raises(OSError, match="disk full"):
            writer.submit(lambda: None)
        writer.submit(fail)
        with pytest.raises(OSError, match="disk full"):
            writer.wait()
        writer.wait()  # a failure is raised once
