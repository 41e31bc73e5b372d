"""Versioned SQL migrations, applied at start-up: idempotent, each recorded once, serialised by an advisory lock."""

from __future__ import annotations

from importlib import resources

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
