"""Liveness and readiness as an orchestrator probes them: `/healthz` says the process serves, `/readyz` says whether
PostgreSQL and Temporal answer (503 while either does not), on the API exactly as `sagsflow api` builds it."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.state import ApiDeps
from cli.api import build_app
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.httpserve import serve
from tests.api.conftest import _stack_environment, fresh_database


async def test_ready_while_both_answer_and_not_once_the_database_is_gone(
    dev_env: WorkflowEnvironment, pg_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with fresh_database(pg_server_url) as db_url:
        with pytest.MonkeyPatch.context() as env:
            _stack_environment(
                env,
                {
                    "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                    "DATABASE_URL": db_url,
                    "SAGSFLOW_DATA_DIR": str(tmp_path_factory.mktemp("ready")),
                },
            )
            async with serve(build_app(Settings())) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                ready = await http.get("/readyz")
                assert (ready.status_code, ready.json()) == (
                    200,
                    {"status": "ok", "database": "ok", "temporal": "ok"},
                )
                admin = await asyncpg.connect(pg_server_url)
                try:
                    await admin.execute(f'DROP DATABASE "{db_url.rpartition("/")[2]}" WITH (FORCE)')
                finally:
                    await admin.close()
                gone = await http.get("/readyz")
                assert (gone.status_code, gone.json()) == (
                    503,
                    {"status": "unavailable", "database": "unavailable", "temporal": "ok"},
                )
                # Alive all the same: restarting the API would not bring the database back.
                assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_not_ready_before_the_services_are_connected() -> None:
    deps = ApiDeps(client=None, database=None, payload_ring=KeyRing.generate())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(deps)), base_url="http://api") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "database": "unavailable", "temporal": "unavailable"}
        assert (await http.get("/healthz")).status_code == 200
