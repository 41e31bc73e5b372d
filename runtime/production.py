"""What a process needs in production mode (runtime/config.py): checked once at start, so an operator reads every
missing setting in one line instead of meeting them one restart at a time."""

from __future__ import annotations

from typing import Literal

from runtime.config import ProductionSettingsMissing, Settings
from runtime.kommune_config import KommuneSettings

Role = Literal["api", "worker"]


def missing_settings(settings: Settings, ksettings: KommuneSettings, role: Role) -> list[str]:
    """The settings production mode lacks for `role` (empty on the embedded default)."""
    if not settings.production:
        return []
    needed: dict[str, object] = {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "DATABASE_URL": settings.database_url,
        "SAGSFLOW_CODEC_KEY_FILE": settings.codec_key_file,
        "SAGSFLOW_EVENTLOG_KEY_FILE": settings.eventlog_key_file,
        "SAGSFLOW_SUBJECT_PEPPER_FILE": settings.subject_pepper_file,
        "SAGSFLOW_DOCUMENTS_KEY_FILE": ksettings.documents_key_file,
    }
    if role == "api":
        needed |= {
            "SAGSFLOW_OIDC_ISSUER": settings.oidc_issuer,
            "SAGSFLOW_OIDC_AUDIENCE": settings.oidc_audience,
            "SAGSFLOW_OIDC_JWKS_URL": settings.oidc_jwks_url,
        }
    if role == "worker":
        needed["SAGSFLOW_CHANNELS_FILE"] = ksettings.channels_file
    missing = [name for name, value in needed.items() if value is None or value == ""]
    for name, value in needed.items():
        if name.endswith("_FILE") and value is not None and not _readable(value):
            missing.append(f"{name} (no file at {value})")
    return missing


def _readable(path: object) -> bool:
    from pathlib import Path

    return Path(str(path)).is_file()


def require_settings_for(settings: Settings, ksettings: KommuneSettings, role: Role) -> None:
    missing = missing_settings(settings, ksettings, role)
    if missing:
        raise ProductionSettingsMissing(missing)
