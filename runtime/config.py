"""Configuration from the environment.

Unset ``TEMPORAL_ADDRESS`` / ``DATABASE_URL`` mean the embedded default: the dev stack starts its own Temporal dev
server and PostgreSQL under ``SAGSFLOW_DATA_DIR``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAGSFLOW_", extra="ignore")

    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "SAGSFLOW_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        default="default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "SAGSFLOW_TEMPORAL_NAMESPACE")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SAGSFLOW_DATABASE_URL")
    )
    data_dir: Path = Field(default=Path(".sagsflow"), validation_alias=AliasChoices("SAGSFLOW_DATA_DIR"))
    # JSON key ring for payload encryption; unset → a dev key generated into the data dir on first start.
    codec_key_file: Path | None = None
    # Key ring for per-person encryption of personal data in the event log (crypto-shredding master key).
    eventlog_key_file: Path | None = None
    # Every PostgreSQL statement of the services is cancelled after this many seconds (lock waits included), and a
    # connection attempt given up after db_connect_timeout; migrations run unbounded.
    db_statement_timeout: float = Field(default=30.0, gt=0)
    db_connect_timeout: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    task_queue: str = "sagsflow"

    # Loopback ports for the embedded stack.
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_metrics_port: int = 7299
    postgres_port: int = 55432
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    sim_port: int = 8100
    # The worker's Prometheus endpoint (Temporal SDK metrics + append latency); 0 turns it off.
    worker_metrics_port: int = 9464
    worker_metrics_host: str = "127.0.0.1"
    # Bearer token that the codec server and the ops API accept; unset → generated into the data dir.
    ops_token: str | None = None
    # Staff sign in through an OpenID Connect provider: its issuer, the audience our API is, and its JWKS address.
    # Unset → the local issuer of the embedded default (`sagsflow staff add` mints tokens from a key in the data dir).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    # The claim holding a person's roles (dotted for nested claims, e.g. realm_access.roles) and display name.
    oidc_roles_claim: str = "roles"
    oidc_name_claim: str = "name"
    # Secret that turns a CPR number into a pseudonymous subject id; unset → generated into the data dir.
    subject_pepper_file: Path | None = None
    # The SLA policy new cases start under (the demo uses "demo-1").
    sla_policy: str = "standard-2021.1"
    # The worker's citizen-letter adapter (activities/digital_post.py). There is no Digital Post connection yet:
    # "log", the only adapter today, logs each letter's ids and sends nothing.
    letters: Literal["log"] = "log"

    @field_validator("letters", mode="before")
    @classmethod
    def _known_letter_adapter(cls, value: object) -> object:
        if value != "log":
            raise ValueError(
                f"SAGSFLOW_LETTERS={value!r} is not a letter adapter; the only one today is 'log'"
                " (no Digital Post connection yet)"
            )
        return value

    @property
    def key_file(self) -> Path:
        return self.codec_key_file or self.data_dir / "codec-keys.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
