"""How each kommune's system is reached: `push` (a POST signed by Standard Webhooks, see `domain.kommune_protocol`)
or `inbox` (its system polls our API).

Sources, most specific first:

1. the `kommune_channels` table (set with `sagsflow kommune channel 329 push --url ...`; stored and read by
   `eventlog.channels`, whose `DbChannels` layers it over the sources below),
2. a channels file (`SAGSFLOW_CHANNELS_FILE`, JSON or TOML, see `ChannelConfig`),
3. the dev/demo default: every kommune pushes to the simulator (`SAGSFLOW_SIM_URL`, default
   `http://127.0.0.1:<sim_port>`), except the codes in `SAGSFLOW_INBOX_KOMMUNER` (comma-separated), which use the
   inbox. Each kommune's push secret is derived from one dev master secret in the data dir, so the simulator can
   verify the signatures of all 98 kommuner from that single file.

A channels file looks like::

    [defaults]              # optional: applies to every kommune without its own entry
    kind = "inbox"

    [kommuner.101]
    kind = "push"
    url = "https://sag.kk.dk/seniorpension/tasks"
    secret_file = "/run/secrets/push-101"   # or: secret = "whsec_..."
    rate_per_second = 5
    # While rotating: the old secret signs too, until then (rotate-secret does this for channels in the database).
    # previous_secret_file = "/run/secrets/push-101.old"
    # previous_secret_until = 2026-12-04T09:00:00Z
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from domain.kommune_protocol import secret_key
from domain.kommuner import all_kommuner, is_kommune, normalize_kode
from runtime.config import SagsflowSettings, Settings
from runtime.crypto import KeyRing, load_or_create_key_ring


class ChannelConfigError(ValueError):
    pass


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PushChannel(_Frozen):
    kind: Literal["push"] = "push"
    url: str = Field(pattern=r"^https?://", max_length=2000)
    secret: SecretStr = Field(
        description="Per-kommune signing secret: `whsec_<base64>` (Standard Webhooks), or an older raw string of at "
        "least 16 characters, used as its own bytes"
    )
    # After `sagsflow kommune rotate-secret`: the secret before, which also signs until `previous_secret_until`, so
    # the kommune's system verifies throughout the switch whichever of the two it holds.
    previous_secret: SecretStr | None = None
    previous_secret_until: AwareDatetime | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Per-kommune throttle: a small kommune system must not be flooded when a backlog is released at once.
    rate_per_second: float = Field(default=2.0, gt=0, le=1000)
    burst: int = Field(default=5, ge=1, le=1000)

    @field_validator("secret", "previous_secret")
    @classmethod
    def _usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        raw = value.get_secret_value()
        if len(raw) < 16:
            raise ValueError("push secret must be at least 16 characters")
        secret_key(raw)  # a malformed whsec_ secret fails here, at configuration, not at the first push
        return value

    @model_validator(mode="after")
    def _previous_has_an_end(self) -> PushChannel:
        if (self.previous_secret is None) != (self.previous_secret_until is None):
            raise ValueError("previous_secret and previous_secret_until go together")
        return self

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a push at `now`: the current one, and the previous one during its overlap."""
        current = [self.secret.get_secret_value()]
        if self.previous_secret is None or self.previous_secret_until is None or now >= self.previous_secret_until:
            return current
        return [*current, self.previous_secret.get_secret_value()]


class InboxChannel(_Frozen):
    kind: Literal["inbox"] = "inbox"


KommuneChannel = Annotated[PushChannel | InboxChannel, Field(discriminator="kind")]


