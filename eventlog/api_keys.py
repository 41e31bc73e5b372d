"""API keys for kommune systems: issued, checked, revoked and listed here.

A key reads `sfk.<key id>.<secret>`. The secret is 32 random bytes
(URL-safe base64); only its SHA-256 is stored, under the key id, so a stolen table grants nothing and lookup is one
indexed read followed by a constant-time compare. The plaintext exists once: when it is created and shown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from domain.kommuner import is_kommune, normalize_kode
from eventlog.db import Pool, unavailable_as_store_error

# "ops" keys (`sfo.…`) were bearer tokens for staff before people had their own identities (runtime/identity.py):
# no command issues one any more and no API route accepts one; the role stays so that old rows still read and list.
Role = Literal["kommune", "ops"]
PREFIX: dict[Role, str] = {"kommune": "sfk", "ops": "sfo"}
ROLE_OF_PREFIX: dict[str, Role] = {v: k for k, v in PREFIX.items()}
# Compared against when the key id is unknown, so a miss costs about as much as a hit.
_DUMMY_HASH = hashlib.sha256(b"sagsflow-no-such-key").digest()


class AuthError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: str
    kommune_kode: str | None = None


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as operators see it: ids and metadata, never the secret or its hash."""

    key_id: str
    role: Role
    kommune_kode: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _split(presented: str) -> tuple[Role, str, str] | None:
    parts = presented.strip().split(".")
    if len(parts) != 3:
        return None
    prefix, key_id, secret = parts
    role = ROLE_OF_PREFIX.get(prefix)
    if role is None or not key_id or not secret or len(key_id) > 64 or len(secret) > 128:
        return None
    return role, key_id, secret


def key_id_of(presented: str) -> str | None:
    parsed = _split(presented)
    return parsed[1] if parsed else None


_TEN_DIGITS = re.compile(r"\d{10}")


def new_key_id() -> str:
    """16 random hex characters without a run of ten digits. A key id is logged and stored in the access log as part
    of the actor; ten digits in a row read as a CPR number there (masked in logs, refused by the access log). The
    log mask leaves 16-hex runs alone, but an actor such as `kommune:147:<id>` must never even look like one."""
    while True:
        key_id = secrets.token_hex(8)
        if not _TEN_DIGITS.search(key_id):
            return key_id


class ApiKeys:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def _create(self, role: Role, kommune_kode: str | None, label: str) -> str:
        key_id = new_key_id()
        secret = secrets.token_urlsafe(32)
        await self._pool.execute(
            "INSERT INTO api_keys (key_id, role, kommune_kode, label, secret_hash) VALUES ($1, $2, $3, $4, $5)",
            key_id,
            role,
            kommune_kode,
            label,
            _hash(secret),
        )
        return f"{PREFIX[role]}.{key_id}.{secret}"

    async def create_kommune_key(self, kommune_kode: str, *, label: str = "") -> str:
        """A new API key for one kommune's system. Returns the plaintext: show it once, it is not stored."""
        kode = normalize_kode(kommune_kode)
        if not is_kommune(kode):
            raise AuthError(f"{kommune_kode!r} is not one of the 98 kommune codes")
        return await self._create("kommune", kode, label)

    async def revoke(self, key_id: str) -> bool:
        """Revoke by key id (the middle part of a key). False if there is no such active key."""
        result: str = await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
        )
        return result.endswith(" 1")

    async def authenticate(self, presented: str | None) -> Principal | None:
        """Whose key this is; None for a wrong, unknown, revoked or malformed one (all alike to the caller).
        `StoreUnavailable` if the database cannot answer."""
        if not presented:
            return None
        parsed = _split(presented)
        if parsed is None:
            return None
        role, key_id, secret = parsed
        async with unavailable_as_store_error():
            row = await self._pool.fetchrow(
                "SELECT role, kommune_kode, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
                key_id,
            )
        stored = bytes(row["secret_hash"]) if row is not None else _DUMMY_HASH
        if not hmac.compare_digest(_hash(secret), stored) or row is None or row["role"] != role:
            return None
        return Principal(role=role, key_id=key_id, kommune_kode=row["kommune_kode"])

    async def kommune_of(self, presented: str | None) -> str | None:
        """The kommune code a kommune key belongs to; None for anything else (unknown, revoked, an ops token)."""
        principal = await self.authenticate(presented)
        if principal is None or principal.role != "kommune":
            return None
        return principal.kommune_kode

    async def all_keys(self) -> list[ApiKeyInfo]:
        rows = await self._pool.fetch(
            "SELECT key_id, role, kommune_kode, label, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [ApiKeyInfo(**dict(r)) for r in rows]
