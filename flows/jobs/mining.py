"""Mining one repository: scan → extract → parse → label → save, in `mine_repository`.

The scan runs on a thread of its own and the parse on worker processes; what is parsed is
labeled from the records in hand and written behind on a thread of its own, so git, the
parsers and DuckDB work at the same time. `mine_to_shard` is the same path for work that
runs away from the DuckDB file: rows go to a Parquet shard that the one writer loads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TypeVar, cast

from flows.jobs.labeling import LabelCounts, Labeled, count_labels, label_mined
from flows.jobs.progress import Progress, no_progress
from miners.classify import Match, PatternSet
from miners.errors import GitCommandError
from miners.extract import iter_commit_files
from miners.git import count_commits, fetch_branch_tips, fetch_existing, fetch_head, fetch_patch_ids
from miners.licenses import LicenseGuess, fetch_license
from miners.parallel import DEFAULT_PARSE_WORKERS, FunctionParser, ParsedBatch
from miners.records import CommitFiles, RepoRef
from miners.scan import MessageScan
from warehouse.db import limit_threads, open_warehouse
from warehouse.queries import has_mined, mined_tips
from warehouse.save import (
    build_commit_rows,
    save_high_water_mark,
    save_license,
    save_mined_batch,
    save_repo,
)
from warehouse.shards import ShardWriter
from warehouse.writer import WriteBehind

_T = TypeVar("_T")
BATCH = 200  # commits per warehouse transaction, at most: what a killed run loses is redone
# Commits per extraction, at least (but the last): each starts a git process.
_LEAST_EXTRACTED = 16
# Commits per write while mining: written as they are parsed, the writer keeps pace with
# the parse workers and leaves little to write once they are done.
_WRITE_EVERY = 50


@dataclass(frozen=True)
class RepoResult:
    """What mining one repository did; small enough to be a task's result."""

    repo: str
    commits_scanned: int = 0
    matches: int = 0
    merges: int = 0
    pairs: int = 0
    skipped: int = 0
    functions: int = 0
    labels: int = 0
    fixes: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class _Tally:
    """Counts of what a mine stored, added up as its commits are saved."""

    matches: int = 0
    merges: int = 0
    pairs: int = 0
    skipped: int = 0
    functions: int = 0
    labels: LabelCounts = field(default_factory=LabelCounts)

    def add(self, commits: list[tuple[CommitFiles, Match]], labels: LabelCounts) -> None:
        for cf, _ in commits:
            self.matches += 1
            self.merges += cf.commit.is_merge
            for f in cf.files:
                self.skipped += bool(f.skipped_reason)
                self.pairs += not f.skipped_reason
                self.functions += len(f.functions)
        self.labels += labels

    def result(self, repo: str, scanned: int, started: float) -> RepoResult:
        return RepoResult(repo, commits_scanned=scanned, matches=self.matches,
                          merges=self.merges, pairs=self.pairs, skipped=self.skipped,
                          functions=self.functions, labels=self.labels.labels,
                          fixes=self.labels.fixes, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class _Group:
    """Extracted commits of one transaction, parsing on the workers."""

    parsed: list[ParsedBatch]
    matches: dict[str, Match]
    patch_ids: dict[str, str]

    def commits(self) -> Iterator[tuple[tuple[CommitFiles, Match], Labeled | None]]:
        """Each commit with its function pairs and its match, as soon as it is parsed, and
        the label its parse worker made (None for a merge, or when the parser labels not)."""
        for part in self.parsed:
            for cf, label in part.results():
                yield (cf, self.matches[cf.commit.sha]), cast(Labeled | None, label)


def _group(ref: RepoRef, parsed: list[ParsedBatch], matches: dict[str, Match]) -> _Group:
    patch_ids = fetch_patch_ids(ref.git_dir, {  # from the diffs, known before any parse
        cf.commit.sha: "".join(f.diff for f in cf.files if f.diff)
        for part in parsed for cf in part.extracted})
    return _Group(parsed, matches, patch_ids)


def iter_parsed(ref: RepoRef, scan: MessageScan, parser: FunctionParser, max_file_bytes: int,
                progress: Progress = no_progress) -> Iterator[_Group]:
    """The scan's matches, extracted as it finds them and parsed on the workers, in groups of
    at most BATCH commits. A group is handed on once the next extraction has been submitted,
    so the newest one parses while the one before it is labeled and saved."""
    matches: dict[str, Match] = {}
    waiting: list[ParsedBatch] = []
    size = 0  # commits in waiting
    for found in scan.batches(_LEAST_EXTRACTED, BATCH):
        progress(ref.name, "extracting pairs", len(matches), 0)  # the total is known at the end
        commits = [commit for commit, _ in found]
        matches.update((commit.sha, match) for commit, match in found)
        submitted = parser.batch(len(commits))
        for cf in iter_commit_files(ref.git_dir, commits, max_file_bytes):
            submitted.add(cf)
        for commit in commits:
            if commit.is_merge:
                submitted.add(CommitFiles(commit))
        if size + len(commits) > BATCH:  # a transaction holds at most BATCH commits
            yield _group(ref, waiting, matches)
            waiting, size = [], 0
        waiting.append(submitted)
        size += len(commits)
    if waiting:
        yield _group(ref, waiting, matches)
    progress(ref.name, "extracting pairs", len(matches), len(matches))


@dataclass(frozen=True)
class _Plan:
    """What a mine reads: HEAD (None: an empty repository), the tips to include and the
    commits mined before to exclude."""

    head: str | None
    include: list[str]
    exclude: list[str]


def _plan(ref: RepoRef, previous_tips: list[str], all_branches: bool) -> _Plan:
    head = fetch_head(ref.git_dir)
    if head is None:  # an empty repository is data, not an error
        return _Plan(None, [], [])
    include = sorted({head, *fetch_branch_tips(ref.git_dir)}) if all_branches else [head]
    return _Plan(head, include, fetch_existing(ref.git_dir, previous_tips))


def _count_later(plan: _Plan, ref: RepoRef) -> Future[int]:
    """Every commit the scan covers, counted by a second git process while it streams."""
    counter = ThreadPoolExecutor(max_workers=1)
    scanned = counter.submit(count_commits, ref.git_dir, plan.include, plan.exclude)
    counter.shutdown(wait=False)
    return scanned


def mine_repository(ref: RepoRef, warehouse: Path, patterns: PatternSet, run_id: str, *,
                    max_file_bytes: int, all_branches: bool = False,
                    parse_workers: int = DEFAULT_PARSE_WORKERS,
                    progress: Progress = no_progress) -> RepoResult:
    """Mine and label the commits of ref not mined before into the warehouse."""
    started = time.perf_counter()
    # The parse workers take the cores while mining: DuckDB gets those left, where threads
    # of its own would only contend with them (and cost more CPU than they save).
    with open_warehouse(warehouse) as con, \
            limit_threads(con, (os.cpu_count() or 1) - parse_workers), \
            WriteBehind() as writer:
        save_repo(con, ref)
        new = not has_mined(con, ref.name)  # nothing stored to replace: plain INSERTs
        plan = _plan(ref, mined_tips(con, ref.name), all_branches)
        tally, scanned = _Tally(), 0
        if plan.head is not None:
            progress(ref.name, "scanning messages", 0, 0)
            counted = _count_later(plan, ref)
            with MessageScan(ref.git_dir, plan.include, plan.exclude, patterns) as scan, \
                    FunctionParser(parse_workers, then=partial(label_mined, ref.name)) as parser:
                for group in iter_parsed(ref, scan, parser, max_file_bytes, progress):
                    for chunk in _chunks(group.commits(), _WRITE_EVERY):
                        commits = [commit for commit, _ in chunk]
                        labeled = [label for _, label in chunk if label is not None]
                        writer.submit(partial(save_mined_batch, new=new), con, ref.name,
                                      run_id, commits, group.patch_ids, labeled)
                        tally.add(commits, count_labels(labeled))
            writer.wait()
            scanned = counted.result()
        save_high_water_mark(con, ref.name, plan.head, plan.include)
        guess = _license(ref, plan.head)
        save_license(con, ref.name, guess and guess.spdx, guess and guess.source)
        return tally.result(ref.name, scanned, started)


def mine_to_shard(ref: RepoRef, shard_root: Path, patterns: PatternSet, run_id: str,
                  previous_tips: list[str], *, max_file_bytes: int, all_branches: bool = False,
                  parse_workers: int = 1) -> RepoResult:
    """Mine into a Parquet shard for the loader (work that runs away from the DuckDB file);
    the loader's process labels what it loads."""
    started = time.perf_counter()
    writer = ShardWriter(shard_root, ref.name, run_id)
    try:
        plan = _plan(ref, previous_tips, all_branches)
        tally, scanned = _Tally(), 0
        if plan.head is not None:
            counted = _count_later(plan, ref)
            with MessageScan(ref.git_dir, plan.include, plan.exclude, patterns) as scan, \
                    FunctionParser(parse_workers) as parser:
                for group in iter_parsed(ref, scan, parser, max_file_bytes):
                    commits = [commit for commit, _ in group.commits()]
                    writer.write(build_commit_rows(ref.name, run_id, commits, group.patch_ids))
                    tally.add(commits, LabelCounts())
            scanned = counted.result()
        writer.commit(ref.url, plan.head, plan.include, _license(ref, plan.head))
        return tally.result(ref.name, scanned, started)
    except BaseException:
        writer.abort()
        raise


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """items in lists of size (the last may be shorter), each taken as it is complete."""
    rest = iter(items)
    while chunk := list(islice(rest, size)):
        yield chunk


def _license(ref: RepoRef, head: str | None) -> LicenseGuess | None:
    """The license at HEAD; a repository whose files cannot be read has an unknown one."""
    if head is None:
        return None
    try:
        return fetch_license(ref.git_dir, head)
    except GitCommandError:
        return None
