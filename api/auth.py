"""Who is calling: kommune API keys and staff identities, and the FastAPI dependencies that demand them.

`resolve_principal` is the one place that turns an Authorization header into a caller: a kommune system's API key
(`sfk.…`, issued, stored and checked by `eventlog.api_keys`) or a person's bearer token (runtime/identity.py). The
dependencies answer 401 with no hint why (wrong, unknown, revoked, expired and malformed credentials all look the
same), 403 to a known caller without the right, and 503 when we cannot tell who is calling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.state import ApiDeps
from eventlog.db import StoreUnavailable
from runtime.identity import IdentityUnavailable, InvalidToken, Role, Staff

KOMMUNE_KEY_PREFIX = "sfk."


@dataclass(frozen=True)
class KommunePrincipal:
    kommune_kode: str
    key_id: str

    @property
    def actor(self) -> str:
        """What the access log and the request log record for this kommune system."""
        return f"kommune:{self.kommune_kode}:{self.key_id}"


# --- FastAPI dependencies ----------------------------------------------------------------------------------------

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A kommune API key (`sfk.…`), or a person's (or the intake system's) bearer token: a JWT from the"
    " organisation's OpenID Connect provider, or from `sagsflow staff add` on the embedded default.",
)


def _unauthorized() -> HTTPException:
    return HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})


async def require_kommune(
    request: Request, _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> KommunePrincipal:
    caller = await caller_of(request)
    if caller is None:
        raise _unauthorized()
    if not isinstance(caller, KommunePrincipal):
        raise _forbidden()
    return caller


# --- One seam: who is calling -----------------------------------------------------------------------------------

Caller = KommunePrincipal | Staff
# Where a request's resolved caller is kept (by api.limits.InputLimits, before the body is read, or by caller_of).
CALLER_KEY = "caller"


class CallerUnknowable(Exception):
    """The key store or the identity provider is out of reach: 503, never a 401 that would blame the caller."""


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def resolve_principal(deps: ApiDeps, authorization: str | None) -> Caller | None:
    """The caller an Authorization header names, or None when it names nobody we accept."""
    token = bearer_token(authorization)
    if token is None:
        return None
    if token.startswith(KOMMUNE_KEY_PREFIX):
        if deps.database is None:
            raise CallerUnknowable
        try:
            principal = await deps.database.api_keys.authenticate(token)
        except StoreUnavailable:
            raise CallerUnknowable from None
        if principal is None or principal.role != "kommune" or principal.kommune_kode is None:
            return None
        return KommunePrincipal(kommune_kode=principal.kommune_kode, key_id=principal.key_id)
    if deps.staff_verifier is None:
        raise CallerUnknowable
    try:
        return await deps.staff_verifier.verify(token)
    except InvalidToken:
        return None
    except IdentityUnavailable:
        raise CallerUnknowable from None


async def caller_of(request: Request) -> Caller | None:
    """The request's caller, resolved once per request (the input-limits middleware may have done it already)."""
    state = request.scope.setdefault("state", {})
    if CALLER_KEY not in state:
        try:
            state[CALLER_KEY] = await resolve_principal(deps_of_app(request), request.headers.get("authorization"))
        except CallerUnknowable:
            raise HTTPException(status_code=503, detail="authentication is unavailable") from None
    caller: Caller | None = state[CALLER_KEY]
    return caller


def actor_of(caller: Caller) -> str:
    return caller.actor


def deps_of_app(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


def _forbidden() -> HTTPException:
    return HTTPException(status_code=403, detail="Not permitted for this caller")


def require_staff(*roles: Role) -> Any:
    """A dependency: the calling person, who must hold one of `roles` (any role at all when none are named)."""

    async def staff(
        request: Request, _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
    ) -> Staff:
        caller = await caller_of(request)
        if caller is None:
            raise _unauthorized()
        if not isinstance(caller, Staff) or (roles and not caller.has_any(roles)) or not caller.roles:
            raise _forbidden()
        return caller

    return Depends(staff)
