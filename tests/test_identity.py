"""Staff identities: the local issuer's tokens and an OpenID Connect provider's, through the verifier the API uses,
and `sagsflow staff add` as a person runs it."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from api.app import create_app
from api.state import ApiDeps
from runtime.crypto import KeyRing
from runtime.embedded import venv_binary
from runtime.httpserve import serve
from runtime.identity import InvalidToken, LocalIssuer, OidcVerifier, Staff, staff_from_claims
from sim.identity_provider import JWKS_PATH, IdentityProvider


async def test_local_issuer_token_names_the_person_and_roles(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path / "key.pem")
    token = issuer.mint("Karin Sagsbehandler", ["caseworker", "team-lead"])
    staff = await LocalIssuer(tmp_path / "key.pem").verify(token)  # a second process reads the same key
    assert staff == Staff("karin-sagsbehandler", "Karin Sagsbehandler", frozenset({"caseworker", "team-lead"}))
    assert staff.actor == "staff:karin-sagsbehandler"
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0


async def test_local_issuer_refuses_tampered_expired_and_foreign_tokens(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path / "key.pem")
    head, _body, sig = issuer.mint("A", ["reader"]).split(".")
    forged_body = jwt.utils.base64url_encode(b'{"sub":"a","roles":["team-lead"]}').decode()
    expired = issuer.mint("A", ["reader"], ttl=timedelta(seconds=-120))
    foreign = LocalIssuer(tmp_path / "other.pem").mint("A", ["reader"])
    for token in (f"{head}.{forged_body}.{sig}", expired, foreign, "not-a-jwt", ""):
        with pytest.raises(InvalidToken):
            await issuer.verify(token)


def test_roles_come_from_a_configurable_claim_and_unknown_roles_are_dropped() -> None:
    claims = {"sub": "u1", "realm_access": {"roles": ["caseworker", "admin"]}, "preferred_username": "kb"}
    staff = staff_from_claims(claims, roles_claim="realm_access.roles", name_claim="preferred_username")
    assert staff == Staff("u1", "kb", frozenset({"caseworker"}))
    assert staff_from_claims(
        {"sub": "u2", "scope": "reader auditor"}, roles_claim="scope", name_claim="name"
    ).roles == {
        "reader",
        "auditor",
    }


async def test_oidc_tokens_are_verified_against_the_providers_jwks_over_http() -> None:
    provider = IdentityProvider(issuer="https://login.example.dk", audience="sagsflow-api")
    async with serve(provider.app()) as base:
        verifier = OidcVerifier(issuer=provider.issuer, audience="sagsflow-api", jwks_url=base + JWKS_PATH)
        staff = await verifier.verify(provider.token("b7c1", ["auditor"], extra={"name": "Revisor"}))
        assert staff == Staff("b7c1", "Revisor", frozenset({"auditor"}))
        wrong_audience = IdentityProvider(provider.issuer, "other-api", kid=provider.kid)
        for token in (
            wrong_audience.token("b7c1", ["auditor"]),  # unknown key (same kid, other key) and other audience
            provider.token("b7c1", ["auditor"], ttl=-120),
            provider.token("b7c1", ["auditor"], extra={"iss": "https://evil.example"}),
        ):
            with pytest.raises(InvalidToken):
                await verifier.verify(token)


async def test_whoami_answers_with_the_person_a_token_names(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path / "key.pem")
    deps = ApiDeps(client=None, database=None, payload_ring=KeyRing.generate(), staff_verifier=issuer)
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        token = issuer.mint("Revisor Rasmussen", ["auditor"])
        me = await client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json() == {
            "kind": "staff",
            "actor": "staff:revisor-rasmussen",
            "name": "Revisor Rasmussen",
            "roles": ["auditor"],
            "kommune_kode": None,
        }
        assert (await client.get("/v1/whoami")).status_code == 401
        assert (await client.get("/v1/whoami", headers={"Authorization": "Bearer x.y.z"})).status_code == 401


def test_staff_add_prints_only_a_token_and_refuses_unknown_roles(tmp_path: Path) -> None:
    env = {"SAGSFLOW_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    cmd = [venv_binary("sagsflow"), "staff", "add", "Karin Sagsbehandler", "--role", "caseworker", "--ttl", "1h"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    token = done.stdout.strip()
    assert "\n" not in token and token.count(".") == 2
    bad = subprocess.run([*cmd[:-2], "--role", "boss"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "boss is not a role" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stdout == ""
