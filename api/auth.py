"""Who is calling: FastAPI dependencies for kommune API keys and operations bearer tokens.

Keys are issued, stored and checked by `eventlog.api_keys`. `require_kommune` / `require_ops` read the stores (and
the configured static ops token, which the dev stack prints) from `request.app.state.deps` and answer 401 with no
hint why: wrong, unknown, revoked and malformed keys all look the same to the caller.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.state import ApiDeps
from eventlog.api_keys import ApiKeys, Principal
from eventlog.db import StoreUnavailable
from eventlog.stores import Stores


@dataclass(frozen=True)
class KommunePrincipal:
    kommune_kode: str
    key_id: str


@dataclass(frozen=True)
class OpsPrincipal:
    actor: str  # the key id, or "ops-token" for the configured static token: what the access log records


# --- FastAPI dependencies ----------------------------------------------------------------------------------------

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A kommune API key (`sfk.…`) or an operations token (`sfo.…` or the stack's ops token).",
)


def _unauthorized() -> HTTPException:
    return HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})


def _stores(request: Request) -> Stores | None:
    deps = getattr(request.app.state, "deps", None)
    return deps.database if isinstance(deps, ApiDeps) else None


def _api_keys(request: Request) -> ApiKeys:
    stores = _stores(request)
    if stores is None:
        raise HTTPException(status_code=503, detail="authentication is unavailable")
    return stores.api_keys


async def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    if credentials is None:
        return None
    try:
        return await _api_keys(request).authenticate(credentials.credentials)
    except StoreUnavailable:
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
    if _stores(request) is None:
        raise _unauthorized()  # only the static token could have matched
    principal = await _principal(request, credentials)
    if principal is None or principal.role != "ops":
        raise _unauthorized()
    return OpsPrincipal(actor=principal.key_id)


# --- Who is calling, before anything is read ---------------------------------------------------------------------


async def resolve_principal(deps: ApiDeps, authorization: str | None) -> object | None:
    """The one "who is calling" seam, asked by `api.limits.InputLimits` from the Authorization header alone, before
    the body is read: a `KommunePrincipal`, an `OpsPrincipal`, or None (no, wrong, unknown, revoked or malformed
    credentials, all alike). Whether the caller may use the route is still the route's dependency's question.
    `StoreUnavailable` if the keys cannot be checked."""
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return None
    # The static token first: it needs no database, so the stack's operators keep working when PostgreSQL is gone.
    if deps.ops_token and hmac.compare_digest(presented.encode(), deps.ops_token.encode()):
        return OpsPrincipal(actor="ops-token")
    if deps.database is None:
        raise StoreUnavailable("the database is not connected")
    principal = await deps.database.api_keys.authenticate(presented)
    if principal is None:
        return None
    if principal.role == "kommune" and principal.kommune_kode is not None:
        return KommunePrincipal(kommune_kode=principal.kommune_kode, key_id=principal.key_id)
    if principal.role == "ops":
        return OpsPrincipal(actor=principal.key_id)
    return None
