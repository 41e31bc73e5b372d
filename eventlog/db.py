"""Type names for asyncpg connections and rows, as the stubs see them, and the one error stores raise when the
database cannot do what was asked (so no caller outside `eventlog/` needs to know asyncpg's exceptions)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run queries and transactions alike.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Row: TypeAlias = "asyncpg.Record | Mapping[str, Any]"
# Anything that answers a one-shot query.
Db: TypeAlias = "asyncpg.Pool[asyncpg.Record] | Conn"
# What stores are built from; code outside eventlog/ names the pool by this alias, never by asyncpg.
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

# Errors with which PostgreSQL itself turns a connection away: a wrong login or database, or not accepting yet.
_REFUSALS = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.TooManyConnectionsError,
)


def postgres_refused(err: BaseException) -> bool:
    """PostgreSQL answered and said no (login, database name, too many connections)."""
    return isinstance(err, _REFUSALS)


def postgres_unreachable(err: BaseException) -> bool:
    """The connection to PostgreSQL failed or was not accepted yet."""
    return isinstance(err, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError)


class StoreUnavailable(Exception):
    """The database could not be reached, or refused the statement: nothing was read or written."""


@contextlib.asynccontextmanager
async def unavailable_as_store_error() -> AsyncIterator[None]:
    """Raise `StoreUnavailable` (from the driver's error) for a database that cannot answer, for callers that must
    tell that apart from their own failures (e.g. answer 503 instead of 500)."""
    try:
        yield
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(type(exc).__name__) from exc


async def reach(dsn: str, *, connect_timeout: float = 10) -> None:
    """Connect once and hang up: raises the driver's connection error for a database that cannot be reached."""
    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    await conn.close()


__all__ = [
    "Conn",
    "Db",
    "Pool",
    "PoolConnectionProxy",
    "Row",
    "StoreUnavailable",
    "asyncpg",
    "postgres_refused",
    "postgres_unreachable",
    "reach",
]
