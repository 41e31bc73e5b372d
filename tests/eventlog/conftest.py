from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventlog.personal import SubjectCipher
from eventlog.store import EventStore, create_pool
from runtime.crypto import KeyRing


@pytest.fixture
def cipher(key_ring: KeyRing) -> SubjectCipher:
    return SubjectCipher(key_ring)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=12)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def store(pool: asyncpg.Pool, cipher: SubjectCipher) -> EventStore:
    return EventStore(pool, cipher)
