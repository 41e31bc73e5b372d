"""Fixtures for the kommune integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh, migrated database (the `db_url` fixture)."""
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()
