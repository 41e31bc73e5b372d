"""The `kommune_channels` table: delivery channels set at run time (`sagsflow kommune channel 329 push --url ...`).

A row overrides the channels file and the dev default (`runtime.kommune_config`). Push secrets must stay usable for
signing, so they are encrypted, not hashed: with the documents key ring, associated data = the kommune code (and
which of the two secrets it is, after a rotation: `rotate_secret`).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import SecretStr

from domain.kommune_protocol import new_secret
from domain.kommuner import is_kommune, normalize_kode
from runtime.crypto import KeyRing
from runtime.kommune_config import ChannelConfig, ChannelConfigError, InboxChannel, KommuneChannel, PushChannel


def _secret_aad(kommune_kode: str) -> bytes:
    return f"kommune_channels:{kommune_kode}".encode()


def _previous_aad(kommune_kode: str) -> bytes:
    return f"kommune_channels:{kommune_kode}:previous".encode()


class NoPushChannel(ChannelConfigError):
    """Rotation needs a push channel in the table (a file's secrets are rotated in the file)."""


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
                settings = EXCLUDED.settings, updated_at = now(),
                -- A channel set anew starts clean: an overlap belongs to a rotation, not to a replaced channel.
                previous_secret_key_id = NULL, previous_secret_enc = NULL, previous_secret_until = NULL
            """,
            *args,
        )

    async def rotate_secret(
        self, kommune_kode: str, overlap: timedelta, *, secret: str | None = None
    ) -> tuple[str, datetime]:
        """Give a push channel a new secret (`secret`, default a fresh `whsec_` one); the current one becomes the
        previous and keeps signing for `overlap` (the database's clock). A previous secret from an earlier rotation
        is dropped. Returns the new secret and the end of the overlap."""
        kode = normalize_kode(kommune_kode)
        if not is_kommune(kode):
            raise ChannelConfigError(f"{kommune_kode!r} is not one of the 98 kommune codes")
        if overlap < timedelta(0):
            raise ChannelConfigError("the overlap cannot be negative")
        chosen = secret or new_secret()
        # Validates the new secret as a channel would (length, whsec_ format) before anything is written.
        PushChannel(url="https://validation.invalid", secret=SecretStr(chosen))
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT kind, secret_key_id, secret_enc FROM kommune_channels WHERE kommune_kode = $1 FOR UPDATE", kode
            )
            if row is None or row["kind"] != "push":
                raise NoPushChannel(
                    f"kommune {kode} has no push channel set with `sagsflow kommune channel`; a channels file's "
                    "secrets are rotated in the file (previous_secret, previous_secret_until)"
                )
            current = self.ring.decrypt(row["secret_key_id"], row["secret_enc"], _secret_aad(kode))
            new_key_id, new_blob = self.ring.encrypt(chosen.encode(), _secret_aad(kode))
            old_key_id, old_blob = self.ring.encrypt(current, _previous_aad(kode))
            until: datetime = await conn.fetchval(
                """
                UPDATE kommune_channels SET secret_key_id = $2, secret_enc = $3, previous_secret_key_id = $4,
                    previous_secret_enc = $5, previous_secret_until = now() + $6::interval, updated_at = now()
                WHERE kommune_kode = $1
                RETURNING previous_secret_until
                """,
                kode,
                new_key_id,
                new_blob,
                old_key_id,
                old_blob,
                overlap,
            )
        return chosen, until

    async def channels(self) -> dict[str, KommuneChannel]:
        """Every channel set in the table, by kommune code, secrets decrypted."""
        rows = await self.pool.fetch(
            """
            SELECT kommune_kode, kind, url, secret_key_id, secret_enc, settings,
                previous_secret_key_id, previous_secret_enc, previous_secret_until
            FROM kommune_channels
            """
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
            previous: SecretStr | None = None
            if r["previous_secret_enc"] is not None:
                raw = self.ring.decrypt(r["previous_secret_key_id"], r["previous_secret_enc"], _previous_aad(kode))
                previous = SecretStr(raw.decode())
            out[kode] = PushChannel(
                url=r["url"],
                secret=SecretStr(secret),
                previous_secret=previous,
                previous_secret_until=r["previous_secret_until"] if previous is not None else None,
                **extra,
            )
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
