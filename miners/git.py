"""The git edge: every git process racemine starts goes through this module.

Reads are plain `git` subprocesses, streamed where the output is large; blobs come many
at a time from persistent `cat-file` processes. Nothing here writes to a local repository:
only mirrors in racemine's own cache are cloned or fetched.
"""

from __future__ import annotations

import base64
import codecs
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO

from miners.errors import GitCommandError, RemoteUnreachableError, RepoNotFoundError
from miners.records import CommitMeta, RepoRef
from miners.sources import (
    RemoteSpec,
    cache_dir_for,
    canonical_name_from_url,
)

# Transports git may use for anything racemine starts; ext:: and fd:: run commands.
_SAFE_CONFIG = ("-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
                "-c", "protocol.ssh.allow=always", "-c", "protocol.file.allow=user",
                "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
_NOT_FOUND = re.compile(r"not found|does not exist|could not read Username|"
                        r"Authentication failed|does not appear to be a git repository", re.I)
# What git (through curl or ssh) says when the host cannot be reached at all: no name
# resolution, nothing listening, no route. Not transient the way a 5xx or a timeout is.
_UNREACHABLE = ("could not resolve host", "could not resolve hostname",
                "name or service not known", "temporary failure in name resolution",
                "connection refused", "network is unreachable", "no route to host",
                "couldn't connect to server", "failed to connect to")
_FIELD, _RECORD = "\x1f", "\x1e"
_LOG_FORMAT = "--format=%x1e%H%x1f%P%x1f%an%x1f%aI%x1f%cI%x1f%B"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
                "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"})
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    if extra:
        env.update(extra)
    return env


def run_git(git_dir: str | None, args: Sequence[str], *, input_text: str | None = None,
            env: dict[str, str] | None = None, what: str = "", idle: bool = False) -> str:
    """Run one git command to completion and return stdout; failures name the repository.

    Idle, git runs at the lowest CPU priority: it takes only what other work leaves.
    """
    cmd = ["git", *_SAFE_CONFIG]
    if git_dir is not None:
        cmd += ["-C", git_dir]
    with subprocess.Popen([*cmd, *args], stdin=None if input_text is None else subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          encoding="utf-8", errors="replace", env=_env(env)) as proc:
        if idle and hasattr(os, "setpriority"):
            with suppress(OSError):  # it may have finished already
                os.setpriority(os.PRIO_PROCESS, proc.pid, 19)
        out, err = proc.communicate(input_text)
    if proc.returncode != 0:
        raise _failure(what or git_dir, args[0], err)
    return out


_DAMAGE = re.compile(r"corrupt|unable to read|bad object|invalid object|missing (blob|tree|"
                     r"commit)|inflate|loose object|packfile|pack checksum|did not receive", re.I)


def _failure(where: str, command: str, stderr: str) -> GitCommandError:
    """One sentence for a failed git command: its last message, and what to do about it."""
    last = (stderr.strip().splitlines() or ["(no message)"])[-1]
    hint = ("; the repository is damaged: run `git fsck` on it, or delete racemine's mirror "
            "to clone it anew" if _DAMAGE.search(stderr) else "")
    return GitCommandError(f"{where}: git {command} failed: {last}{hint}")


def _token_env(remote: RemoteSpec, token: str | None) -> dict[str, str]:
    # Passed through git's environment config, so the token is never on a command line,
    # in the mirror's config file, or in an error message.
    if not token or remote.host != "github.com":
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.https://github.com/.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}"}


