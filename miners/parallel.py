"""Function extraction on worker processes (tree-sitter holds the GIL while it parses)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import TracebackType

from miners.functions import function_pairs_jobs
from miners.records import CommitFiles, FilePair, FunctionPair, ParseStatus

DEFAULT_PARSE_WORKERS = max(1, min(4, os.cpu_count() or 1))
# Below this many commits a batch is parsed inline: starting worker processes costs more.
_INLINE_BELOW = 12


def _parseable(f: FilePair) -> bool:
    return f.skipped_reason is None and (f.before is not None or f.after is not None)


def _exit_with_parent(parent: int) -> None:
    """In a worker: end when the mining process is gone, whatever it left open; leave
    Ctrl-C, which a terminal sends to every process of the command, to the mining process,
    which stops the workers itself (a worker would only print its own traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except OSError:
                pass  # alive, owned by someone else
            time.sleep(1.0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# What a caller does with each commit once it is parsed, on the worker that parsed it (a
# top-level function, or a partial of one, so that it pickles): labeling there spreads it
# over the workers instead of leaving it to the process that extracts.
Then = Callable[[CommitFiles], object]

# A commit's parse as it travels back from a worker: (status, pairs) of each parseable file,
# and what `then` made of the commit; the file texts stay where they are.
_Parsed = tuple[list[tuple[ParseStatus, list[FunctionPair]]], object]


def _parse_commit(cf: CommitFiles, then: Then | None) -> _Parsed:
    files = [f for f in cf.files if _parseable(f)]
    parsed = function_pairs_jobs([(f.before, f.after, f.language, f.diff) for f in files])
    return parsed, then(_with_pairs(cf, parsed)) if then else None


def _with_pairs(cf: CommitFiles, parsed: list[tuple[ParseStatus, list[FunctionPair]]]
                ) -> CommitFiles:
    if not parsed:
        return cf
    files = list(cf.files)
    at = [j for j, f in enumerate(files) if _parseable(f)]
    for j, (status, pairs) in zip(at, parsed, strict=True):
        files[j] = dataclasses.replace(files[j], parse_status=status, functions=tuple(pairs))
    return dataclasses.replace(cf, files=tuple(files))


class ParsedBatch:
    """Commits whose file pairs are being parsed; results() yields each with its function
    pairs, and what the parser's `then` made of it, as soon as it is parsed.

    Each commit is handed to the workers as it is added, so parsing runs while git still
    extracts the rest of the batch.
    """

    def __init__(self, submit: Callable[[CommitFiles], Future[_Parsed]]) -> None:
        self._submit = submit
        self._commits: list[tuple[CommitFiles, Future[_Parsed]]] = []

    def add(self, cf: CommitFiles) -> None:
        self._commits.append((cf, self._submit(cf)))

    @property
    def extracted(self) -> list[CommitFiles]:
        """The commits as added: file pairs and diffs, no function pairs yet."""
        return [cf for cf, _ in self._commits]

    def results(self) -> Iterator[tuple[CommitFiles, object]]:
        """Each commit with its function pairs and what `then` made of it (None without a
        `then`), in the order added, once they are parsed."""
        for cf, future in self._commits:
            parsed, made = future.result()
            yield _with_pairs(cf, parsed), made


class _Done(Future):
    def __init__(self, value: object) -> None:
        super().__init__()
        self.set_result(value)


def _context(then: Then | None) -> multiprocessing.context.BaseContext:
    """How workers start. Not by forking the mining process: its other threads run git
    meanwhile, and a fork inherits the pipes they hold open, so git never sees the end of
    its input and the run waits forever (seen: `git patch-id` of one repository waiting on
    a worker forked for another). On Linux a fork server, started once, forks clean workers
    with the parsing code (and `then`'s module) imported, not the caller's __main__ (a
    script without a main guard would run again); elsewhere, spawn."""
    if sys.platform != "linux":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    modules = ["miners.functions"]
    if then is not None:
        modules.append(getattr(then, "func", then).__module__)
    context.set_forkserver_preload(modules)
    if threading.current_thread() is threading.main_thread():
        # The fork server imports those modules before it shields itself from Ctrl-C, so a
        # Ctrl-C in that second would print its traceback: it starts with SIGINT blocked
        # (the processes it starts inherit the mask), and the mining process, which handles
        # the interrupt, stops the workers. Blocked, not ignored: a Ctrl-C that reaches the
        # mining process while the server starts (seconds on a loaded machine) waits,
        # pending, and stops the run once the server is up, instead of being lost.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return context


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back until the block ends (in the main thread, where Python raises it):
    a submit may start a worker, and one interrupted between starting it and recording it
    leaves it to fail on the pool's queue once the pool is gone, and print that failure."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        signal.raise_signal(signal.SIGINT)


class FunctionParser:
    """Submits file pairs for function extraction; a context manager owning the workers."""

    def __init__(self, workers: int = DEFAULT_PARSE_WORKERS, then: Then | None = None) -> None:
        self._workers = workers
        self._then = then
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> FunctionParser:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc is not None)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self._workers, mp_context=_context(self._then),
                                             initializer=_exit_with_parent,
                                             initargs=(os.getpid(),))
        return self._pool

    def batch(self, commits: int) -> ParsedBatch:
        """An empty batch for this many commits; until the workers are started, a small one
        is parsed inline."""
        then = self._then
        if self._workers <= 1 or (self._pool is None and commits < _INLINE_BELOW):
            return ParsedBatch(lambda cf: _Done(_parse_commit(cf, then)))
        pool = self._executor()

        def submit(cf: CommitFiles) -> Future[_Parsed]:
            # a commit with nothing to parse costs the pool a round trip for no work
            if any(_parseable(f) for f in cf.files):
                with _interrupts_deferred():
                    return pool.submit(_parse_commit, cf, then)
            return _Done(_parse_commit(cf, then))

        return ParsedBatch(submit)
