"""Function extraction on worker processes (tree-sitter holds the GIL while it parses)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType

from miners.functions import PairsJob, function_pairs_jobs
from miners.records import CommitFiles, FilePair

DEFAULT_PARSE_WORKERS = max(1, min(4, os.cpu_count() or 1))
# Below this many commits a batch is parsed inline: starting worker processes costs more.
_INLINE_BELOW = 12


def _parseable(f: FilePair) -> bool:
    return f.skipped_reason is None and (f.before is not None or f.after is not None)


def _exit_with_parent(parent: int) -> None:
    """In a worker: end when the mining process is gone. A killed parent closes nothing a
    forked worker waits on (the worker holds both ends of its job pipe), so it would wait
    for work forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ParsedBatch:
    """Commits whose file pairs are being parsed; results() yields each with its function
    pairs as soon as they are parsed.

    Files are handed to the workers as each commit is added, so parsing runs while git
    still extracts the rest of the batch.
    """

    def __init__(self, submit: Callable[[list[PairsJob]], Future]) -> None:
        self._submit = submit
        # each commit, the indexes of its files to parse, and their parse (None: no file)
        self._commits: list[tuple[CommitFiles, list[int], Future | None]] = []

    def add(self, cf: CommitFiles) -> None:
        files = [(j, f) for j, f in enumerate(cf.files) if _parseable(f)]
        jobs = [(f.before, f.after, f.language, f.diff) for _, f in files]
        self._commits.append((cf, [j for j, _ in files], self._submit(jobs) if jobs else None))

    @property
    def extracted(self) -> list[CommitFiles]:
        """The commits as added: file pairs and diffs, no function pairs yet."""
        return [cf for cf, _, _ in self._commits]

    def results(self) -> Iterator[CommitFiles]:
        """Each commit with its function pairs, in the order added, once they are parsed."""
        for cf, parsed, future in self._commits:
            if future is None:
                yield cf
                continue
            files = list(cf.files)
            for j, (status, pairs) in zip(parsed, future.result(), strict=True):
                files[j] = dataclasses.replace(files[j], parse_status=status,
                                               functions=tuple(pairs))
            yield dataclasses.replace(cf, files=tuple(files))


class _Done(Future):
    def __init__(self, value: object) -> None:
        super().__init__()
        self.set_result(value)


class FunctionParser:
    """Submits file pairs for function extraction; a context manager owning the workers."""

    def __init__(self, workers: int = DEFAULT_PARSE_WORKERS) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> FunctionParser:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc is not None)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # fork on Linux: forkserver and spawn re-import the caller's __main__, which breaks
            # scripts without a main guard. The workers run only tree-sitter and our pure
            # code, never a lock or a logger that another parent thread might hold.
            method = "fork" if sys.platform == "linux" else "spawn"
            context = multiprocessing.get_context(method)
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context,
                                             initializer=_exit_with_parent,
                                             initargs=(os.getpid(),))
        return self._pool

    def batch(self, commits: int) -> ParsedBatch:
        """An empty batch for this many commits; until the workers are started, a small one
        is parsed inline."""
        if self._workers <= 1 or (self._pool is None and commits < _INLINE_BELOW):
            return ParsedBatch(lambda jobs: _Done(function_pairs_jobs(jobs)))
        pool = self._executor()
        return ParsedBatch(lambda jobs: pool.submit(function_pairs_jobs, jobs))
