"""Versioned SQL migrations, applied at start-up: idempotent, each recorded once, serialised by an advisory lock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import cast

import asyncpg

# Any constant works, as long as every Sagsflow process agrees on it.
MIGRATION_LOCK_KEY = 0x5A65F10


def migration_files() -> list[tuple[str, str]]:
    root = resources.files("eventlog.migrations")
    names = sorted(p.name for p in root.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), root.joinpath(name).read_text(encoding="utf-8")) for name in names]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply what is missing; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def migrated_pool(dsn: str, *, max_size: int = 2, connect_timeout: float = 5.0) -> AsyncIterator[asyncpg.Pool]:
    """A small pool for a one-shot command, on a database brought up to date first. `connect_timeout` is short so
    that an unreachable database fails the command quickly."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=connect_timeout)
    try:
        async with pool.acquire() as conn:
            await migrate(cast(asyncpg.Connection, conn))  # the pool's proxy stands in for the connection
        yield pool
    finally:
        await pool.close()
