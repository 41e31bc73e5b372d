"""Type names for asyncpg connections and rows, as the stubs see them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run queries and transactions alike.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Row: TypeAlias = "asyncpg.Record | Mapping[str, Any]"
# Anything that answers a one-shot query.
Db: TypeAlias = "asyncpg.Pool[asyncpg.Record] | Conn"

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


__all__ = ["Conn", "Db", "PoolConnectionProxy", "Row", "asyncpg", "postgres_refused", "postgres_unreachable"]
