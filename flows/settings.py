"""racemine's settings: RACEMINE_* environment variables and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.defaults import CONFIG_FILE, WAREHOUSE


class Settings(BaseSettings):
    """Everything a run can be configured with; secrets are SecretStr and never printed."""

    model_config = SettingsConfigDict(env_prefix="RACEMINE_", extra="ignore",
                                      populate_by_name=True)

    warehouse: Path = Path(WAREHOUSE)
    cache_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("racemine")))
    github_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RACEMINE_GITHUB_TOKEN", "GITHUB_TOKEN"))
    github_api_url: str = "https://api.github.com"
    llm_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RACEMINE_LLM_BASE_URL", "OPENAI_BASE_URL"))
    llm_model: str | None = None
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RACEMINE_LLM_API_KEY", "OPENAI_API_KEY"))
    llm_concurrency: int = Field(default=8, ge=1, le=256)
    llm_requests_per_minute: int | None = Field(default=None, ge=1)
    llm_tokens_per_minute: int | None = Field(default=None, ge=1)
    llm_max_usd: float | None = Field(default=None, ge=0)
    llm_max_tokens: int | None = Field(default=None, ge=1)
    llm_price_in: float | None = Field(default=None, ge=0)  # USD per million input tokens
    llm_price_out: float | None = Field(default=None, ge=0)  # USD per million output tokens
    llm_timeout: float = Field(default=120.0, gt=0)
    # characters of code and message per request; a commit the server's context cannot hold
    # is asked again once with a third of it
    llm_max_input_chars: int = Field(default=48_000, ge=2_000)
    llm_max_output_tokens: int | None = Field(default=None, ge=64)  # None: 2048, 16384 reasoning
    llm_reasoning: bool | None = None  # None: o1/o3/o4/gpt-5 families are detected by name
    reviewer: str | None = None  # who `racemine review` records as deciding (default: login)
    concurrency: int = Field(default=2, ge=1, le=64)
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    # DuckDB's memory for an export; beyond it, sorting spills to disk (e.g. "2GB")
    export_memory: str = Field(default="512MB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")

    @field_validator("github_token", "llm_base_url", "llm_model", "llm_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose's ${VAR:-} passes unset variables as empty strings
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: command-line values, then environment, then the config file.
        config = os.environ.get("RACEMINE_CONFIG", CONFIG_FILE)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if Path(config).is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @classmethod
    def load(cls, warehouse: Path | str | None = None) -> Settings:
        """The settings of one command or flow run: the environment and the config file,
        with the warehouse given on the command line (or as a flow parameter) on top."""
        return cls(**({"warehouse": Path(warehouse)} if warehouse else {}))

    @property
    def github_token_value(self) -> str | None:
        """The token itself, for the one client or git process that sends it."""
        return self.github_token.get_secret_value() if self.github_token else None

    @property
    def llm_api_key_value(self) -> str | None:
        """The key itself, for the LLM client only."""
        return self.llm_api_key.get_secret_value() if self.llm_api_key else None

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_model or self.llm_api_key)
