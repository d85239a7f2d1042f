"""The pipeline flow, once from the CLI and on a real Prefect server; deployment files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from tests.conftest import RepoBuilder

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RACEMINE_"))}
    env.update({"PREFECT_HOME": str(home / "prefect"), "RACEMINE_CACHE_DIR": str(home / "c"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "200", **extra})
    return env


def _runs(warehouse: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT kind, status FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()


def test_pipeline_once_from_the_cli(history: tuple[RepoBuilder, dict[str, str]],
                                    tmp_path: Path) -> None:
    """Skipping discovery, the pipeline mines, labels and exports; a runs row per step."""
    repo, _ = history
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "exports"
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "pipeline", "--skip", "discover", "--repo",
         str(repo.path), "--export-dir", str(out), "--warehouse", str(warehouse)],
        capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert _runs(warehouse) == [("mine", "completed"), ("export", "completed")]
    assert {p.name for p in out.iterdir()} == {"file", "function"}
    for level in ("file", "function"):
        assert {p.name for p in (out / level).iterdir()} >= {
            "README.md", "export.json", "data", "jsonl", "hf", "dspy"}
    assert (out / "file" / "jsonl" / "train.jsonl").read_text().count("\n") > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_served_pipeline_runs_on_a_real_prefect_server(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path) -> None:
    """racemine serve registers the schedule; a run triggered through the API fills the
    warehouse."""
    repo, _ = history
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path, PREFECT_API_URL=api)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served = None
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, 120, "the Prefect server")
        warehouse, out = tmp_path / "w.duckdb", tmp_path / "exports"
        served = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--cron", "0 3 * * *", "--skip",
             "discover", "--skip", "annotate", "--repo", str(repo.path), "--export-dir",
             str(out), "--warehouse", str(warehouse)], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def deployed() -> bool:
            reply = httpx.post(f"{api}/deployments/filter", json={}, timeout=5)
            return any(d["name"] == "racemine-nightly" for d in reply.json())

        _wait(deployed, 60, "the served deployment")
        deployment = next(d for d in httpx.post(f"{api}/deployments/filter", json={}).json()
                          if d["name"] == "racemine-nightly")
        assert deployment["paused"] is False
        created: list[dict[str, Any]] = []

        def create() -> bool:
            # The server's SQLite can be busy while the served process registers: a 5xx is
            # asked again, any other failure fails the test with the server's reply.
            reply = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run",
                               json={}, timeout=10)
            if reply.status_code >= 500:
                return False
            assert reply.status_code == 201, reply.text
            created.append(reply.json())
            return True

        _wait(create, 60, "a flow run of the deployment")
        run = created[0]

        def finished() -> bool:
            state = httpx.get(f"{api}/flow_runs/{run['id']}").json()["state"]["type"]
            assert state not in ("FAILED", "CRASHED"), state
            return state == "COMPLETED"

        _wait(finished, 180, "the triggered flow run")
        assert ("mine", "completed") in _runs(warehouse)
        assert (out / "function" / "data" / "train-00000-of-00001.parquet").exists()
    finally:
        for proc in (served, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_deployment_files_are_consistent() -> None:
    """prefect.yaml points at the pipeline flow; compose wires server, Postgres and worker."""
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = project["deployments"]
    assert deployment["entrypoint"] == "flows/pipeline_flow.py:pipeline_flow"
    assert deployment["schedules"][0]["cron"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "racemine"} <= set(services)
    worker = services["racemine"]
    assert worker["build"]["context"] == "."
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert any("/data" in v for v in worker["volumes"])
    assert "RACEMINE_WAREHOUSE" in worker["environment"]
    assert (ROOT / "Dockerfile").read_text().count("uv sync") >= 1


@pytest.mark.skipif(shutil.which("docker") is None or subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed here")
def test_compose_file_validates() -> None:
    """docker compose accepts the file."""
    proc = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"),
                           "config", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
