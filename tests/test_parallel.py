"""Parse workers: real worker processes beside a real subprocess pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from miners.parallel import FunctionParser
from miners.records import ChangeType, CommitFiles, CommitMeta, FilePair
from tests.conftest import as_from_a_shell

_BEFORE = "defmodule A do\n  def a(x), do: x + 1\nend\n"
_AFTER = "defmodule A do\n  def a(x), do: x + 2\nend\n"


def _commit(n: int) -> CommitFiles:
    meta = CommitMeta(sha=f"{n:040x}", parents=("0" * 40,), author_name="a",
                      author_date="2024-01-01T00:00:00+00:00",
                      committer_date="2024-01-01T00:00:00+00:00", message="Fix race")
    diff = ("--- a/lib/a.ex\n+++ b/lib/a.ex\n@@ -2 +2 @@\n-  def a(x), do: x + 1\n"
            "+  def a(x), do: x + 2\n")
    pair = FilePair(path="lib/a.ex", old_path=None, change_type=ChangeType.MODIFIED,
                    language="elixir", is_test=False, before=_BEFORE, after=_AFTER, diff=diff,
                    lines_added=1, lines_removed=1)
    return CommitFiles(meta, (pair,))


def test_workers_hold_no_pipe_another_thread_feeds() -> None:
    """Workers started while the mining process feeds a git command through a pipe (another
    repository's `git patch-id`) hold no copy of it: the command sees the end of its input.
    (Forked workers held one, and the run waited forever.)"""
    feeder = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        with FunctionParser(workers=2) as parser:
            batch = parser.batch(20)  # enough commits to start the workers
            for n in range(3):
                batch.add(_commit(n))
            parsed = [cf for cf, _ in batch.results()]
            assert [f.functions[0].name for cf in parsed for f in cf.files] == ["a/1"] * 3
            out, _ = feeder.communicate(b"patches\n", timeout=10)  # its input ends here
            assert out == b"patches\n" and feeder.returncode == 0
    finally:
        feeder.kill()
        feeder.wait()


DEFERRED = """
import os, signal, time
from miners.parallel import _interrupts_deferred
try:
    with _interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # a KeyboardInterrupt here would leave a worker half-started
        print("block finished")
except KeyboardInterrupt:
    print("interrupted after")
"""


def test_a_ctrl_c_during_a_submit_is_raised_once_the_submit_is_done() -> None:
    """Starting a worker is not cut in two by Ctrl-C: the interrupt waits for the block."""
    done = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=60,
                          preexec_fn=as_from_a_shell)
    assert done.stdout.split("\n")[:2] == ["block finished", "interrupted after"], done.stderr


FORK_SERVER_START = """
import os, signal, time
import multiprocessing.forkserver as forkserver
from miners.parallel import _context

started = forkserver.ensure_running

def start_while_interrupted():
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands while the server starts
    time.sleep(0.2)
    started()

forkserver.ensure_running = start_while_interrupted
try:
    _context(None)
    time.sleep(0.5)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_ctrl_c_while_the_fork_server_starts_is_not_lost() -> None:
    """A Ctrl-C that reaches the mine while its parse workers' server starts stops the run
    once the server is up; before, it was ignored and the run went on to the end."""
    done = subprocess.run([sys.executable, "-c", FORK_SERVER_START], capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent, timeout=60,
                          preexec_fn=as_from_a_shell)
    assert done.stdout.split("\n")[0] == "interrupted", done.stderr
