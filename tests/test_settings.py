"""Settings: RACEMINE_* names, fallbacks, empty values, and secrets that never print."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.settings import Settings


def test_names_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """RACEMINE_* variables win; GITHUB_TOKEN / OPENAI_* are the fallbacks."""
    for key in ("RACEMINE_GITHUB_TOKEN", "RACEMINE_LLM_API_KEY", "RACEMINE_LLM_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", "gh-fallback")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RACEMINE_WAREHOUSE", "/srv/w.duckdb")
    s = Settings()
    assert s.github_token is not None and s.github_token.get_secret_value() == "gh-fallback"
    assert s.llm_api_key is not None and s.llm_api_key.get_secret_value() == "sk-fallback"
    assert s.llm_base_url == "http://127.0.0.1:9/v1" and s.warehouse == Path("/srv/w.duckdb")
    monkeypatch.setenv("RACEMINE_GITHUB_TOKEN", "gh-own")
    assert Settings().github_token.get_secret_value() == "gh-own"  # type: ignore[union-attr]
    assert "gh-own" not in repr(Settings()) and "sk-fallback" not in str(Settings())


def test_empty_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty variable (compose's ${VAR:-}) means unset, not an empty URL or key."""
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "GITHUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RACEMINE_LLM_BASE_URL", "")
    monkeypatch.setenv("RACEMINE_LLM_API_KEY", " ")
    monkeypatch.setenv("RACEMINE_LLM_MODEL", "")
    s = Settings()
    assert s.llm_base_url is None and s.llm_api_key is None and not s.llm_configured


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TOML file named by RACEMINE_CONFIG fills what the environment leaves unset."""
    config = tmp_path / "racemine.toml"
    config.write_text('warehouse = "/data/from-file.duckdb"\nllm_concurrency = 3\n')
    monkeypatch.setenv("RACEMINE_CONFIG", str(config))
    monkeypatch.delenv("RACEMINE_WAREHOUSE", raising=False)
    s = Settings()
    assert s.warehouse == Path("/data/from-file.duckdb") and s.llm_concurrency == 3


@pytest.mark.parametrize(("env", "config", "given"), [
    ({}, None, None),
    ({}, None, "given.duckdb"),
    ({"RACEMINE_WAREHOUSE": "env.duckdb"}, None, None),
    ({"racemine_Warehouse": "lower.duckdb"}, None, None),
    ({"RACEMINE_WAREHOUSE": "env.duckdb"}, None, "given.duckdb"),
    ({}, "warehouse = 'toml.duckdb'\n", None),
    ({}, "warehouse = 'toml.duckdb'\n", "given.duckdb"),
])
def test_the_quick_read_takes_the_warehouse_the_settings_name(
        env: dict[str, str], config: str | None, given: str | None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point that answers a hosted `racemine sql` without loading the settings
    reads the warehouse they would choose, or leaves the command to them (a config file)."""
    from flows.entry import hosted_sql_args

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RACEMINE_CONFIG", raising=False)
    for name in [n for n in os.environ if n.lower() == "racemine_warehouse"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        (tmp_path / "racemine.toml").write_text(config)
    for argv in (["sql", "SELECT 1", *(["-w", given] if given else [])],
                 ["sql", "-f", "csv", *([f"--warehouse={given}"] if given else []), "SELECT 1"]):
        got = hosted_sql_args(argv)
        if got is None:  # left to the full command: only when the config file decides
            assert config is not None and given is None
        else:
            assert got[:2] == ("SELECT 1", Settings.load(given).warehouse)


@pytest.mark.parametrize("argv", [
    ["sql"], ["sql", "--help"], ["sql", "SELECT 1", "-fcsv"], ["sql", "SELECT 1", "SELECT 2"],
    ["sql", "SELECT 1", "-f", "csv", "-f", "json"], ["sql", "SELECT 1", "-f", "xml"],
    ["sql", "SELECT 1", "--warehouse"], ["sql", "SELECT 1", "--limit=3"], ["stats"], [],
])
def test_the_quick_read_leaves_every_other_command_line_to_the_cli(argv: list[str]) -> None:
    from flows.entry import hosted_sql_args

    assert hosted_sql_args(argv) is None
