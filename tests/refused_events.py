"""Make the event log's database refuse chosen events as data, the way PostgreSQL refuses a NUL in a text.

The boundary rule keeps such values out, so the tests of what happens when one gets through anyway (a value a
future field forgets to constrain, or one an external system hands back) need PostgreSQL itself to refuse: a
trigger on `events` raises SQLSTATE 22P05 (untranslatable_character, what `\\u0000` in `jsonb` raises) for the
(case, event type) pairs listed in a test-only table. Everything else is the production path: the append activity,
the store, the workflow.
"""

from __future__ import annotations

import asyncpg

SETUP = """
CREATE TABLE IF NOT EXISTS test_refused_events (case_id text NOT NULL, type text NOT NULL);
CREATE OR REPLACE FUNCTION test_refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM test_refused_events r WHERE r.case_id = NEW.case_id AND r.type = NEW.type) THEN
        RAISE EXCEPTION 'unsupported Unicode escape sequence' USING ERRCODE = 'untranslatable_character';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER test_refuse_events BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION test_refuse_events();
"""


async def refuse_events(pool: asyncpg.Pool, case_id: str, event_type: str) -> None:
    """From now on, the database refuses every `event_type` event of this case as data."""
    async with pool.acquire() as conn, conn.transaction():
        # One test database per module or test: the first call sets it up; concurrent calls must not race on DDL.
        await conn.execute("SELECT pg_advisory_xact_lock(7712)")
        await conn.execute(SETUP)
        await conn.execute("INSERT INTO test_refused_events (case_id, type) VALUES ($1, $2)", case_id, event_type)
