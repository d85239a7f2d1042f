"""Tracked runs on one real Prefect server (tests/prefect_server.py): the same jobs as flow
runs, equal to direct runs; failures that look like failures; a served cron that fires."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tests.conftest import TABLES, RepoBuilder, clean_env, run_cli, run_rows, snapshot
from tests.prefect_server import PrefectServer


def _wait(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _repos(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT repo, url, last_mined_sha, mined_tips, license FROM repos "
                           "ORDER BY repo").fetchall()
    finally:
        con.close()


def _second_repo(root: Path) -> RepoBuilder:
    repo = RepoBuilder(root)
    repo.commit("Initial", {"src/cache.erl": "-module(cache).\n-export([get/1]).\n\n"
                            "get(K) -> ets:lookup(cache, K).\n"})
    repo.commit("Fix race between get and put in the cache",
                {"src/cache.erl": "-module(cache).\n-export([get/1]).\n\n"
                                  "get(K) -> gen_server:call(cache, {get, K}).\n"})
    return repo


def test_tracked_mine_equals_direct(history: tuple[RepoBuilder, dict[str, str]],
                                   tmp_path: Path, prefect_server: PrefectServer) -> None:
    """Two repositories mined directly and as a tracked flow run give equal warehouses; the
    tracked run, its tasks and its state are on the server."""
    repo, _ = history
    other = _second_repo(tmp_path / "other")
    args = ["mine", f"{repo.path}=acme/project", f"{other.path}=acme/cache"]
    direct, tracked = tmp_path / "direct.duckdb", tmp_path / "tracked.duckdb"
    out = run_cli(*args, "--warehouse", str(direct), home=tmp_path)
    assert out.returncode == 0, out.stderr
    before = len(prefect_server.flow_runs("mine", tracked))
    out = run_cli(*args, "--warehouse", str(tracked), home=tmp_path,
                  extra=prefect_server.env())
    assert out.returncode == 0, out.stderr
    assert "github.com/acme/cache" in out.stdout and "(completed)" in out.stdout
    for noise in ("Traceback", "never awaited", "Starting temporary server", "prefect"):
        assert noise not in out.stdout + out.stderr, out.stderr
    assert snapshot(direct) == snapshot(tracked) and all(snapshot(direct)[t] for t in TABLES)
    assert _repos(direct) == _repos(tracked)
    assert run_rows(direct) == run_rows(tracked) == [("mine", "completed")]
    runs = prefect_server.flow_runs("mine", tracked)
    assert len(runs) == before + 1 and runs[0]["state_type"] == "COMPLETED"
    listed = subprocess.run([sys.executable, "-m", "prefect", "flow-run", "ls", "--flow-name",
                             "mine", "--limit", "100"],
                            capture_output=True, text=True, timeout=120,
                            env=clean_env(tmp_path, **prefect_server.env()))
    assert runs[0]["name"] in listed.stdout, listed.stderr


def test_tracked_failures_look_like_failures(history: tuple[RepoBuilder, dict[str, str]],
                                            tmp_path: Path,
                                            prefect_server: PrefectServer) -> None:
    """A tracked mine whose only repository failed ends Failed in Prefect and in runs; one
    with a failed and a good repository is partially failed; the CLI exits 1 for both."""
    repo, _ = history
    broken = tmp_path / "not-a-repo"
    broken.mkdir()
    warehouse = tmp_path / "w.duckdb"
    failed = run_cli("mine", str(broken), "--warehouse", str(warehouse), home=tmp_path,
                     extra=prefect_server.env())
    assert failed.returncode == 1 and "not a git repository" in failed.stdout
    assert prefect_server.flow_runs("mine", warehouse)[0]["state_type"] == "FAILED"
    partial = run_cli("mine", str(broken), str(repo.path), "--warehouse", str(warehouse),
                      home=tmp_path, extra=prefect_server.env())
    assert partial.returncode == 1 and "(partially failed)" in partial.stdout
    newest = prefect_server.flow_runs("mine", warehouse)[0]
    assert (newest["state_type"], newest["state_name"]) == ("FAILED", "Partially failed")
    assert run_rows(warehouse) == [("mine", "failed"), ("mine", "partially_failed")]


def test_served_cron_schedule_fires(history: tuple[RepoBuilder, dict[str, str]],
                                    tmp_path: Path, prefect_server: PrefectServer) -> None:
    """racemine serve registers the schedule, and the server starts a scheduled run by
    itself that fills the warehouse."""
    repo, _ = history
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "exports"
    # Once a minute, at a second about 12 s from now (Prefect's cron takes a sixth field for
    # seconds): the test waits for one firing, not for the next minute to begin.
    second = (datetime.now(UTC).second + 12) % 60
    served = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--cron", f"* * * * * {second}", "--name",
         "every-minute", "--skip", "discover", "--skip", "annotate", "--repo", str(repo.path),
         "--export-dir", str(out), "--warehouse", str(warehouse)],
        env=clean_env(tmp_path, **prefect_server.env()), cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ran() -> bool:
            assert served.poll() is None, "racemine serve stopped"
            runs = prefect_server.flow_runs("pipeline", warehouse)
            assert not any(r["state_type"] in ("FAILED", "CRASHED") for r in runs), runs
            return any(r["state_type"] == "COMPLETED" for r in runs)

        _wait(ran, 240, "a scheduled run of the served deployment")
    finally:
        served.terminate()
        try:
            served.wait(timeout=20)
        except subprocess.TimeoutExpired:
            served.kill()
    assert {("mine", "completed"), ("szz", "completed")} <= set(run_rows(warehouse))
    assert (out / "function" / "data" / "train-00000-of-00001.parquet").exists()


def test_dask_runner_gives_the_same_warehouse(history: tuple[RepoBuilder, dict[str, str]],
                                              tmp_path: Path,
                                              prefect_server: PrefectServer) -> None:
    """Mining on a local Dask cluster (shards + loader) equals the direct run; without a
    Prefect server, --dask says what it needs."""
    repo, _ = history
    direct, dask = tmp_path / "direct.duckdb", tmp_path / "dask.duckdb"
    out = run_cli("mine", str(repo.path), "--warehouse", str(direct), home=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run_cli("mine", str(repo.path), "--warehouse", str(dask), "--dask", home=tmp_path,
                  extra={"RACEMINE_CONCURRENCY": "2", **prefect_server.env()})
    assert out.returncode == 0, out.stderr
    assert snapshot(direct) == snapshot(dask) and _repos(direct) == _repos(dask)
    assert not any((tmp_path / "dask.shards").iterdir())
    refused = run_cli("mine", str(repo.path), "--warehouse", str(dask), "--dask",
                      home=tmp_path)
    assert refused.returncode == 2 and "PREFECT_API_URL" in refused.stderr
