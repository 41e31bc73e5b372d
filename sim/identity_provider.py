"""A stand-in for an organisation's OpenID Connect provider: it publishes a JWKS over HTTP and signs access tokens,
so the production verifier (runtime/identity.py) is exercised against the real protocol in tests and soaks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

JWKS_PATH = "/.well-known/jwks.json"


class IdentityProvider:
    def __init__(self, issuer: str, audience: str, kid: str = "idp-key-1") -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(
        self, subject: str, roles: Iterable[str], *, ttl: float = 600.0, extra: Mapping[str, Any] | None = None
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + int(ttl),
            "roles": list(roles),
            **(extra or {}),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get(JWKS_PATH)
        async def jwks() -> dict[str, Any]:
            return self.jwks()

        return app
