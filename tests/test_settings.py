"""Settings: RACEMINE_* names, fallbacks, empty values, and secrets that never print."""

from __future__ import annotations

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
