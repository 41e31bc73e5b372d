"""Staff identities: who a person is and which roles they hold, from a verified bearer token.

Production authenticates people with OpenID Connect: the identity provider signs a JWT, and we check its signature
against the provider's JWKS, its issuer, audience and expiry (PyJWT). Roles come from a configurable claim (dotted
for nested claims, e.g. Keycloak's ``realm_access.roles``). The embedded default has no identity provider, so it keeps
a local issuer: an EC key in the data dir that ``sagsflow staff add`` signs demo tokens with, verified by the same
code path as a provider's tokens.

Role names are the ones the service owner gave: ``caseworker`` reads cases, decides, asks and answers questions;
``team-lead`` also grants extensions beyond policy, transfers and withdraws; ``reader`` only reads; ``auditor`` reads
the access log; ``intake`` is a system that files applications.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

Role = Literal["caseworker", "team-lead", "reader", "auditor", "intake"]
ROLES: tuple[Role, ...] = get_args(Role)
LOCAL_ISSUER = "sagsflow-local"
LOCAL_AUDIENCE = "sagsflow"
LOCAL_KEY_FILE = "staff-issuer-key.pem"
# Tokens a person pastes into a login form or a shell: long enough for a working day, short enough to expire.
DEFAULT_TTL = timedelta(hours=12)
_ALGORITHMS = ["ES256", "RS256", "PS256", "EdDSA"]


class InvalidToken(Exception):
    """The token is not one we accept: bad signature, wrong issuer or audience, expired, or malformed. Deliberately
    carries no detail to show a caller."""


class IdentityUnavailable(Exception):
    """The identity provider's keys cannot be fetched: we cannot tell who is calling (503, not 401)."""


@dataclass(frozen=True)
class Staff:
    subject: str
    name: str
    roles: frozenset[Role]

    @property
    def actor(self) -> str:
        """What events and the access log record: the identity provider's stable subject, not the display name."""
        return f"staff:{self.subject}"

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)


class StaffVerifier(Protocol):
    async def verify(self, token: str) -> Staff:
        """The person a token names; InvalidToken if it is not acceptable, IdentityUnavailable if keys are out of
        reach."""
        ...


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def staff_from_claims(claims: Mapping[str, Any], *, roles_claim: str, name_claim: str) -> Staff:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken
    raw_roles = _claim(claims, roles_claim)
    if isinstance(raw_roles, str):
        raw_roles = raw_roles.split()
    roles = (
        frozenset(r for r in raw_roles or () if r in ROLES)
        if isinstance(raw_roles, list | str | tuple)
        else frozenset()
    )
    name = _claim(claims, name_claim)
    return Staff(subject=subject, name=name if isinstance(name, str) and name else subject, roles=roles)


class OidcVerifier:
    """Verifies an identity provider's access tokens against its published JWKS."""

    def __init__(
        self, *, issuer: str, audience: str, jwks_url: str, roles_claim: str = "roles", name_claim: str = "name"
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.name_claim = name_claim
        # PyJWKClient caches the key set and refetches on an unknown kid, so a provider's key rotation just works.
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    async def verify(self, token: str) -> Staff:
        try:
            # The JWKS fetch is blocking urllib; keep it off the event loop.
            signing_key = await asyncio.to_thread(self._keys.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityUnavailable from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken from exc
        return _decode(token, signing_key.key, self.issuer, self.audience, self.roles_claim, self.name_claim)


def _decode(token: str, key: Any, issuer: str, audience: str, roles_claim: str, name_claim: str) -> Staff:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=_ALGORITHMS,
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iss", "sub", "aud"]},
            leeway=30,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken from exc
    return staff_from_claims(claims, roles_claim=roles_claim, name_claim=name_claim)


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name.replace("ø", "o").replace("Ø", "O").replace("æ", "ae"))
    ascii_name = ascii_name.replace("Æ", "Ae").replace("å", "aa").replace("Å", "Aa")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.encode("ascii", "ignore").decode().lower()).strip("-")
    # A subject with a ten-digit run would look like a CPR number to the log mask.
    return re.sub(r"\d{6,}", "", slug).strip("-") or "staff"


class LocalIssuer:
    """The embedded default's identity provider: an EC P-256 key in the data dir, readable by its owner only."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._private = self._load_or_create(key_path)

    @staticmethod
    def _load_or_create(path: Path) -> ec.EllipticCurvePrivateKey:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process of the stack created it first: use theirs
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return loaded

    def mint(
        self, name: str, roles: Iterable[Role], *, subject: str | None = None, ttl: timedelta = DEFAULT_TTL
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": LOCAL_ISSUER,
            "aud": LOCAL_AUDIENCE,
            "sub": subject or _slug(name),
            "name": name,
            "roles": sorted(set(roles)),
            "iat": now,
            "exp": now + int(ttl.total_seconds()),
        }
        return jwt.encode(claims, self._private, algorithm="ES256")

    async def verify(self, token: str) -> Staff:
        return _decode(token, self._private.public_key(), LOCAL_ISSUER, LOCAL_AUDIENCE, "roles", "name")


class IdentitySettings(Protocol):
    data_dir: Path
    oidc_issuer: str | None
    oidc_audience: str | None
    oidc_jwks_url: str | None
    oidc_roles_claim: str
    oidc_name_claim: str

    def dev_fallback(self, setting: str) -> None: ...


def staff_verifier(settings: IdentitySettings) -> StaffVerifier:
    """The identity provider the settings name, or the local issuer when none is configured."""
    if settings.oidc_issuer:
        if not settings.oidc_audience or not settings.oidc_jwks_url:
            raise ValueError("SAGSFLOW_OIDC_ISSUER needs SAGSFLOW_OIDC_AUDIENCE and SAGSFLOW_OIDC_JWKS_URL as well")
        return OidcVerifier(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            roles_claim=settings.oidc_roles_claim,
            name_claim=settings.oidc_name_claim,
        )
    settings.dev_fallback("SAGSFLOW_OIDC_ISSUER")
    return LocalIssuer(settings.data_dir / LOCAL_KEY_FILE)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `12h`, `7d`: what an operator types for a token's lifetime or an overlap."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
