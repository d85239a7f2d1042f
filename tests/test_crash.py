"""kill -9 in the middle of mining and of annotation: the next run completes, and the
warehouse then equals a clean run's (same rows, nothing doubled, no label lost or paid twice)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flows.interrupts import STOPPED
from tests.conftest import as_from_a_shell, clean_env, snapshot
from tests.llm_server import FakeLLM, Reply, default_script

WORKER = """defmodule Worker{n} do
  use GenServer

  def bump(key) do
    case :ets.lookup(:t{n}, key) do
      [{{^key, v}}] -> :ets.insert(:t{n}, {{key, v + {i}}})
      [] -> :ets.insert(:t{n}, {{key, {i}}})
    end
  end

  def handle_call(:get, _from, state), do: {{:reply, state + {i}, state}}
end
"""


def build_history(path: Path, commits: int) -> None:
    """A repository of `commits` commits, every other one a race fix, made by fast-import."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    stream = []
    for i in range(commits):
        message = (f"Fix race condition in Worker{i % 40}.bump ({i})" if i % 2
                   else f"Tune worker {i}").encode()
        body = WORKER.format(n=i % 40, i=i).encode()
        stream += [b"commit refs/heads/main",
                   f"committer Ada <ada@example.org> {1_700_000_000 + i} +0000".encode(),
                   f"data {len(message)}".encode(), message,
                   f"M 100644 inline lib/worker{i % 40}.ex".encode(),
                   f"data {len(body)}".encode(), body, b""]
    subprocess.run(["git", "fast-import", "--quiet"], input=b"\n".join(stream), cwd=path,
                   check=True)


MINE = """
from miners.classify import load_pattern_set
from tests.conftest import mine_local
mine_local({repo!r}, {warehouse!r}, load_pattern_set(), name="github.com/acme/big")
"""


def _mine(repo: Path, warehouse: Path) -> subprocess.Popen[bytes]:
    code = MINE.format(repo=str(repo), warehouse=str(warehouse))
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                            preexec_fn=as_from_a_shell)  # Ctrl-C's own disposition


