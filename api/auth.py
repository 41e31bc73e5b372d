"""API keys for kommune systems and bearer tokens for operations staff.

A key reads `sfk.<key id>.<secret>` (kommune) or `sfo.<key id>.<secret>` (ops). The secret is 32 random bytes
(URL-safe base64); only its SHA-256 is stored, under the key id, so a stolen table grants nothing and lookup is one
indexed read followed by a constant-time compare. The plaintext exists once: when it is created and shown.

`require_kommune` / `require_ops` are FastAPI dependencies. They read the pool (and the configured static ops token,
which the dev stack prints) from `request.app.state.deps` and answer 401 with no hint why: wrong, unknown, revoked
and malformed keys all look the same to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import asyncpg
from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from domain.kommuner import is_kommune, normalize_kode

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
class KommunePrincipal:
    kommune_kode: str
    key_id: str


@dataclass(frozen=True)
class OpsPrincipal:
    actor: str  # the key id, or "ops-token" for the configured static token: what the access log records


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


async def _create(pool: asyncpg.Pool, role: Role, kommune_kode: str | None, label: str) -> str:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO api_keys (key_id, role, kommune_kode, label, secret_hash) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        role,
        kommune_kode,
        label,
        _hash(secret),
    )
    return f"{PREFIX[role]}.{key_id}.{secret}"


async def create_key(pool: asyncpg.Pool, kommune_kode: str, *, label: str = "") -> str:
    """A new API key for one kommune's system. Returns the plaintext: show it once, it is not stored."""
    kode = normalize_kode(kommune_kode)
    if not is_kommune(kode):
        raise AuthError(f"{kommune_kode!r} is not one of the 98 kommune codes")
    return await _create(pool, "kommune", kode, label)


async def create_ops_token(pool: asyncpg.Pool, *, label: str = "") -> str:
    return await _create(pool, "ops", None, label)


def key_id_of(presented: str) -> str | None:
    parsed = _split(presented)
    return parsed[1] if parsed else None


async def revoke_key(pool: asyncpg.Pool, key_id: str) -> bool:
    """Revoke by key id (the middle part of a key). False if there is no such active key."""
    result: str = await pool.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return result.endswith(" 1")


async def authenticate_principal(pool: asyncpg.Pool, presented: str | None) -> Principal | None:
    if not presented:
        return None
    parsed = _split(presented)
    if parsed is None:
        return None
    role, key_id, secret = parsed
    row = await pool.fetchrow(
        "SELECT role, kommune_kode, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    stored = bytes(row["secret_hash"]) if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(_hash(secret), stored) or row is None or row["role"] != role:
        return None
    return Principal(role=role, key_id=key_id, kommune_kode=row["kommune_kode"])


async def authenticate(pool: asyncpg.Pool, presented: str | None) -> str | None:
    """The kommune code a kommune key belongs to; None for anything else (unknown, revoked, an ops token)."""
    principal = await authenticate_principal(pool, presented)
    if principal is None or principal.role != "kommune":
        return None
    return principal.kommune_kode


async def list_keys(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT key_id, role, kommune_kode, label, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
    )


# --- FastAPI dependencies ----------------------------------------------------------------------------------------

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A kommune API key (`sfk.…`) or an operations token (`sfo.…` or the stack's ops token).",
)


def _unauthorized() -> HTTPException:
    return HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})


def _pool(request: Request) -> asyncpg.Pool:
    pool = getattr(getattr(request.app.state, "deps", None), "pool", None)
    if not isinstance(pool, asyncpg.Pool):
        raise HTTPException(status_code=503, detail="authentication is unavailable")
    return pool


async def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    if credentials is None:
        return None
    try:
        return await authenticate_principal(_pool(request), credentials.credentials)
    except (asyncpg.PostgresError, OSError):
        raise HTTPException(status_code=503, detail="authentication is unavailable") from None


async def require_kommune(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> KommunePrincipal:
    principal = await _principal(request, credentials)
    if principal is None or principal.role != "kommune" or principal.kommune_kode is None:
        raise _unauthorized()
    return KommunePrincipal(kommune_kode=principal.kommune_kode, key_id=principal.key_id)


async def require_ops(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> OpsPrincipal:
    if credentials is None:
        raise _unauthorized()
    static = getattr(getattr(request.app.state, "deps", None), "ops_token", None)
    if static and hmac.compare_digest(credentials.credentials.encode(), str(static).encode()):
        return OpsPrincipal(actor="ops-token")
    if getattr(getattr(request.app.state, "deps", None), "pool", None) is None:
        raise _unauthorized()  # only the static token could have matched
    principal = await _principal(request, credentials)
    if principal is None or principal.role != "ops":
        raise _unauthorized()
    return OpsPrincipal(actor=principal.key_id)