class ChannelConfig(_Frozen):
    """Channels per kommune code; `default` covers every kommune without an entry (None: unconfigured)."""

    default: KommuneChannel | None = None
    kommuner: dict[str, KommuneChannel] = Field(default_factory=dict)

    @field_validator("kommuner", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for raw, channel in value.items():
            kode = normalize_kode(str(raw))
            if not is_kommune(kode):
                raise ValueError(f"{raw!r} is not one of the 98 kommune codes")
            out[kode] = channel
        return out

    def channel_for(self, kommune_kode: str) -> KommuneChannel | None:
        return self.kommuner.get(normalize_kode(kommune_kode), self.default)


def _resolve_secret_files(raw: Any, base: Path) -> Any:
    """`secret_file = "..."` (and `previous_secret_file`, during a rotation) reads a secret from a file, so the
    channels file itself can be committed."""
    if isinstance(raw, dict):
        for field in ("secret", "previous_secret"):
            if f"{field}_file" not in raw:
                continue
            raw = dict(raw)
            path = Path(raw.pop(f"{field}_file"))
            path = path if path.is_absolute() else base / path
            try:
                raw[field] = path.read_text().strip()
            except OSError as exc:
                raise ChannelConfigError(f"cannot read secret file {path}: {exc.strerror}") from None
        return {k: _resolve_secret_files(v, base) for k, v in raw.items()}
    return raw


def parse_channel_config(text: str, *, fmt: Literal["json", "toml"], base: Path = Path(".")) -> ChannelConfig:
    try:
        raw: Any = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ChannelConfigError(f"channels file is not valid {fmt.upper()}: {exc}") from None
    if not isinstance(raw, dict):
        raise ChannelConfigError("channels file must hold an object with 'defaults' and/or 'kommuner'")
    raw = _resolve_secret_files(raw, base)
    if "defaults" in raw:
        raw["default"] = raw.pop("defaults")
    try:
        return ChannelConfig.model_validate(raw)
    except ValidationError as exc:
        # pydantic never echoes SecretStr values, so the message is safe to show.
        raise ChannelConfigError(f"invalid channels file: {exc}") from None


def load_channel_file(path: Path) -> ChannelConfig:
    fmt: Literal["json", "toml"] = "toml" if path.suffix.lower() == ".toml" else "json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChannelConfigError(f"cannot read channels file {path}: {exc.strerror}") from None
    return parse_channel_config(text, fmt=fmt, base=path.parent)


# --- the dev/demo default ------------------------------------------------------------------------------------------


def derive_push_secret(master: str, kommune_kode: str) -> str:
    """One kommune's dev secret from the shared dev master: distinct per kommune, reproducible by the simulator."""
    kode = normalize_kode(kommune_kode)
    return hmac.new(master.encode(), f"sagsflow-push:{kode}".encode(), hashlib.sha256).hexdigest()


def load_or_create_secret_file(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of the stack won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def sim_push_url(sim_url: str, kommune_kode: str) -> str:
    return f"{sim_url.rstrip('/')}/kommune/{normalize_kode(kommune_kode)}/tasks"


def dev_channel_config(
    sim_url: str,
    master_secret: str,
    inbox_kommuner: frozenset[str] = frozenset(),
    *,
    timeout_seconds: float = 10.0,
    rate_per_second: float = 2.0,
    burst: int = 5,
) -> ChannelConfig:
    inbox = {normalize_kode(k) for k in inbox_kommuner}
    kommuner: dict[str, KommuneChannel] = {}
    for k in all_kommuner():
        if k.kode in inbox:
            kommuner[k.kode] = InboxChannel()
        else:
            kommuner[k.kode] = PushChannel(
                url=sim_push_url(sim_url, k.kode),
                secret=SecretStr(derive_push_secret(master_secret, k.kode)),
                timeout_seconds=timeout_seconds,
                rate_per_second=rate_per_second,
                burst=burst,
            )
    return ChannelConfig(kommuner=kommuner)


class KommuneSettings(SagsflowSettings):
    """Settings of the kommune integration (environment `SAGSFLOW_*`), next to `runtime.config.Settings`."""

    model_config = SettingsConfigDict(env_prefix="SAGSFLOW_", extra="ignore")

    channels_file: Path | None = None
    sim_url: str | None = None
    inbox_kommuner: str = Field(default="", description="Comma-separated kommune codes that poll their inbox")
    # Key ring for documents and for channel secrets at rest; unset → generated into the data dir (dev only).
    documents_key_file: Path | None = None
    push_timeout_seconds: float = Field(default=10.0, gt=0)
    push_rate_per_second: float = Field(default=2.0, gt=0)
    push_burst: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _valid_inbox_codes(self) -> KommuneSettings:
        for kode in self.inbox_set:
            if not is_kommune(kode):
                raise ValueError(f"SAGSFLOW_INBOX_KOMMUNER: {kode!r} is not a kommune code")
        return self

    @property
    def inbox_set(self) -> frozenset[str]:
        return frozenset(normalize_kode(k) for k in self.inbox_kommuner.split(",") if k.strip())


def sim_master_secret_path(settings: Settings) -> Path:
    return settings.data_dir / "sim-push-secret"


def documents_key_ring(settings: Settings, ksettings: KommuneSettings) -> KeyRing:
    if ksettings.documents_key_file is not None:
        return load_or_create_key_ring(ksettings.documents_key_file, create=False)
    settings.dev_fallback("SAGSFLOW_DOCUMENTS_KEY_FILE")
    return load_or_create_key_ring(settings.data_dir / "documents-keys.json", create=True)


def base_channel_config(settings: Settings, ksettings: KommuneSettings) -> ChannelConfig:
    """The file if one is configured, else the dev default pointing at the simulator."""
    if ksettings.channels_file is not None:
        return load_channel_file(ksettings.channels_file)
    settings.dev_fallback("SAGSFLOW_CHANNELS_FILE")
    sim_url = ksettings.sim_url or f"http://127.0.0.1:{settings.sim_port}"
    return dev_channel_config(
        sim_url,
        load_or_create_secret_file(sim_master_secret_path(settings)),
        ksettings.inbox_set,
        timeout_seconds=ksettings.push_timeout_seconds,
        rate_per_second=ksettings.push_rate_per_second,
        burst=ksettings.push_burst,
    )


# --- sources the delivery activity reads from (the table's is `eventlog.channels.DbChannels`) ----------------------


class ChannelSource(Protocol):
    async def channel_for(self, kommune_kode: str) -> KommuneChannel | None: ...


class StaticChannels:
    def __init__(self, config: ChannelConfig) -> None:
        self.config = config

    async def channel_for(self, kommune_kode: str) -> KommuneChannel | None:
        return self.config.channel_for(kommune_kode)
