"""The mining path for one repository: scan, classify, extract, store, label.

Plain functions over the core packages; the Prefect flow wraps each in a task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TypeVar

from annotators.heuristic import ANNOTATOR_ID, annotate_heuristic
from annotators.schema import Annotation, CommitInput, FileInput
from miners.classify import Match, PatternSet
from miners.errors import GitCommandError
from miners.extract import iter_commit_files
from miners.git import (
    count_commits,
    fetch_branch_tips,
    fetch_existing,
    fetch_head,
    fetch_mirror,
    fetch_patch_ids,
    open_local,
)
from miners.licenses import LicenseGuess, fetch_license
from miners.parallel import DEFAULT_PARSE_WORKERS, FunctionParser, ParsedBatch
from miners.records import CommitFiles, RepoRef
from miners.scan import MessageScan
from miners.sources import is_local_spec, parse_remote_spec
from warehouse.db import limit_threads, open_warehouse
from warehouse.queries import commit_inputs, has_mined, mined_tips, unlabeled_commits
from warehouse.save import (
    build_commit_rows,
    save_annotations,
    save_high_water_mark,
    save_license,
    save_mined_batch,
    save_repo,
)
from warehouse.shards import ShardWriter
from warehouse.writer import WriteBehind

Progress = Callable[[str, int, int], None]
_T = TypeVar("_T")
BATCH = 200  # commits per warehouse transaction, at most: what a killed run loses is redone
# Commits per extraction, at least (but the last): each starts a git process.
_LEAST_EXTRACTED = 16
# Commits per write while mining: written as they are parsed, the writer keeps pace with
# the parse workers and leaves little to write once they are done.
_WRITE_EVERY = 50


def _quiet(stage: str, done: int, total: int) -> None:
    pass


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


def resolve_repo(spec: str, name: str | None, cache_dir: Path, token: str | None) -> RepoRef:
    """A local path is read in place; anything else is mirrored into the cache first."""
    if is_local_spec(spec):
        return open_local(spec, name)
    ref = fetch_mirror(parse_remote_spec(spec), cache_dir, token)
    return replace(ref, name=name) if name else ref


# Saves one batch: its commits (each yielded once its function pairs are parsed, so the
# saver can work on it while later ones parse) and their patch ids.
Saver = Callable[[Iterable[tuple[CommitFiles, Match]], dict[str, str]], None]


def _store(ref: RepoRef, parsed: list[ParsedBatch], matches: dict[str, Match], save: Saver
           ) -> tuple[int, int, int]:
    """Save one extracted batch; returns (pairs, skipped files, function pairs)."""
    patch_ids = fetch_patch_ids(ref.git_dir, {  # from the diffs, known before any parse
        cf.commit.sha: "".join(f.diff for f in cf.files if f.diff)
        for part in parsed for cf in part.extracted})
    counts = [0, 0, 0]

    def items() -> Iterator[tuple[CommitFiles, Match]]:
        for part in parsed:
            for cf in part.results():
                counts[0] += sum(1 for f in cf.files if not f.skipped_reason)
                counts[1] += sum(1 for f in cf.files if f.skipped_reason)
                counts[2] += sum(len(f.functions) for f in cf.files)
                yield cf, matches[cf.commit.sha]

    save(items(), patch_ids)
    return counts[0], counts[1], counts[2]


def _extract_and_store(ref: RepoRef, scan: MessageScan, max_file_bytes: int,
                       parse_workers: int, progress: Progress, save: Saver
                       ) -> tuple[int, int, list[int]]:
    """File and function pairs of the commits the scan finds, saved batch by batch.

    Pipelined: the scan's matches are extracted as it finds them, each commit's files go
    to the parse workers as git extracts them, and what was extracted before is saved
    while the newest extraction parses. Returns (matches, merges, [pairs, skipped,
    function pairs]).
    """
    totals = [0, 0, 0]
    matches: dict[str, Match] = {}
    merges = 0

    def store(parsed: list[ParsedBatch]) -> None:
        for i, n in enumerate(_store(ref, parsed, matches, save)):
            totals[i] += n

    with FunctionParser(parse_workers) as parser:
        unsaved: list[ParsedBatch] = []
        waiting = 0  # commits in unsaved
        for found in scan.batches(_LEAST_EXTRACTED, BATCH):
            progress("extracting pairs", len(matches), 0)  # the total is known at the end
            commits = [commit for commit, _ in found]
            matches.update((commit.sha, match) for commit, match in found)
            submitted = parser.batch(len(commits))
            for cf in iter_commit_files(ref.git_dir, commits, max_file_bytes):
                submitted.add(cf)
            for commit in commits:
                if commit.is_merge:
                    merges += 1
                    submitted.add(CommitFiles(commit))
            if waiting + len(commits) > BATCH:  # a transaction holds at most BATCH commits
                store(unsaved)
                unsaved, waiting = [], 0
            unsaved.append(submitted)
            waiting += len(commits)
        if unsaved:
            store(unsaved)
    progress("extracting pairs", len(matches), len(matches))
    return len(matches), merges, totals


def _mine(ref: RepoRef, previous_tips: list[str], patterns: PatternSet, save: Saver, *,
          max_file_bytes: int, all_branches: bool, parse_workers: int, progress: Progress
          ) -> tuple[RepoResult, str | None, list[str]]:
    """Scan and extract what is new; returns counts, HEAD and the tips now covered."""
    started = time.perf_counter()
    head = fetch_head(ref.git_dir)
    if head is None:  # an empty repository is data, not an error
        return RepoResult(ref.name, seconds=time.perf_counter() - started), None, []
    include = sorted({head, *fetch_branch_tips(ref.git_dir)}) if all_branches else [head]
    exclude = fetch_existing(ref.git_dir, previous_tips)
    progress("scanning messages", 0, 0)
    # Counting every commit is a second git process; it runs while the scan streams.
    counter = ThreadPoolExecutor(max_workers=1)
    scanned = counter.submit(count_commits, ref.git_dir, include, exclude)
    counter.shutdown(wait=False)
    with MessageScan(ref.git_dir, include, exclude, patterns) as scan:
        matches, merges, (pairs, skipped, functions) = _extract_and_store(
            ref, scan, max_file_bytes, parse_workers, progress, save)
    result = RepoResult(ref.name, commits_scanned=scanned.result(), matches=matches,
                        merges=merges, pairs=pairs, skipped=skipped,
                        functions=functions, seconds=time.perf_counter() - started)
    return result, head, include


def mine_repository(ref: RepoRef, warehouse: Path, patterns: PatternSet, run_id: str, *,
                    max_file_bytes: int, all_branches: bool = False,
                    parse_workers: int = DEFAULT_PARSE_WORKERS,
                    progress: Progress = _quiet) -> RepoResult:
    """Mine the commits of ref not mined before into the warehouse; returns counts."""
    # The parse workers take the cores while mining: DuckDB gets those left, where threads
    # of its own would only contend with them (and cost more CPU than they save).
    with open_warehouse(warehouse) as con, \
            limit_threads(con, (os.cpu_count() or 1) - parse_workers), \
            WriteBehind() as writer:
        save_repo(con, ref)
        new = not has_mined(con, ref.name)  # nothing stored to replace: plain INSERTs
        labeled = [0, 0]

        def save(items: Iterable[tuple[CommitFiles, Match]], patch_ids: dict[str, str]
                 ) -> None:
            # Commits are labeled from the records in hand as soon as they are parsed, and
            # written behind while mining goes on.
            for batch in _chunks(items, _WRITE_EVERY):
                annotations = []
                for cf, _ in batch:
                    if (annotation := label_mined(ref.name, cf)) is not None:
                        annotations.append((cf.commit.sha, "", annotation))
                        labeled[0] += 1
                        labeled[1] += _is_fix(annotation)
                writer.submit(partial(save_mined_batch, new=new), con, ref.name, run_id,
                              batch, patch_ids, annotations)

        result, head, tips = _mine(ref, mined_tips(con, ref.name), patterns, save,
                                   max_file_bytes=max_file_bytes, all_branches=all_branches,
                                   parse_workers=parse_workers, progress=progress)
        writer.wait()
        save_high_water_mark(con, ref.name, head, tips)
        guess = _license(ref, head)
        save_license(con, ref.name, guess and guess.spdx, guess and guess.source)
        return replace(result, labels=labeled[0], fixes=labeled[1])


def mine_to_shard(ref: RepoRef, shard_root: Path, patterns: PatternSet, run_id: str,
                  previous_tips: list[str], *, max_file_bytes: int, all_branches: bool = False,
                  parse_workers: int = 1) -> RepoResult:
    """Mine into a Parquet shard for the loader (work that runs away from the DuckDB file)."""
    writer = ShardWriter(shard_root, ref.name, run_id)
    try:
        def save(batch: Iterable[tuple[CommitFiles, Match]], patch_ids: dict[str, str]
                 ) -> None:
            writer.write(build_commit_rows(ref.name, run_id, batch, patch_ids))

        result, head, tips = _mine(ref, previous_tips, patterns, save,
                                   max_file_bytes=max_file_bytes, all_branches=all_branches,
                                   parse_workers=parse_workers, progress=_quiet)
        writer.commit(ref.url, head, tips, _license(ref, head))
        return result
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


def _is_fix(annotation: Annotation) -> bool:
    return bool(annotation.label and annotation.label.is_concurrency_bug)


def label_mined(repo: str, cf: CommitFiles) -> Annotation | None:
    """The heuristic label of a freshly mined commit, made from the records in memory (the
    inputs label_repository would read back from the warehouse); None for a merge, whose
    changes are its parents' (as in unlabeled_commits)."""
    if cf.commit.is_merge:
        return None
    files = [FileInput(f.path, f.language, f.is_test, f.before, f.diff,
                       tuple((fn.name, fn.before.start_line, fn.before.end_line)
                             for fn in f.functions if fn.before))
             for f in sorted(cf.files, key=lambda f: f.path) if not f.skipped_reason]
    return annotate_heuristic(CommitInput(repo, cf.commit.sha, cf.commit.message,
                                          tuple(files)))


def label_repository(warehouse: Path, repo: str, run_id: str, progress: Progress = _quiet
                     ) -> tuple[int, int]:
    """Label repo's commits that have no heuristic label yet: those a killed mine stored
    but did not label, those a shard brought, and all of them after the rules change.
    Returns (labels, fixes)."""
    with open_warehouse(warehouse) as con:
        shas = unlabeled_commits(con, repo, ANNOTATOR_ID)
        labels = fixes = 0
        for start in range(0, len(shas), BATCH):
            progress("labeling", start, len(shas))
            batch = []
            for sha, message, files in commit_inputs(con, repo, shas[start:start + BATCH]):
                commit = CommitInput(repo, sha, message, tuple(FileInput(*f) for f in files))
                annotation = annotate_heuristic(commit)
                batch.append((sha, "", annotation))
                fixes += _is_fix(annotation)
            labels += save_annotations(con, repo, run_id, batch)
        progress("labeling", len(shas), len(shas))
        return labels, fixes
