"""Every statement the services send PostgreSQL is bounded: a hung query, a lock nobody releases and a server that
accepts connections but never answers each end in an error the caller handles, not in a wait without end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from eventlog.db import StoreUnavailable, unavailable_as_store_error
from eventlog.store import EventStore, create_pool
from runtime.config import get_settings
from tests.eventlog.builders import happy_case


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SAGSFLOW_DB_STATEMENT_TIMEOUT", "0.5")
    monkeypatch.setenv("SAGSFLOW_DB_CONNECT_TIMEOUT", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_a_statement_that_runs_too_long_is_cancelled_and_the_pool_goes_on(
    db_url: str, short_timeouts: None
) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        with pytest.raises(StoreUnavailable):
            async with unavailable_as_store_error():
                await pool.fetchval("SELECT pg_sleep(30)")
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_an_append_behind_a_lock_nobody_releases_fails_instead_of_waiting(
    db_url: str, short_timeouts: None
) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=2)
    holder = await asyncpg.connect(db_url)
    case = happy_case("case-locked-1")
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(asyncpg.QueryCanceledError):
            await EventStore(pool).append(case.case_id, 0, case.events)
        await lock.rollback()
        # Once the lock is gone, the same append goes through: the cancelled one wrote nothing.
        await EventStore(pool).append(case.case_id, 0, case.events)
        assert await pool.fetchval("SELECT count(*) FROM events WHERE case_id = $1", case.case_id) == len(case.events)
    finally:
        await holder.close()
        await pool.close()


async def test_a_server_that_never_answers_is_given_up(short_timeouts: None) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, then say nothing, as a hung host or a stuck proxy would

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError):
            await create_pool(f"postgresql://postgres@127.0.0.1:{port}/postgres", min_size=1, max_size=1)
    finally:
        server.close()
