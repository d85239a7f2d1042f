"""SZZ's git edge: blame a fix's before-lines in racemine's own clone, through PyDriller.

PyDriller opens the repository (and sets `blame.markUnblamableLines` in its config, which
is why it only ever sees a clone racemine owns: a remote's cache mirror, or a
`git clone --bare --shared` of a local repository in the cache). Its GitPython repository
runs `git blame --incremental -w -M` on the chosen line ranges of the fix's parent; a
blamed commit whose change to the file left the code's tokens as they were (a reformat) is
passed to `--ignore-rev` and the lines blamed again, so blame looks through it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from pathlib import Path

from miners.errors import GitCommandError as RacemineGitError
from miners.git import run_git
from miners.szz import (
    BlamedLine,
    BlameTarget,
    FixInput,
    Trace,
    only_reformats,
    plan_blame,
    rank_candidates,
)

_ROUNDS = 3  # blames of one file at most: each may find reformatting commits to look through
_MAX_TEXT = 2_000_000  # a file bigger than this is never tokenized (not a reformat)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def owned_clone(source: str, cache_root: Path, name: str) -> str:
    """A bare clone of a local repository in racemine's cache, sharing its objects
    (`git clone --bare --shared`): made once, it sees every commit the source gains, and
    nothing racemine or PyDriller does ever writes to the source."""
    digest = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:10]
    target = cache_root / "szz" / f"{_SAFE_NAME.sub('_', name)[-80:]}-{digest}.git"
    if (target / "HEAD").exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    run_git(None, ["clone", "--bare", "--shared", "--quiet", "--", str(Path(source).resolve()),
                   str(partial)], what=name)
    try:
        partial.rename(target)  # a clone killed halfway is never used
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not (target / "HEAD").exists():  # not another process's clone, finished first
            raise
    return str(target)


class Blamer:
    """Traces fixes in one repository; safe to share between threads."""

    def __init__(self, git_dir: str) -> None:
        from pydriller import Git

        self._git_dir = git_dir
        self._repo = Git(git_dir).repo  # GitPython's Repo, through PyDriller
        self._reformats: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()
        # GitPython reads objects through one persistent `git cat-file` per Repo, which
        # threads cannot share: each thread reads through a Repo of its own.
        self._local = threading.local()

    def trace(self, fix: FixInput) -> Trace:
        """The fix's ranked candidates, or why it has none. A file git cannot blame (a path
        missing from the parent) is left out; a fix whose every file fails raises."""
        plan = plan_blame(fix)
        if plan.reason is not None:
            return Trace(reason=plan.reason)
        assert fix.parent is not None
        blamed: list[BlamedLine] = []
        ignored: list[str] = []
        errors: list[str] = []
        for target in plan.targets:
            try:
                lines, skipped = self._blame_looking_through(fix.parent, target)
            except RacemineGitError as exc:
                errors.append(str(exc))
                continue
            blamed += lines
            ignored += skipped
        if errors and len(errors) == len(plan.targets):
            raise RacemineGitError(errors[0])
        trace = Trace(rank_candidates(fix, blamed), ignored=tuple(dict.fromkeys(ignored)),
                      lines_blamed=len(blamed))
        if not trace.candidates:
            trace.reason = ("every blamed line was last written by a reformatting commit "
                            "that git cannot look past")
        return trace

    def _blame_looking_through(self, rev: str, target: BlameTarget
                               ) -> tuple[list[BlamedLine], list[str]]:
        ignore: list[str] = []
        lines: list[BlamedLine] = []
        for _ in range(_ROUNDS):
            lines = self.blame(rev, target, ignore)
            seen = {(b.commit, b.orig_path) for b in lines if b.commit not in ignore}
            found = sorted({sha for sha, path in seen
                            if self.reformats(sha, path, target.language)})
            if not found:
                break
            ignore += found
        # A line git could not pass on past an ignored commit stays blamed on it: unblamable.
        return [b for b in lines if b.commit not in ignore], ignore

    def blame(self, rev: str, target: BlameTarget, ignore: list[str] = ()
              ) -> list[BlamedLine]:
        """`git blame --incremental -w -M` of the target's line ranges at rev."""
        args = ["--incremental", "-w", "-M",
                *(f"-L{start},{end}" for start, end in target.ranges()),
                *(f"--ignore-rev={sha}" for sha in ignore), rev, "--", target.path]
        from git.exc import GitCommandError

        try:
            out = self._repo.git.blame(*args, stdout_as_string=False)
        except GitCommandError as exc:
            raise RacemineGitError(
                f"git blame of {target.path} at {rev[:12]} failed "
                f"({str(exc.stderr or exc).strip()[:200]})") from exc
        return list(_parse_incremental(out.decode("utf-8", errors="replace"), target))

    def reformats(self, sha: str, path: str, language: str) -> bool:
        """Whether commit sha's change to path kept every code token (a reformat)."""
        key = (sha, path)
        with self._lock:
            if key in self._reformats:
                return self._reformats[key]
        verdict = only_reformats(self._text(f"{sha}^", path), self._text(sha, path),
                                 language)
        with self._lock:
            self._reformats[key] = verdict
        return verdict

    def _text(self, rev: str, path: str) -> bytes | None:
        repo = getattr(self._local, "repo", None)
        if repo is None:
            from git import Repo

            # Held, not only its .git: a Repo that is collected stops its cat-file process.
            repo = self._local.repo = Repo(self._git_dir)
        git = repo.git
        try:  # one round trip to the persistent `git cat-file --batch`
            _, kind, size, data = git.get_object_data(f"{rev}:{path}")
        except ValueError:  # "could not be resolved": a root commit's parent, a path not there
            return None
        return data if kind == b"blob" and size <= _MAX_TEXT else None


def _parse_incremental(out: str, target: BlameTarget):
    """BlamedLines from `git blame --incremental`: a header `<sha> <orig> <final> <n>`, the
    commit's details the first time it appears, then `filename <path>`."""
    details: dict[str, tuple[int, str]] = {}
    lines = iter(out.split("\n"))
    for header in lines:
        parts = header.split(" ")
        if len(parts) != 4:
            continue
        sha, orig, final, count = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
        props: dict[str, str] = {}
        for line in lines:
            tag, _, value = line.partition(" ")
            if tag == "filename":
                break
            props[tag] = value
        if sha not in details:
            details[sha] = (int(props.get("author-time", "0")), props.get("summary", ""))
        author_time, summary = details[sha]
        for offset in range(count):
            evidence, function = target.lines.get(final + offset, (None, None))
            if evidence is None:
                continue  # not a line we asked for (the ranges hold only chosen lines)
            yield BlamedLine(path=target.path, line=final + offset, evidence=evidence,
                             function=function, commit=sha, author_time=author_time,
                             summary=summary, orig_path=value, orig_line=orig + offset)
