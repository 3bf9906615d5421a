"""kgmem's one settings object.

It lives in `graph`, the bottom package, so that every layer above can read it
without an upward import. Values come from, highest priority first:
keyword arguments, environment variables, a `.env` file, the TOML config file
(`KGMEM_CONFIG`, else `$KGMEM_HOME/kgmem.toml`), then the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

NEO4J_VERSION = "5.26.30"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "kgmem"


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kgmem"


def config_file_path() -> Path:
    explicit = os.environ.get("KGMEM_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("KGMEM_HOME")
    return (Path(home).expanduser() if home else default_home()) / "kgmem.toml"


class Settings(BaseSettings):
    """Every knob kgmem has. Field names map to `KGMEM_<NAME>` unless an alias says otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="KGMEM_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    # -- Data -----------------------------------------------------------------
    home: Path = Field(default_factory=default_home, description="Data directory.")
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Downloads shared between data directories (the Neo4j distribution).",
    )

    # -- Neo4j: a server of yours (NEO4J_URI) or kgmem's managed local one ----
    neo4j_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NEO4J_URI", "KGMEM_NEO4J_URI"),
        description="Bolt URI of an existing server. Unset: kgmem runs its own local Neo4j.",
    )
    neo4j_username: str = Field(
        default="neo4j", validation_alias=AliasChoices("NEO4J_USERNAME", "KGMEM_NEO4J_USERNAME")
    )
    neo4j_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NEO4J_PASSWORD", "KGMEM_NEO4J_PASSWORD"),
        description="Unset with the managed Neo4j: the generated password in the data directory.",
    )
    neo4j_database: str = Field(
        default="neo4j", validation_alias=AliasChoices("NEO4J_DATABASE", "KGMEM_NEO4J_DATABASE")
    )
    neo4j_retry_s: float = Field(
        default=10.0, gt=0, le=300,
        description="How long a transaction is retried through transient failures (a leader switch, a deadlock).",
    )
    neo4j_connect_timeout_s: float = Field(default=5.0, gt=0, le=120, description="Time to open a connection.")
    neo4j_down_cooldown_s: float = Field(
        default=2.0, gt=0, le=60,
        description="Once Neo4j is found unreachable, calls fail at once; it is probed again this often.",
    )

    # -- Managed local Neo4j ----------------------------------------------------
    neo4j_version: str = NEO4J_VERSION
    neo4j_home: Path | None = Field(default=None, description="An unpacked Neo4j distribution to run.")
    neo4j_dist: str | None = Field(default=None, description="A Neo4j tarball to install: a path or URL.")
    neo4j_bolt_port: int = Field(default=7687, ge=1, le=65535)
    neo4j_http_port: int = Field(default=7474, ge=1, le=65535)
    neo4j_pick_free_port: bool = Field(
        default=False, description="Pick free ports when the configured ones are taken."
    )
    neo4j_heap: str = Field(default="512m", pattern=r"^\d+[kmgKMG]$")
    neo4j_pagecache: str = Field(default="256m", pattern=r"^\d+[kmgKMG]$")
    neo4j_transaction_memory: str = Field(
        default="256m", pattern=r"^(0|\d+[kmgKMG])$",
        description="Heap one transaction may use (Neo4j's db.memory.transaction.max): a query past it fails "
                    "alone instead of exhausting the heap the whole server shares. Keep it under neo4j_heap; "
                    "0: no limit.",
    )
    neo4j_start_timeout: float = Field(default=120.0, gt=0)

    # -- Chroma -----------------------------------------------------------------
    chroma_host: str | None = Field(default=None, description="Chroma server host. Unset: embedded.")
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    chroma_path: Path | None = Field(default=None, description="Embedded Chroma directory; default $KGMEM_HOME/chroma.")

    # -- Embedding model ----------------------------------------------------------
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL, description="A sentence-transformers model id or a local path."
    )
    embedding_model_path: Path | None = Field(default=None, description="Explicit model directory; wins over everything.")
    embedding_device: str | None = Field(default=None, description="torch device, e.g. cpu or cuda; default: auto.")
    reranker_model: str | None = Field(
        default=None, description="A sentence-transformers cross-encoder (id or path) that reorders recall's top results."
    )
    omp_wait_policy: str = Field(
        default="PASSIVE", validation_alias=AliasChoices("OMP_WAIT_POLICY", "KGMEM_OMP_WAIT_POLICY"),
        description="PyTorch's idle OpenMP threads: PASSIVE sleeps instead of spinning, which keeps embedding "
                    "fast beside Neo4j on small machines. Applied when the model loads.",
    )

    # -- Claude -------------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "KGMEM_ANTHROPIC_API_KEY"),
        description="Claude, for extraction and mem0's infer=true. Unset: those features say they need it.",
    )

    # -- API ---------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    auth_disabled: bool = Field(
        default=False, description="Development only: no API keys, every request acts as an admin on any space."
    )
    # Limits; each may only tighten the hard maximum the API's schema declares.
    api_max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    api_max_batch: int = Field(default=500, ge=1, le=1000, description="Items in one batch call.")
    api_max_limit: int = Field(default=100, ge=1, le=100, description="Page size, recall k and search limit.")
    api_max_depth: int = Field(default=3, ge=1, le=3, description="Neighbourhood hops.")
    api_query_timeout_s: float = Field(default=10.0, gt=0, le=600, description="Neo4j transaction timeout per request.")
    api_rate_limit_per_minute: int = Field(default=600, ge=0, description="Requests per API key per minute; 0: off.")
    api_idempotency_ttl_s: int = Field(default=86_400, ge=60, description="How long an Idempotency-Key is remembered.")
    # API keys are stored as HMAC-SHA-256 under this server-side secret (docs/auth.md); replicas must share it.
    api_key_secret: SecretStr | None = Field(
        default=None,
        description="The server-side secret API keys are hashed with. Unset: generated once in api_key_secret_file.",
    )
    api_key_secret_file: Path | None = Field(
        default=None, description="Where the generated secret is kept (mode 0600); default $KGMEM_HOME/api-key-secret.",
    )
    api_auth_failures_per_minute: int = Field(
        default=30, ge=0, description="Failed API key checks per client address a minute (bursts up to the same); "
                                      "past it 429 before any check. 0: off.",
    )
    api_auth_max_concurrent: int = Field(
        default=4, ge=1, le=64, description="API key checks (a Neo4j lookup each) running at once; more wait.",
    )

    @field_validator("auth_disabled", mode="before")
    @classmethod
    def _empty_is_false(cls, value: Any) -> Any:
        # KGMEM_AUTH_DISABLED= (set but empty) means off; any word but a clear true/false is an error.
        return False if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters; make one with "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file_path())
        return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    # -- Derived paths --------------------------------------------------------------
    @property
    def managed_neo4j(self) -> bool:
        return not self.neo4j_uri

    @property
    def neo4j_dir(self) -> Path:
        return self.home / "neo4j"

    @property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.home / "chroma"

    def public_dict(self) -> dict[str, Any]:
        """Settings with secrets masked, for `kgmem config`."""
        data = self.model_dump(mode="json")
        for secret in ("neo4j_password", "anthropic_api_key", "api_key_secret"):
            if data.get(secret):
                data[secret] = "********"
        return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
