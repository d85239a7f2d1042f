"""Ctrl-C stops a command with one sentence, whatever it was doing at that moment.

An interrupt reaches a running command in one of three shapes: a KeyboardInterrupt in
Python code, the exit the command-line framework makes of one ("Aborted."), or, when it
lands while a DuckDB query runs and DuckDB notices it, DuckDB's own RuntimeError ("Query
interrupted"), which would otherwise print a traceback of a hundred lines. Python's own
SIGINT handler stays in place (DuckDB notices an interrupt only under it, and not always);
the signal is also written to a pipe (signal.set_wakeup_fd), which tells those shapes from
real failures. Every save is a transaction and every job resumes where the last commit left
it, so the sentence can say that nothing stored is lost.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

STOPPED = ("racemine: stopped (interrupted); what was stored is kept, and the next run "
           "resumes from there")
EXIT_STATUS = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


@contextmanager
def stopping_on_interrupt() -> Iterator[None]:
    """Run a command; if Ctrl-C (SIGINT) reached it, whatever escapes the block ends it
    with STOPPED on stderr and EXIT_STATUS."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    try:
        previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: only a KeyboardInterrupt says it
        previous = None
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt) and not _received(read, signal.SIGINT):
            raise
        stopped = True
    else:
        stopped = False
    finally:
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
    if stopped:
        # Out of the except block the interrupt's traceback is gone: the frames it held (a
        # DuckDB result among them) are freed now, not listed as leaks by DuckDB's bindings
        # at exit.
        gc.collect()
        print(STOPPED, file=sys.stderr)
        sys.exit(EXIT_STATUS)


def _received(read: int, signum: int) -> bool:
    """Whether the wakeup pipe holds signum (one byte per signal received)."""
    try:
        return signum in os.read(read, 4096)
    except BlockingIOError:
        return False