def fetch_mirror(remote: RemoteSpec, cache_root: Path, token: str | None = None) -> RepoRef:
    """Clone a remote repository as a bare mirror in the cache, or fetch it if present."""
    target = cache_dir_for(remote, cache_root)
    env = _token_env(remote, token)
    refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    try:
        if (target / "HEAD").exists():
            run_git(str(target), ["fetch", "--quiet", "--prune", "--no-write-fetch-head", "--",
                                  remote.url, *refspecs], env=env, what=remote.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
            run_git(None, ["clone", "--bare", "--quiet", "--", remote.url, str(partial)],
                    env=env, what=f"repository {remote.name}")
            os.replace(partial, target)  # a killed clone never looks like a finished mirror
    except GitCommandError as exc:
        reason = next((r for r in _UNREACHABLE if r in str(exc).lower()), None)
        if reason:
            raise RemoteUnreachableError(
                f"repository {remote.name}: cannot reach {remote.url}, git says {reason}; "
                "check the network connection and the URL") from exc
        if _NOT_FOUND.search(str(exc)):
            raise RepoNotFoundError(
                f"repository {remote.name}: not found at {remote.url}; check the name, or "
                "set RACEMINE_GITHUB_TOKEN if it is private") from exc
        raise
    return RepoRef(name=remote.name, url=remote.url, git_dir=str(target), is_local=False)


def open_local(path: str, name: str | None = None) -> RepoRef:
    """Describe a local work tree or bare git dir without writing anything to it."""
    folder = Path(path).expanduser().resolve()
    try:
        run_git(str(folder), ["rev-parse", "--git-dir"], what=str(folder))
    except GitCommandError as exc:
        raise RepoNotFoundError(
            f"repository {path!r}: not a git repository; pass a clone URL, a work tree or a "
            "bare git dir"
        ) from exc
    if name is None:
        try:
            origin = run_git(str(folder), ["config", "--get", "remote.origin.url"]).strip()
        except GitCommandError:
            origin = ""
        stem = folder.name.removesuffix(".git")
        name = canonical_name_from_url(origin) if origin else None
        name = name or f"local/{stem}"
    return RepoRef(name=name, url=None, git_dir=str(folder), is_local=True)


def fetch_head(git_dir: str) -> str | None:
    """The sha HEAD points at, or None for an empty repository (a damaged one raises)."""
    try:
        head = run_git(git_dir, ["rev-parse", "--verify", "--quiet", "HEAD"]).strip()
    except GitCommandError:
        return None  # an unborn branch: nothing committed yet
    # Reading the commit itself tells a damaged repository from an empty one.
    run_git(git_dir, ["cat-file", "commit", head], what=git_dir)
    return head


def fetch_branch_tips(git_dir: str) -> list[str]:
    """Shas of every local branch tip (for a bare mirror: every remote branch)."""
    out = run_git(git_dir, ["for-each-ref", "--format=%(objectname)", "refs/heads/"])
    return sorted(set(out.split()))


def fetch_existing(git_dir: str, shas: Sequence[str]) -> list[str]:
    """The subset of shas that are commits in this repository (history may be rewritten)."""
    if not shas:
        return []
    out = run_git(git_dir, ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                  input_text="\n".join(shas) + "\n")
    return [line.split()[0] for line in out.splitlines() if line.endswith(" commit")]


def iter_git_output(git_dir: str, args: Sequence[str], stdin_text: str = "", *,
                    eager: bool = False) -> Iterator[bytes]:
    """Stream a git command's stdout in chunks of up to 1 MB; a failure raises once the
    output is read. Eager, a chunk is whatever git has written so far, so a slow command's
    first lines arrive at once (for output made of small records)."""
    proc = subprocess.Popen(["git", *_SAFE_CONFIG, "-C", git_dir, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    assert proc.stdin and proc.stdout and proc.stderr
    # git reads all of stdin before it prints anything, so this write cannot deadlock.
    proc.stdin.write(stdin_text.encode())
    proc.stdin.close()
    finished = False
    try:
        read = proc.stdout.read1 if eager else proc.stdout.read
        while chunk := read(1 << 20):
            yield chunk
        finished = True
    finally:
        if not finished:  # the consumer stopped early or failed: do not wait for git
            proc.kill()
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", errors="replace")
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise _failure(git_dir, args[0], err)


# Ids per round trip: 60 lines of up to 65 bytes (a SHA-256 id) fit in the one page a pipe
# always holds, so writing a round's ids never waits for git to drain its answers.
_ROUND = 60


class BlobReader:
    """Sizes and contents of many blobs per round trip, from two persistent `git cat-file`
    processes: `--batch-check` sizes every blob asked for, `--batch` reads only those
    within the size cap, so a 50 MB file is sized and never loaded.

    Asking for many ids at once keeps git and Python working at the same time; one
    request per blob would wait on a pipe twice per blob.
    """

    def __init__(self, git_dir: str) -> None:
        self._git_dir = git_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def read(self, blobs: Iterable[str], max_bytes: int) -> dict[str, bytes | None]:
        """Each blob's bytes by id, None for one larger than max_bytes; a blob missing or
        unreadable raises GitCommandError."""
        wanted = list(dict.fromkeys(blobs))
        sizes: dict[str, int] = {}
        for start in range(0, len(wanted), _ROUND):
            ids = wanted[start:start + _ROUND]
            out = self._ask("--batch-check", ids)
            for blob in ids:
                sizes[blob] = self._header("--batch-check", out, blob)
        small = [blob for blob in wanted if sizes[blob] <= max_bytes]
        found: dict[str, bytes | None] = dict.fromkeys(wanted)
        for start in range(0, len(small), _ROUND):
            ids = small[start:start + _ROUND]
            out = self._ask("--batch", ids)
            for blob in ids:
                size = self._header("--batch", out, blob)
                data = out.read(size + 1)  # the contents and git's closing newline
                if len(data) != size + 1:
                    raise _failure(self._git_dir, "cat-file", self._drop("--batch"))
                found[blob] = data[:size]
        return found

    def _ask(self, mode: str, ids: list[str]) -> IO[bytes]:
        proc = self._procs.get(mode)
        if proc is None:
            proc = self._procs[mode] = subprocess.Popen(
                ["git", *_SAFE_CONFIG, "-C", self._git_dir, "cat-file", mode],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=_env())
        assert proc.stdin and proc.stdout
        try:
            proc.stdin.write("".join(f"{blob}\n" for blob in ids).encode("ascii"))
            proc.stdin.flush()
        except BrokenPipeError:
            raise _failure(self._git_dir, "cat-file", self._drop(mode)) from None
        return proc.stdout

    def _header(self, mode: str, out: IO[bytes], blob: str) -> int:
        """The size from git's answer line for blob (`<id> <type> <size>`)."""
        line = out.readline().split()
        if len(line) != 3 or line[0].decode("ascii", "replace") != blob:
            err = self._drop(mode)  # its unread answers would confuse the next request
            # git answers `<id> missing` for an object it does not have; said so, the
            # failure carries the damaged-repository hint.
            raise _failure(self._git_dir, "cat-file", f"missing blob {blob}" if line else err)
        return int(line[2])

    def _drop(self, mode: str) -> str:
        """Stop mode's process; returns what it wrote to stderr."""
        proc = self._procs.pop(mode)
        proc.kill()
        _, err = proc.communicate()
        return err.decode("utf-8", errors="replace")

    def close(self) -> None:
        # Killed, not sent end of input: a process forked meanwhile (a parse worker) holds
        # a copy of git's stdin, so git would never see its end.
        for mode in list(self._procs):
            self._drop(mode)

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _revs(include: Sequence[str], exclude: Sequence[str]) -> str:
    return "".join(f"{r}\n" for r in include) + "".join(f"^{r}\n" for r in exclude)


def iter_commits(git_dir: str, include: Sequence[str], exclude: Sequence[str] = (),
                 grep: str | None = None) -> Iterator[CommitMeta]:
    """Stream commits reachable from include and not from exclude, newest first.

    With grep (a PCRE), git itself drops messages that cannot match, which is several
    times faster than reading every message into Python.
    """
    args = ["log", "--stdin", "--no-color", "--encoding=UTF-8", _LOG_FORMAT]
    if grep:
        args += ["-P", f"--grep={grep}"]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in iter_git_output(git_dir, args, _revs(include, exclude), eager=True):
        pending += decoder.decode(chunk)
        *records, pending = pending.split(_RECORD)
        for record in records:
            if record:
                yield _parse_log_record(record)
    if pending:
        yield _parse_log_record(pending)


def count_commits(git_dir: str, include: Sequence[str], exclude: Sequence[str] = ()) -> int:
    """How many commits iter_commits would visit without grep.

    A statistic that walks all of history again, so it runs idle: beside a mine, it takes
    the CPU the mine leaves, not the parse workers' share.
    """
    if not include:
        return 0
    return int(run_git(git_dir, ["rev-list", "--count", "--stdin"],
                       input_text=_revs(include, exclude), idle=True).strip() or 0)


def supports_pcre_grep(git_dir: str, regex: str) -> bool:
    """True when this git was built with PCRE and accepts regex as a -P pattern."""
    try:
        run_git(git_dir, ["log", "-n1", "-P", f"--grep={regex}", "--format=%H", "HEAD"])
    except GitCommandError:
        return False
    return True


def _parse_log_record(record: str) -> CommitMeta:
    sha, parents, author, adate, cdate, message = record.split(_FIELD, 5)
    return CommitMeta(sha=sha.strip(), parents=tuple(parents.split()), author_name=author,
                      author_date=adate, committer_date=cdate, message=message.strip("\n"))


def fetch_patch_ids(git_dir: str, patches: dict[str, str]) -> dict[str, str]:
    """`git patch-id --stable` of each commit's patch text (sha -> patch id).

    The patches are the ones extraction already holds, so no commit is diffed twice.
    """
    text = "".join(f"commit {sha}\n{patch}\n" for sha, patch in patches.items() if patch)
    if not text:
        return {}
    out = run_git(git_dir, ["patch-id", "--stable"], input_text=text)
    ids = {}
    for line in out.splitlines():
        patch_id, sha = line.split()
        ids[sha] = patch_id
    return ids
