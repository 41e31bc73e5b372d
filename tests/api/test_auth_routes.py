"""Kommune keys and staff tokens as a client meets them: on the real routes of the app `sagsflow api` builds, with
the identity a credential carries visible in what the route answers (the kommune's own task, the access log's actor).
Which role may call which route is tests/api/test_role_matrix.py's."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from cli.api import build_app
from eventlog.access import AccessLog
from eventlog.api_keys import ApiKeys, key_id_of
from eventlog.store import create_pool
from runtime.config import Settings
from runtime.httpserve import serve
from runtime.identity import LOCAL_KEY_FILE, LocalIssuer
from sim.identity_provider import JWKS_PATH, IdentityProvider
from tests.api.conftest import Stack, fresh_database


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_keys_and_tokens_on_the_real_routes(stack: Stack) -> None:
    case_id = str((await stack.apply("461"))["case_id"])
    task_id = await stack.open_task(case_id)
    kommune_key = await ApiKeys(stack.pool).create_kommune_key("461")
    other_kommune = await ApiKeys(stack.pool).create_kommune_key("751")
    caseworker = stack.token("Karin Sagsbehandler", "caseworker")
    reader = stack.token("Rita Læser", "reader")
    expired = stack.issuer.mint("Karin Sagsbehandler", ["caseworker"], ttl=timedelta(minutes=-5))
    # Signed by a key that is not the API's issuer's: a token from another stack, or a forgery.
    foreign = LocalIssuer(stack.issuer.key_path.parent / "other" / "key.pem").mint("Mallory", ["team-lead"])
    revoked = await ApiKeys(stack.pool).create_kommune_key("461")
    await ApiKeys(stack.pool).revoke(key_id_of(revoked) or "")
    task_path = f"/v1/kommune/tasks/{task_id}"
    case_path = f"/v1/ops/cases/{case_id}"
    purpose = {"purpose": "test: who reads"}

    # A kommune key acts as its kommune: it sees the kommune's inbox and task, and another kommune's key does not.
    own = await stack.http.get(task_path, headers=bearer(kommune_key))
    assert own.status_code == 200, own.text
    assert own.json()["task_id"] == task_id
    inbox = await stack.http.get("/v1/kommune/tasks", headers=bearer(kommune_key))
    assert inbox.status_code == 200, inbox.text
    assert {(m["message"]["task_id"], m["message"]["kommune_kode"]) for m in inbox.json()["messages"]} >= {
        (task_id, "461")
    }
    assert (await stack.http.get(task_path, headers=bearer(other_kommune))).status_code == 404

    # A person reads as themselves: the access log names each by their subject.
    before = len(await AccessLog(stack.pool).find(case_id=case_id))
    for token in (caseworker, reader):
        r = await stack.http.get(case_path, params=purpose, headers=bearer(token))
        assert r.status_code == 200, r.text
    actors = [a.actor for a in (await AccessLog(stack.pool).find(case_id=case_id))[before:]]
    assert actors == ["staff:karin-sagsbehandler", "staff:rita-laeser"]

    refusals = [
        await stack.http.get(task_path),
        await stack.http.get(task_path, headers=bearer(revoked)),
        await stack.http.get(task_path, headers=bearer(kommune_key + "x")),
        await stack.http.get(task_path, headers={"Authorization": kommune_key}),  # no scheme
        await stack.http.get(case_path, params=purpose),
        await stack.http.get(case_path, params=purpose, headers=bearer("nope")),
        await stack.http.get(case_path, params=purpose, headers=bearer(expired)),
        await stack.http.get(case_path, params=purpose, headers=bearer(foreign)),
        await stack.http.get(case_path, params=purpose, headers=bearer(caseworker + "x")),
    ]
    for r in refusals:
        assert r.status_code == 401
        assert r.json() == {"detail": "Not authenticated"}  # the same answer whatever was wrong
        assert r.headers["www-authenticate"] == "Bearer"
    # Known callers at the wrong door: a person on a kommune's route, a kommune on a person's.
    for r in (
        await stack.http.get(task_path, headers=bearer(caseworker)),
        await stack.http.get(case_path, params=purpose, headers=bearer(kommune_key)),
    ):
        assert r.status_code == 403, r.text
    # Refused reads are not reads: nothing more in the access log.
    assert len(await AccessLog(stack.pool).find(case_id=case_id)) == before + 2


async def test_a_persons_token_still_works_when_the_database_is_gone(
    dev_env: WorkflowEnvironment, pg_server_url: str, tmp_path: Path
) -> None:
    async with fresh_database(pg_server_url) as db_url:
        pool = await create_pool(db_url, max_size=2)
        try:
            kommune_key = await ApiKeys(pool).create_kommune_key("461")
        finally:
            await pool.close()
        settings = Settings(
            TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
            DATABASE_URL=db_url,
            SAGSFLOW_DATA_DIR=tmp_path,
        )
        unknown_case = f"/v1/ops/cases/case-{uuid.uuid4()}"
        purpose = {"purpose": "test: who reads"}
        app = build_app(settings)
        person = LocalIssuer(tmp_path / LOCAL_KEY_FILE).mint("Karin Sagsbehandler", ["caseworker"])
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert (await http.get("/v1/kommune/tasks", headers=bearer(kommune_key))).status_code == 200
            assert (await http.get(unknown_case, params=purpose, headers=bearer(person))).status_code == 404

            # The database goes away under the running API (FORCE ends the API's own connections to it).
            admin = await asyncpg.connect(pg_server_url)
            try:
                await admin.execute(f'DROP DATABASE "{db_url.rpartition("/")[2]}" WITH (FORCE)')
            finally:
                await admin.close()

            # A person's token is checked by its signature, not the database: the route runs and finds no such case.
            read = await http.get(unknown_case, params=purpose, headers=bearer(person))
            assert read.status_code == 404, read.text
            # Kommune keys cannot be checked: "unavailable", not "not authenticated".
            r = await http.get("/v1/kommune/tasks", headers=bearer(kommune_key))
            assert r.status_code == 503, r.text
            assert r.json() == {"detail": "authentication is unavailable"}


async def test_the_api_takes_an_identity_providers_tokens_when_configured_so(
    dev_env: WorkflowEnvironment, pg_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's path: `sagsflow api` configured with an OpenID Connect provider (here the stand-in, its JWKS
    served over HTTP) reads the person and their roles from the provider's token, with roles from a nested claim."""
    provider = IdentityProvider(issuer="https://login.kommune.example", audience="sagsflow-api")
    async with fresh_database(pg_server_url) as db_url, serve(provider.app()) as idp_url:
        # As an operator configures it: the environment.
        monkeypatch.setenv("SAGSFLOW_OIDC_ISSUER", provider.issuer)
        monkeypatch.setenv("SAGSFLOW_OIDC_AUDIENCE", "sagsflow-api")
        monkeypatch.setenv("SAGSFLOW_OIDC_JWKS_URL", idp_url + JWKS_PATH)
        monkeypatch.setenv("SAGSFLOW_OIDC_ROLES_CLAIM", "realm_access.roles")
        settings = Settings(
            TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
            DATABASE_URL=db_url,
            SAGSFLOW_DATA_DIR=tmp_path,
        )
        app = build_app(settings)
        reader = provider.token("7f3e", [], extra={"realm_access": {"roles": ["reader"]}, "name": "Rita Læser"})
        intake = provider.token("intake-1", [], extra={"realm_access": {"roles": ["intake"]}})
        wrong_audience = IdentityProvider(issuer=provider.issuer, audience="another-api")
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.get("/v1/ops/backlog", headers=bearer(reader))
            assert r.status_code == 200, r.text
            who = await http.get("/v1/whoami", headers=bearer(reader))
            assert who.json() == {
                "kind": "staff",
                "actor": "staff:7f3e",
                "name": "Rita Læser",
                "roles": ["reader"],
                "kommune_kode": None,
            }
            assert (await http.get("/v1/ops/backlog", headers=bearer(intake))).status_code == 403
            # Our own local issuer's tokens mean nothing here, nor does a token the provider made for another API.
            local = LocalIssuer(tmp_path / LOCAL_KEY_FILE).mint("Karin", ["caseworker"])
            other = wrong_audience.token("7f3e", ["reader"])
            for token in (local, other):
                assert (await http.get("/v1/ops/backlog", headers=bearer(token))).status_code == 401
