"""Real servers for the tests, all from PyPI wheels: PostgreSQL, the time-skipping test server, the dev server.

`DATABASE_URL` points the tests at another PostgreSQL (each test still gets a fresh database of its own).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from temporalio.testing import WorkflowEnvironment

from eventlog.migrate import migrate_dsn
from runtime.crypto import KeyRing
from runtime.embedded import EmbeddedPostgres, free_port, venv_binary
from runtime.temporal import data_converter
from workflows import search_attributes

# The tests point processes at servers they started themselves, as the embedded dev stack does: development mode,
# whose processes may generate their dev keys. Tests of production mode set SAGSFLOW_ENV themselves.
os.environ.setdefault("SAGSFLOW_ENV", "development")

# The properties hold or fail whatever the speed: on a shared 2-core machine running two test workers, a slow draw is
# load, not a finding. Tests that set their own settings keep them; the example counts are unchanged.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("suite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a `slow` test run first (otherwise in collection order). `make test` hands whole modules to
    its two workers in this order: a two-minute test started last would leave one worker idle for its length."""
    slow = {item.nodeid.partition("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.partition("::")[0] not in slow)


@pytest.fixture(scope="session")
def key_ring() -> KeyRing:
    return KeyRing.generate("test-1")


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    root: Path = tmp_path_factory.mktemp("pg")
    server = EmbeddedPostgres(root / "data", free_port(), log_file=root / "postgres.log")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def db_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(pg_server_url, name)
    await migrate_dsn(url)
    yield url
    # No FORCE: terminating a test's still-open connections mid-teardown once sent the shared server into
    # recovery under load. A database still in use is left behind; the test cluster is thrown away anyway.
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    except asyncpg.ObjectInUseError:
        pass
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def time_skipping_env(key_ring: KeyRing) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=data_converter(key_ring),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env(key_ring: KeyRing) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        data_converter=data_converter(key_ring),
        search_attributes=list(search_attributes.ALL),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=true",
            "--log-level",
            "error",
        ],
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()
