"""Heuristic labels: the one place a mined commit becomes an annotator input and gets a label.

A mine labels each commit from the records in hand, on the worker process that parsed it
(`label_mined`); `label_unlabeled` labels, from the warehouse, what a killed mine or a shard
left without a label (and everything once the rules version changes, `label_commits`). Both
build the same annotator input and call the heuristic annotator once per commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from annotators.heuristic import ANNOTATOR_ID, annotate_heuristic
from annotators.schema import Annotation, CommitInput, FileInput, FunctionSpan
from flows.jobs.progress import Progress, no_progress
from miners.records import CommitFiles, FunctionPair
from warehouse.queries import read_commit_inputs, unlabeled_commits
from warehouse.save import save_annotations

BATCH = 200  # commits labeled per transaction when labeling from the warehouse

# What save_annotations takes: (sha, target, annotation); target "" labels the whole commit.
Labeled = tuple[str, str, Annotation]


@dataclass(frozen=True)
class LabelCounts:
    labels: int = 0
    fixes: int = 0

    def __add__(self, other: LabelCounts) -> LabelCounts:
        return LabelCounts(self.labels + other.labels, self.fixes + other.fixes)


def build_commit_input(repo: str, cf: CommitFiles) -> CommitInput | None:
    """What the annotator sees of a freshly mined commit (the same as read_commit_inputs
    reads back from the warehouse); None for a merge, whose changes are its parents'."""
    if cf.commit.is_merge:
        return None
    files = tuple(
        FileInput(path=f.path, language=f.language, is_test=f.is_test, before=f.before,
                  diff=f.diff, after=f.after,
                  functions=tuple(FunctionSpan(
                      fn.name, fn.change,
                      (fn.before.start_line, fn.before.end_line) if fn.before else None,
                      (fn.after.start_line, fn.after.end_line) if fn.after else None)
                      for fn in sorted(f.functions, key=_first_line)))
        for f in sorted(cf.files, key=lambda f: f.path) if not f.skipped_reason)
    return CommitInput(repo=repo, sha=cf.commit.sha, message=cf.commit.message, files=files)


def _first_line(fn: FunctionPair) -> tuple[int, str]:
    side = fn.before or fn.after
    return (side.start_line if side else 0), fn.name


def label_mined(repo: str, cf: CommitFiles) -> Labeled | None:
    """The label of a freshly mined commit, parsed (None for a merge); a mine runs this on
    the worker that parsed the commit."""
    commit = build_commit_input(repo, cf)
    return None if commit is None else (commit.sha, "", annotate_heuristic(commit))


def label_commits(inputs: Iterable[CommitInput | None]) -> tuple[list[Labeled], LabelCounts]:
    """Heuristic labels of the commits (None, a merge, is left unlabeled), and their count."""
    labeled = [(commit.sha, "", annotate_heuristic(commit)) for commit in inputs
               if commit is not None]
    return labeled, count_labels(labeled)


def count_labels(labeled: Iterable[Labeled]) -> LabelCounts:
    labels = list(labeled)
    return LabelCounts(len(labels), sum(bool(a.label and a.label.is_concurrency_bug)
                                        for _, _, a in labels))


def label_unlabeled(con: duckdb.DuckDBPyConnection, repo: str, run_id: str,
                    progress: Progress = no_progress) -> LabelCounts:
    """Label repo's stored commits that have no label of the current rules yet."""
    shas = unlabeled_commits(con, repo, ANNOTATOR_ID)
    total = LabelCounts()
    for start in range(0, len(shas), BATCH):
        progress(repo, "labeling", start, len(shas))
        labeled, counts = label_commits(read_commit_inputs(con, repo, shas[start:start + BATCH]))
        save_annotations(con, repo, run_id, labeled)
        total += counts
    if shas:
        progress(repo, "labeling", len(shas), len(shas))
    return total
