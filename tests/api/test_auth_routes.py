"""Kommune keys and ops tokens as a client meets them: on the real routes of the app `sagsflow api` builds, with the
identity a key carries visible in what the route answers (the kommune's own task, the access log's actor)."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment

from cli.api import build_app
from eventlog.access import AccessLog
from eventlog.api_keys import ApiKeys, key_id_of
from eventlog.store import create_pool
from runtime.config import Settings
from runtime.httpserve import serve
from tests.api.conftest import OPS_TOKEN, Stack, fresh_database


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_keys_and_tokens_on_the_real_routes(stack: Stack) -> None:
    case_id = str((await stack.apply("461"))["case_id"])
    task_id = await stack.open_task(case_id)
    kommune_key = await ApiKeys(stack.pool).create_kommune_key("461")
    other_kommune = await ApiKeys(stack.pool).create_kommune_key("751")
    ops_token = await ApiKeys(stack.pool).create_ops_token()
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

    # An ops token reads as itself: the access log names the token's key id, or the stack's own token.
    before = len(await AccessLog(stack.pool).find(case_id=case_id))
    for token in (ops_token, OPS_TOKEN):
        r = await stack.http.get(case_path, params=purpose, headers=bearer(token))
        assert r.status_code == 200, r.text
    actors = [a.actor for a in (await AccessLog(stack.pool).find(case_id=case_id))[before:]]
    assert actors == [key_id_of(ops_token), "ops-token"]

    refusals = [
        await stack.http.get(task_path),
        await stack.http.get(task_path, headers=bearer(revoked)),
        await stack.http.get(task_path, headers=bearer(kommune_key + "x")),
        await stack.http.get(task_path, headers=bearer(ops_token)),
        await stack.http.get(task_path, headers=bearer(OPS_TOKEN)),
        await stack.http.get(task_path, headers={"Authorization": kommune_key}),  # no scheme
        await stack.http.get(case_path, params=purpose),
        await stack.http.get(case_path, params=purpose, headers=bearer(kommune_key)),
        await stack.http.get(case_path, params=purpose, headers=bearer("nope")),
    ]
    for r in refusals:
        assert r.status_code == 401
        assert r.json() == {"detail": "Not authenticated"}  # the same answer whatever was wrong
        assert r.headers["www-authenticate"] == "Bearer"
    # Refused reads are not reads: nothing more in the access log.
    assert len(await AccessLog(stack.pool).find(case_id=case_id)) == before + 2


async def test_the_stacks_ops_token_still_works_when_the_database_is_gone(
    dev_env: WorkflowEnvironment, pg_server_url: str, tmp_path: Path
) -> None:
    async with fresh_database(pg_server_url) as db_url:
        pool = await create_pool(db_url, max_size=2)
        try:
            kommune_key = await ApiKeys(pool).create_kommune_key("461")
            ops_token = await ApiKeys(pool).create_ops_token()
        finally:
            await pool.close()
        settings = Settings(
            TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
            DATABASE_URL=db_url,
            SAGSFLOW_DATA_DIR=tmp_path,
            ops_token=OPS_TOKEN,
        )
        unknown_case = f"/v1/ops/cases/case-{uuid.uuid4()}"
        purpose = {"purpose": "test: who reads"}
        async with serve(build_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert (await http.get("/v1/kommune/tasks", headers=bearer(kommune_key))).status_code == 200
            assert (await http.get(unknown_case, params=purpose, headers=bearer(ops_token))).status_code == 404

            # The database goes away under the running API (FORCE ends the API's own connections to it).
            admin = await asyncpg.connect(pg_server_url)
            try:
                await admin.execute(f'DROP DATABASE "{db_url.rpartition("/")[2]}" WITH (FORCE)')
            finally:
                await admin.close()

            # The stack's token needs no database to be checked: the route runs and finds no such case.
            static = await http.get(unknown_case, params=purpose, headers=bearer(OPS_TOKEN))
            assert static.status_code == 404, static.text
            # Keys and issued tokens cannot be checked: "unavailable", not "not authenticated".
            for r in (
                await http.get("/v1/kommune/tasks", headers=bearer(kommune_key)),
                await http.get(unknown_case, params=purpose, headers=bearer(ops_token)),
                await http.get(unknown_case, params=purpose, headers=bearer("sfo.a.b")),
            ):
                assert r.status_code == 503, r.text
                assert r.json() == {"detail": "authentication is unavailable"}
