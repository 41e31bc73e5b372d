"""The one p90 and median: what eventlog.figures computes in Python is what PostgreSQL computes for
eventlog.queries, for every sample size up to well past where a float rank could slip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventlog.figures import median, p90, p90_value
from eventlog.store import create_pool


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url)
    yield p
    await p.close()


def test_p90_is_a_value_that_occurred() -> None:
    assert p90([]) is None and median([]) is None
    assert p90([10.0, 20.0, 30.0]) == 30.0  # interpolation would say 28
    assert p90_value([float(n) for n in range(1, 11)]) == 9.0  # 9 of 10 values do not exceed it
    assert p90_value([float(n) for n in range(1, 12)]) == 10.0
    assert p90([1.26]) == 1.3 and median([1.0, 2.0]) == 1.5


async def test_sql_takes_the_same_rank(pool: asyncpg.Pool) -> None:
    for n in range(1, 301):
        # Shuffled, distinct values: a rank off by one shows.
        xs = [float((i * 7919) % (n + 13)) + i / 1000 for i in range(n)]
        row = await pool.fetchrow(
            "SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY v) AS p90,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS median FROM unnest($1::float8[]) AS v",
            xs,
        )
        assert row is not None
        assert row["p90"] == p90_value(xs), n
        assert round(row["median"], 1) == median(xs), n
