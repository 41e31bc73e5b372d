"""What the forecast reads from the log: every case's state as of an instant (`domain.forecast` does the rest).

"As of" is business time: only events stamped at or before the instant are read, so a forecast made today for a
past date sees exactly what could have been known then, however much the log has grown since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.forecast import Parameters, Snapshot, estimate, snapshot
from domain.state import CaseState, fold
from eventlog.store import case_streams

# Personal fields are never read (a forecast must work after shredding); nothing stamped after the instant is read.
_STREAMS_AS_OF = (
    "SELECT event_id, case_id, type, schema_version, occurred_at, data - 'personal' AS data FROM events"
    " WHERE occurred_at <= $1 ORDER BY case_id, stream_version"
)


@dataclass(frozen=True)
class ForecastInput:
    """The parameters estimated from the log as of `as_of` and the open cases to start from."""

    parameters: Parameters
    snapshot: Snapshot
    events_read: int
    last_event_at: datetime | None  # the latest stamp read (never after `as_of`)


class ForecastStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def last_event_at(self) -> datetime | None:
        """The latest business time in the log: where a forecast of a finished (simulated) history starts."""
        async with self.pool.acquire() as conn:
            value: datetime | None = await conn.fetchval("SELECT max(occurred_at) FROM events")
        return value

    async def states_as_of(self, as_of: datetime) -> tuple[list[CaseState], int, datetime | None]:
        """Each case folded through `domain.evolve` from its events stamped at or before `as_of`; with how many
        events that was and the latest stamp among them."""
        states: list[CaseState] = []
        count, last = 0, None
        async for events in case_streams(self.pool, _STREAMS_AS_OF, as_of):
            count += len(events)
            stamp = max(e.occurred_at for e in events)
            last = stamp if last is None else max(last, stamp)
            states.append(fold(events))
        return states, count, last

    async def read(self, as_of: datetime) -> ForecastInput:
        states, count, last = await self.states_as_of(as_of)
        return ForecastInput(estimate(states, as_of), snapshot(states, as_of), count, last)
