"""The message scan on its own thread, so that extraction starts on the first matches.

`git log --grep` walks all of history before the last match is known. Read on a thread and
handed out as it goes, its matches are extracted and parsed while git is still walking.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import cast

from miners.classify import Match, PatternSet, classify_message
from miners.git import iter_commits, supports_pcre_grep
from miners.records import CommitMeta

Found = tuple[CommitMeta, Match]
_END = object()


class MessageScan:
    """Commits whose message matches, newest first, found by one `git log` on a thread.

    Use as a context manager: leaving it stops the scan (and its git process) if the
    consumer stopped early. An error of the scan is raised by batches().
    """

    def __init__(self, git_dir: str, include: Sequence[str], exclude: Sequence[str],
                 patterns: PatternSet) -> None:
        # git's PCRE backtracks; a user's patterns run on RE2 in Python only.
        grep: str | None = None if patterns.linear else patterns.prefilter.pattern
        if grep is not None and not supports_pcre_grep(git_dir, grep):
            grep = None  # this git has no PCRE: Python reads every message instead
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(git_dir, list(include), list(exclude), grep, patterns),
            name="racemine-scan", daemon=True)
        self._thread.start()

    def _run(self, git_dir: str, include: list[str], exclude: list[str], grep: str | None,
             patterns: PatternSet) -> None:
        try:
            commits = iter_commits(git_dir, include, exclude, grep=grep)
            try:
                for commit in commits:
                    if self._stop.is_set():
                        break
                    match = classify_message(commit.message, patterns)
                    if match.matched:
                        self._queue.put((commit, match))
            finally:
                commits.close()  # a scan stopped early kills its git process
        except BaseException as exc:  # handed to the consumer, which raises it
            self._queue.put(exc)
        finally:
            self._queue.put(_END)

    def __enter__(self) -> MessageScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def batches(self, least: int, most: int) -> Iterator[list[Found]]:
        """The matches in lists of whatever the scan has found when the consumer asks: at
        least `least` (but the last list) and at most `most`, so each git process started
        for them has work enough, and extraction keeps pace with the scan."""
        batch: list[Found] = []
        while True:
            if len(batch) < least:
                item = self._queue.get()
            else:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    yield batch
                    batch = []
                    continue
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            batch.append(cast(Found, item))
            if len(batch) == most:
                yield batch
                batch = []
        if batch:
            yield batch
