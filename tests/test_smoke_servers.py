"""The embedded servers start from the wheels, answer, and stop."""

from __future__ import annotations

import asyncpg
from temporalio.testing import WorkflowEnvironment

from sagsflow import search_attributes


async def test_postgres_answers_and_is_migrated(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert int(str(version).split(".")[0]) >= 15
    assert {"events", "schema_migrations"} <= tables


async def test_dev_server_has_our_search_attributes(dev_env: WorkflowEnvironment) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    resp = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=dev_env.client.namespace)
    )
    assert set(search_attributes.REGISTRATION) <= set(resp.custom_attributes)
