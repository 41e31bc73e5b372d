"""Configuration from the environment.

Unset ``TEMPORAL_ADDRESS`` / ``DATABASE_URL`` mean the embedded default: the dev stack starts its own Temporal dev
server and PostgreSQL under ``SAGSFLOW_DATA_DIR``, and every secret it lacks is generated there once.

Production mode (either of them set, or ``SAGSFLOW_ENV=production``) generates nothing: every secret and the kommune
channels must be configured, and a process that lacks one stops at start naming each missing setting
(`ProductionSettingsMissing`), instead of inventing its own key that no other replica shares.

Every setting can also come from a file, as container platforms mount secrets: ``NAME_FILE=/path`` (e.g.
``DATABASE_URL_FILE``), or a file called ``NAME`` in ``SAGSFLOW_SECRETS_DIR``. A value set directly wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SECRETS_DIR_VARIABLE = "SAGSFLOW_SECRETS_DIR"


class SettingFileMissing(ValueError):
    """A `NAME_FILE` names a file that is not there (one line, without the value of anything)."""


def env_names(name: str, field: FieldInfo, prefix: str) -> list[str]:
    """The environment variables a field is read from, as an operator writes them."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{prefix}{name}".upper()]


class FileSecrets(PydanticBaseSettingsSource):
    """`NAME_FILE` and `$SAGSFLOW_SECRETS_DIR/NAME`: a setting's value read from a file, for each setting that has
    no value in the environment itself."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", ""))
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            names = env_names(name, field, prefix)
            if any(n in os.environ for n in names):
                continue
            for env_name in names:
                path = _secret_path(env_name, secrets_dir)
                if path is not None:
                    # A field with aliases is validated by alias; the others by their name.
                    found[env_name if field.validation_alias else name] = path.read_text().strip()
                    break
        return found


def _secret_path(env_name: str, secrets_dir: str | None) -> Path | None:
    named = os.environ.get(f"{env_name}_FILE")
    if named:
        path = Path(named)
        if not path.is_file():
            raise SettingFileMissing(f"{env_name}_FILE: {path} is not a readable file")
        return path
    if secrets_dir:
        candidate = Path(secrets_dir) / env_name
        if candidate.is_file():
            return candidate
    return None


class SagsflowSettings(BaseSettings):
    """Settings from the environment, then from files (`NAME_FILE`, the secrets dir); see the module docstring."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, FileSecrets(settings_cls)


class ProductionSettingsMissing(Exception):
    """Production mode lacks settings a process needs; the message names each, on one line."""

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = sorted(set(missing))
        super().__init__(
            "production mode (TEMPORAL_ADDRESS or DATABASE_URL is set, or SAGSFLOW_ENV=production) generates no"
            f" secrets and no kommune channels: set {', '.join(self.missing)}"
            " (a secret can also come from NAME_FILE or $SAGSFLOW_SECRETS_DIR/NAME)"
        )


class Settings(SagsflowSettings):
    model_config = SettingsConfigDict(env_prefix="SAGSFLOW_", extra="ignore")

    # "auto": production as soon as TEMPORAL_ADDRESS or DATABASE_URL names a service we did not start.
    env: Literal["auto", "development", "production"] = "auto"

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
    # Origins whose pages may call the API from a browser (CORS), comma-separated: the Temporal Web UI calls our
    # codec from the person's browser. Unset → the embedded default's Web UI on loopback (temporal_ui_port).
    ui_origins: str = ""
    sim_port: int = 8100
    # The worker's Prometheus endpoint (Temporal SDK metrics + append latency); 0 turns it off.
    worker_metrics_port: int = 9464
    worker_metrics_host: str = "127.0.0.1"
    # Workflows one worker keeps in memory between their tasks (Temporal's sticky cache). An open case holds two
    # (the case and its task) and waits weeks on its kommune, so without a bound the worker's memory grows with the
    # backlog; past the bound a workflow's next task replays its (short) history instead. bench/worker_memory.py
    # measures the memory per cached workflow and shows it flat past the cache. 0 caches nothing (every workflow
    # task replays its history).
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
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

    @property
    def production(self) -> bool:
        if self.env == "auto":
            return self.temporal_address is not None or self.database_url is not None
        return self.env == "production"

    def dev_fallback(self, setting: str) -> None:
        """Called before the embedded default generates a stand-in for `setting`: refused in production mode."""
        if self.production:
            raise ProductionSettingsMissing([setting])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