def _wait_for(condition, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the point to kill it"
        time.sleep(0.02)


BIG = 1_600  # commits, every other one a race fix


@pytest.fixture(scope="module")
def big_mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1,600-commit repository and its warehouse from a clean run."""
    root = tmp_path_factory.mktemp("big")
    repo = root / "big"
    build_history(repo, BIG)
    clean = root / "clean.duckdb"
    assert _mine(repo, clean).wait(timeout=600) == 0
    return repo, clean


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["kill -9", "SIGTERM", "SIGINT"])
def test_kill_during_mining_then_resume(big_mined: tuple[Path, Path], tmp_path: Path,
                                        stop: signal.Signals) -> None:
    """A mine stopped after it has stored some batches (kill -9, or asked to stop as
    `timeout`, systemd, Docker and Ctrl-C ask) ends within 5 s and resumes to a clean
    run's warehouse."""
    repo, clean = big_mined
    crashed = tmp_path / "crashed.duckdb"
    proc = _mine(repo, crashed)
    wal = crashed.with_name(crashed.name + ".wal")
    # The first batches are committed to the write-ahead log; stop while more are coming.
    _wait_for(lambda: wal.exists() and wal.stat().st_size > 400_000, 300, proc)
    started = _descendants(proc.pid)  # git, the parse workers and the server that forks them
    assert started
    proc.send_signal(stop)
    assert proc.wait(timeout=5) != 0
    # None of the processes it started outlives it.
    deadline = time.monotonic() + 30
    while left := [pid for pid in started if _alive(pid)]:
        assert time.monotonic() < deadline, f"processes outlived the killed run: {left}"
        time.sleep(0.1)
    partial = snapshot(crashed)
    assert 0 < len(partial["commits"]) < len(snapshot(clean)["commits"])
    assert _mine(repo, crashed).wait(timeout=600) == 0
    assert snapshot(crashed) == snapshot(clean)


def _descendants(pid: int) -> list[int]:
    """The processes pid started, and theirs, as Linux lists them now."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended while we looked
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, ended and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


ANNOTATE = """
from annotators.limits import Price
from annotators.llm import LLMConfig
from flows.jobs.annotate import annotate_with_llm
config = LLMConfig(model="test-model", base_url={url!r}, api_key="sk-test",
                   price=Price(1.0, 2.0), concurrency=4, timeout_s=30)
annotate_with_llm({warehouse!r}, config, {run!r})
"""


def _annotate(url: str, warehouse: Path, run: str) -> subprocess.Popen[bytes]:
    code = ANNOTATE.format(url=url, warehouse=str(warehouse), run=run)
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                            preexec_fn=as_from_a_shell)  # Ctrl-C's own disposition


def _sha_of(request: dict) -> str:
    found = re.search(r"\b[0-9a-f]{40}\b", request["messages"][-1]["content"])
    assert found
    return found.group(0)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM],
                         ids=["kill -9", "SIGTERM"])
def test_kill_during_annotation_then_resume(tmp_path: Path, stop: signal.Signals) -> None:
    """An annotation killed (or asked to stop) mid-run ends within 5 s and resumes: every
    commit labeled once, and no commit whose label was stored is ever sent to the model
    again."""
    repo = tmp_path / "big"
    build_history(repo, 240)
    warehouse = tmp_path / "w.duckdb"
    assert _mine(repo, warehouse).wait(timeout=600) == 0

    def slow(request: dict, call: int) -> Reply:
        reply = default_script(request, call)
        reply.delay = 0.1
        return reply

    wal = warehouse.with_name(warehouse.name + ".wal")
    with FakeLLM(slow) as llm:
        proc = _annotate(llm.base_url, warehouse, "first")
        # Killed once labels are committed (their rows are in the WAL), whatever the pace of
        # the first commit (it can wait on a slow import) relative to the requests.
        _wait_for(lambda: len(llm.requests) >= 60 and wal.exists()
                  and wal.stat().st_size > 20_000, 300, proc)
        proc.send_signal(stop)
        assert proc.wait(timeout=5) == -stop
        con = duckdb.connect(str(warehouse), read_only=True)
        stored = {r[0] for r in con.execute(
            "SELECT sha FROM annotations WHERE annotator LIKE 'llm/%'").fetchall()}
        con.close()
        assert 0 < len(stored) < 120
        before = len(llm.requests)
        assert _annotate(llm.base_url, warehouse, "second").wait(timeout=600) == 0
        resent = {_sha_of(r) for r in llm.requests[before:]} & stored
    assert not resent
    con = duckdb.connect(str(warehouse), read_only=True)
    commits, labels, distinct = con.execute(
        """SELECT (SELECT count(*) FROM commits),
                  count(*), count(DISTINCT sha) FROM annotations
           WHERE annotator LIKE 'llm/%' AND status = 'ok'""").fetchone()
    con.close()
    assert labels == distinct == commits == 120


SZZ = """
import sys
from pathlib import Path
from flows.jobs.szz import trace_origins
from flows.settings import Settings

def progress(key, stage, done, total):
    print(done, flush=True)

trace_origins(Settings(warehouse=Path({warehouse!r}), cache_dir=Path({cache!r})),
              progress=progress)
"""


def _szz(warehouse: Path, cache: Path) -> subprocess.Popen[str]:
    code = SZZ.format(warehouse=str(warehouse), cache=str(cache))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def _origins(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT sha, candidate, rank, confidence, blamed FROM szz_candidates "
                           "ORDER BY sha, rank").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def szz_whole(big_mined: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> list[tuple]:
    """The candidates of an uninterrupted szz run over the big warehouse."""
    root = tmp_path_factory.mktemp("szz")
    whole = root / "whole.duckdb"
    whole.write_bytes(big_mined[1].read_bytes())
    assert _szz(whole, root / "cache").wait(timeout=600) == 0
    return _origins(whole)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_kill_during_szz_then_resume(big_mined: tuple[Path, Path], szz_whole: list[tuple],
                                     tmp_path: Path, stop: signal.Signals) -> None:
    """Stopped after some batches of traces were saved (kill -9, or SIGTERM as `timeout`
    and systemd ask): it ends within 5 s, the next run traces only the rest, and the
    candidates equal an uninterrupted run's."""
    _, clean = big_mined
    crashed = tmp_path / "crashed.duckdb"
    crashed.write_bytes(clean.read_bytes())
    proc = _szz(crashed, tmp_path / "cache")
    assert proc.stdout is not None
    while int(proc.stdout.readline() or -1) < 200:  # two batches saved
        assert proc.poll() is None, "szz finished before it could be killed"
    proc.send_signal(stop)
    assert proc.wait(timeout=5) != 0
    partial = len(_origins(crashed))
    assert 0 < partial < len(szz_whole)
    rerun = _szz(crashed, tmp_path / "cache")
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0
    assert int(out.split()[0]) == 0 and int(out.split()[-1]) < BIG // 2  # only the rest
    assert _origins(crashed) == szz_whole


def _export(warehouse: Path, out: Path, home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flows", "export", str(out), "--format",
                             "jsonl", "--format", "hf", "--format", "dspy", "--level",
                             "function", "--include-unknown-license", "-w", str(warehouse)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=clean_env(home), cwd=home)


def test_stopped_export_keeps_the_previous_one(big_mined: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    """SIGTERM while an export writes: it ends within 5 s, the folder still holds the
    previous export whole, and the next export equals an uninterrupted one."""
    _, clean = big_mined
    out, again = tmp_path / "out", tmp_path / "again"
    assert _export(clean, out, tmp_path).wait(timeout=600) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = _export(clean, out, tmp_path)
    staging = out.with_name(".out.partial")
    _wait_for(lambda: staging.exists() and any(staging.rglob("*.parquet")), 300, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) != 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _export(clean, out, tmp_path).wait(timeout=600) == 0
    assert _export(clean, again, tmp_path).wait(timeout=600) == 0
    assert not staging.exists()
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == {
        p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}


def test_ctrl_c_stops_a_mine_with_one_sentence_and_the_next_run_resumes(
        big_mined: tuple[Path, Path], tmp_path: Path) -> None:
    """Ctrl-C, which a terminal sends to every process of the command (the mine, its fork
    server and parse workers), ends `racemine mine` within 5 s with status 130 and one
    sentence, no worker's traceback; the next run resumes to a clean run's rows."""
    repo, clean = big_mined
    crashed = tmp_path / "crashed.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows", "mine", f"{repo}=acme/big", "-w", str(crashed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env(tmp_path),
        cwd=tmp_path, start_new_session=True,  # a process group of its own, as in a shell
        preexec_fn=as_from_a_shell)
    wal = crashed.with_name(crashed.name + ".wal")
    _wait_for(lambda: wal.exists() and wal.stat().st_size > 400_000, 300, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=5)
    assert proc.returncode == 130
    assert err.strip() == STOPPED
    assert 0 < len(snapshot(crashed)["commits"]) < len(snapshot(clean)["commits"])
    resumed = subprocess.run(
        [sys.executable, "-m", "flows", "mine", f"{repo}=acme/big", "-w", str(crashed)],
        capture_output=True, env=clean_env(tmp_path), cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0
    assert snapshot(crashed)["commits"] == snapshot(clean)["commits"]


STOPPED_IN_A_QUERY = """
import os, signal, time
from flows.interrupts import stopping_on_interrupt
with stopping_on_interrupt():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:  # what DuckDB raises in its place when a query notices it
        raise RuntimeError("Query interrupted") from None
"""

FAILED_ON_ITS_OWN = """
from flows.interrupts import stopping_on_interrupt
with stopping_on_interrupt():
    raise RuntimeError("Query failed")
"""


def test_an_interrupt_that_surfaces_as_another_error_is_a_stop_not_a_traceback(
        tmp_path: Path) -> None:
    """DuckDB turns a SIGINT it notices during a query into an error of its own (a
    RuntimeError, "Query interrupted"); the command still stops with the sentence and
    status 130. The same error with no Ctrl-C is a failure, shown as one."""
    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=clean_env(tmp_path), cwd=Path.cwd(), timeout=60,
                              preexec_fn=as_from_a_shell)

    stopped = run(STOPPED_IN_A_QUERY)
    assert (stopped.returncode, stopped.stderr.strip()) == (130, STOPPED)
    failed = run(FAILED_ON_ITS_OWN)
    assert failed.returncode == 1
    assert "RuntimeError: Query failed" in failed.stderr and STOPPED not in failed.stderr
