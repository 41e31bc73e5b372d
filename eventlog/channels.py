"""The `kommune_channels` table: delivery channels set at run time (`sagsflow kommune channel 329 push --url ...`).

A row overrides the channels file and the dev default (`runtime.kommune_config`). Push secrets must stay usable for
signing, so they are encrypted, not hashed: with the documents key ring, associated data = the kommune code.
"""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
from pydantic import SecretStr

from domain.kommuner import is_kommune, normalize_kode
from runtime.crypto import KeyRing
from runtime.kommune_config import ChannelConfig, ChannelConfigError, InboxChannel, KommuneChannel, PushChannel


def _secret_aad(kommune_kode: str) -> bytes:
    return f"kommune_channels:{kommune_kode}".encode()


class ChannelStore:
    def __init__(self, pool: asyncpg.Pool, ring: KeyRing) -> None:
        self.pool = pool
        self.ring = ring

    async def set_channel(self, kommune_kode: str, channel: KommuneChannel) -> None:
        """Set (or replace) one kommune's channel."""
        kode = normalize_kode(kommune_kode)
        if not is_kommune(kode):
            raise ChannelConfigError(f"{kommune_kode!r} is not one of the 98 kommune codes")
        if isinstance(channel, PushChannel):
            key_id, blob = self.ring.encrypt(channel.secret.get_secret_value().encode(), _secret_aad(kode))
            settings = {"timeout_seconds": channel.timeout_seconds, "rate_per_second": channel.rate_per_second}
            settings["burst"] = channel.burst
            args: tuple[Any, ...] = (kode, "push", channel.url, key_id, blob, json.dumps(settings))
        else:
            args = (kode, "inbox", None, None, None, "{}")
        await self.pool.execute(
            """
            INSERT INTO kommune_channels (kommune_kode, kind, url, secret_key_id, secret_enc, settings, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, now())
            ON CONFLICT (kommune_kode) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url,
                secret_key_id = EXCLUDED.secret_key_id, secret_enc = EXCLUDED.secret_enc,
                settings = EXCLUDED.settings, updated_at = now()
            """,
            *args,
        )

    async def channels(self) -> dict[str, KommuneChannel]:
        """Every channel set in the table, by kommune code, secrets decrypted."""
        rows = await self.pool.fetch(
            "SELECT kommune_kode, kind, url, secret_key_id, secret_enc, settings FROM kommune_channels"
        )
        out: dict[str, KommuneChannel] = {}
        for r in rows:
            kode = r["kommune_kode"]
            if r["kind"] == "inbox":
                out[kode] = InboxChannel()
                continue
            secret = self.ring.decrypt(r["secret_key_id"], r["secret_enc"], _secret_aad(kode)).decode()
            # A str without the jsonb codec of `eventlog.store.create_pool`, a dict with it.
            extra = json.loads(r["settings"]) if isinstance(r["settings"], str) else dict(r["settings"])
            out[kode] = PushChannel(url=r["url"], secret=SecretStr(secret), **extra)
        return out


class DbChannels:
    """The table's channels over a base config (a `runtime.kommune_config.ChannelSource`); re-read at most every
    `ttl` seconds, so a CLI change lands soon without a query per delivery."""

    def __init__(self, store: ChannelStore, base: ChannelConfig, *, ttl: float = 30.0) -> None:
        self.store = store
        self.base = base
        self.ttl = ttl
        self._rows: dict[str, KommuneChannel] = {}
        self._loaded_at: float | None = None

    async def refresh(self) -> None:
        self._rows = await self.store.channels()
        self._loaded_at = time.monotonic()

    async def channel_for(self, kommune_kode: str) -> KommuneChannel | None:
        if self._loaded_at is None or time.monotonic() - self._loaded_at > self.ttl:
            await self.refresh()
        kode = normalize_kode(kommune_kode)
        return self._rows.get(kode) or self.base.channel_for(kode)
