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
# What stores are built from; code outside eventlog/ names the pool by this alias, never by asyncpg.
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

__all__ = ["Conn", "Db", "Pool", "PoolConnectionProxy", "Row", "asyncpg"]
