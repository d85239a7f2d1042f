"""The pipeline run once, directly from the CLI; the deployment files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import RepoBuilder, run_rows

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_once_from_the_cli(history: tuple[RepoBuilder, dict[str, str]],
                                    tmp_path: Path) -> None:
    """Skipping discovery, the pipeline mines, labels, traces and exports; a runs row per
    step, and the export carries where each fix's bug came from."""
    repo, _ = history
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "exports"
    result = CliRunner().invoke(app, ["pipeline", "--skip", "discover", "--repo",
                                      str(repo.path), "--export-dir", str(out),
                                      "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    assert run_rows(warehouse) == [("mine", "completed"), ("szz", "completed"),
                                   ("export", "completed")]
    assert {p.name for p in out.iterdir()} == {"file", "function"}
    for level in ("file", "function"):
        assert {p.name for p in (out / level).iterdir()} >= {
            "README.md", "export.json", "data", "jsonl", "hf", "dspy"}
    assert (out / "file" / "jsonl" / "train.jsonl").read_text().count("\n") > 0
    rows = [json.loads(line) for line in
            (out / "file" / "jsonl" / "train.jsonl").read_text().splitlines()]
    assert {"introduced_by", "introduced_at", "bug_age_days"} <= set(rows[0])
    assert any(r["introduced_by"] for r in rows if r["is_concurrency_bug"])


def test_pipeline_says_when_a_step_failed(tmp_path: Path) -> None:
    """A pipeline whose mine step failed exits 1, and the runs row says so."""
    not_a_repo = tmp_path / "folder"
    not_a_repo.mkdir()
    warehouse = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["pipeline", "--skip", "discover", "--skip", "szz",
                                      "--skip", "export",
                                      "--repo", str(not_a_repo), "--warehouse", str(warehouse)])
    assert result.exit_code == 1, result.output
    assert "'status': 'failed'" in result.output
    assert run_rows(warehouse) == [("mine", "failed")]


def test_deployment_files_are_consistent() -> None:
    """prefect.yaml points at the tracked pipeline flow; compose wires server, Postgres and
    worker."""
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = project["deployments"]
    assert deployment["entrypoint"] == "flows/tracked/pipeline.py:pipeline_flow"
    assert (ROOT / deployment["entrypoint"].split(":")[0]).is_file()
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
