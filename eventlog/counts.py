"""Counts over a chosen set of cases, read from the event log itself (the system of record), not the projections.

The simulator's summary uses them: its run's cases are known by id, and the log may hold other runs too. Events come
back without personal data. The pool must come from `eventlog.store.create_pool` (its jsonb codec decodes `data`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime

import asyncpg

from domain.events import Event
from eventlog.store import case_streams


class SimulationRefused(ValueError):
    """The database is not one a simulation may write into; the message says why (no personal data)."""


class SimulationRuns:
    """Which simulations wrote into a log: a simulation claims its run before writing a single event."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, *, seed: int, start: date, weeks: int, rate_per_week: float) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # One claim at a time, so two runs cannot both find the log empty.
            await conn.execute("LOCK TABLE simulation_runs IN SHARE ROW EXCLUSIVE MODE")
            if await conn.fetchval("SELECT 1 FROM simulation_runs WHERE seed = $1", seed):
                raise SimulationRefused(
                    f"the event log already holds a simulation with seed {seed}: use a fresh database"
                )
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM simulation_runs)") and await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM events)"
            ):
                raise SimulationRefused(
                    "the database holds events that no simulation wrote (a real event log?): a simulation writes only"
                    " into a database of its own"
                )
            await conn.execute(
                "INSERT INTO simulation_runs (seed, start_date, weeks, rate_per_week) VALUES ($1, $2, $3, $4)",
                seed,
                start,
                weeks,
                rate_per_week,
            )


class CaseCounts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def has_case(self, case_id: str) -> bool:
        """Whether any event of `case_id` is stored."""
        return await self.pool.fetchval("SELECT 1 FROM events WHERE case_id = $1 LIMIT 1", case_id) is not None

    async def count_of_type(self, event_type: str) -> int:
        """Events of one type in the whole log."""
        return int(await self.pool.fetchval("SELECT count(*) FROM events WHERE type = $1", event_type))

    async def received_at(self, case_ids: Sequence[str]) -> list[tuple[str, datetime]]:
        """(case id, when its application was received) for those of `case_ids` that have one, earliest first."""
        rows = await self.pool.fetch(
            "SELECT case_id, occurred_at FROM events WHERE type = 'ApplicationReceived'"
            " AND case_id = ANY($1::text[]) ORDER BY occurred_at",
            list(case_ids),
        )
        return [(r["case_id"], r["occurred_at"]) for r in rows]

    async def count_by_type(self, case_ids: Sequence[str]) -> dict[str, int]:
        """Events of `case_ids` per event type."""
        rows = await self.pool.fetch(
            "SELECT type, count(*) AS n FROM events WHERE case_id = ANY($1::text[]) GROUP BY type", list(case_ids)
        )
        return {r["type"]: int(r["n"]) for r in rows}

    async def decision_outcomes(self, case_ids: Sequence[str]) -> dict[str, int]:
        """Decisions made on `case_ids` per outcome."""
        rows = await self.pool.fetch(
            "SELECT data->>'outcome' AS outcome, count(*) AS n FROM events"
            " WHERE type = 'DecisionMade' AND case_id = ANY($1::text[]) GROUP BY 1",
            list(case_ids),
        )
        return {r["outcome"]: int(r["n"]) for r in rows}

    async def cases_with(self, event_type: str, case_ids: Sequence[str]) -> set[str]:
        """Those of `case_ids` with at least one event of `event_type`."""
        rows = await self.pool.fetch(
            "SELECT case_id FROM events WHERE type = $1 AND case_id = ANY($2::text[])", event_type, list(case_ids)
        )
        return {r["case_id"] for r in rows}

    async def streams(self, case_ids: Sequence[str]) -> AsyncIterator[list[Event]]:
        """Each of `case_ids`' events in stream order, one case at a time (cases without events are skipped)."""
        async for events in case_streams(
            self.pool,
            "SELECT event_id, case_id, type, schema_version, occurred_at, data - 'personal' AS data FROM events"
            " WHERE case_id = ANY($1::text[]) ORDER BY case_id, stream_version",
            list(case_ids),
        ):
            yield events
