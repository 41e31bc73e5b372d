"""What the forecast reads from the log: every case's state as of an instant (`domain.forecast` does the rest).

"As of" is business time: only events stamped at or before the instant are read, so a forecast made today for a
past date sees exactly what could have been known then, however much the log has grown since.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from domain.forecast import (
    BASELINE,
    Forecast,
    Parameters,
    Snapshot,
    WhatIf,
    estimate,
    forecast,
    next_forum_meeting,
    snapshot,
)
from domain.state import CaseState, fold
from eventlog.store import case_streams

# Personal fields are never read (a forecast must work after shredding); nothing stamped after the instant is read.
_STREAMS_AS_OF = (
    "SELECT event_id, case_id, type, schema_version, occurred_at, data - 'personal' AS data FROM events"
    " WHERE occurred_at <= $1 AND ($2::bigint IS NULL OR global_position <= $2) ORDER BY case_id, stream_version"
)


@dataclass(frozen=True)
class ForecastInput:
    """The parameters estimated from the log as of `as_of` and the open cases to start from."""

    parameters: Parameters
    snapshot: Snapshot
    events_read: int
    last_event_at: datetime | None  # the latest stamp read (never after `as_of`)
    first_event_at: datetime | None = None  # the earliest stamp read: how much history the rates come from

    def caution(self) -> str | None:
        """Said beside a forecast whose rates come from little history (a new system, a log just started): the
        estimator looks up to half a year back, and the backtest starts from 8 weeks."""
        began = self.snapshot.as_of
        if self.first_event_at is None:
            return "the log holds no events before the forecast's start: it shows only what the defaults imply"
        if began - self.first_event_at < THIN_LOG:
            span = began - self.first_event_at
            length = f"{span / timedelta(days=1):.1f} days" if span >= timedelta(days=1) else _hours(span)
            return (
                f"the log covers only {length} before the forecast's start: its rates are estimated from that, "
                "so read the forecast as a rough guide"
            )
        return None


def _hours(span: timedelta) -> str:
    minutes = max(1, round(span / timedelta(minutes=1)))
    return f"{minutes} minutes" if minutes < 60 else f"{span / timedelta(hours=1):.1f} hours"


# Less history than this behind a forecast gets a caution (bench/forecast.py scores forecasts from 8 weeks on).
THIN_LOG = timedelta(weeks=8)


class ForecastStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def last_event_at(self) -> datetime | None:
        """The latest business time in the log: where a forecast of a finished (simulated) history starts."""
        async with self.pool.acquire() as conn:
            value: datetime | None = await conn.fetchval("SELECT max(occurred_at) FROM events")
        return value

    async def states_as_of(
        self, as_of: datetime, position: int | None = None
    ) -> tuple[list[CaseState], int, datetime | None]:
        """Each case folded through `domain.evolve` from its events stamped at or before `as_of` (and, given a log
        `position`, appended at or before it: a report built at a position must not see events appended later, even
        stamped earlier); with how many events that was and the latest stamp among them."""
        states, count, _, last = await self._states(as_of, position)
        return states, count, last

    async def _states(
        self, as_of: datetime, position: int | None
    ) -> tuple[list[CaseState], int, datetime | None, datetime | None]:
        states: list[CaseState] = []
        count, first, last = 0, None, None
        async for events in case_streams(self.pool, _STREAMS_AS_OF, as_of, position):
            if len(states) % 500 == 499:
                # Folding is CPU work on the caller's event loop (the API's): let other requests in now and then.
                await asyncio.sleep(0)
            count += len(events)
            stamps = [e.occurred_at for e in events]
            first = min(stamps) if first is None else min(first, *stamps)
            last = max(stamps) if last is None else max(last, *stamps)
            states.append(fold(events))
        return states, count, first, last

    async def read(self, as_of: datetime, position: int | None = None) -> ForecastInput:
        states, count, first, last = await self._states(as_of, position)
        # Estimating walks every case's history: CPU work, done in a thread so that an event loop keeps serving.
        parameters, start = await asyncio.to_thread(lambda: (estimate(states, as_of), snapshot(states, as_of)))
        return ForecastInput(parameters, start, count, last, first)


class TargetNotAfterStart(ValueError):
    """The date to forecast is not after the forecast's start: there is nothing to simulate."""


@dataclass(frozen=True)
class ForecastRun:
    """A forecast as `sagsflow forecast --json` and `GET /v1/ops/forecast` show it: the baseline and, with a what-if,
    the scenario beside it, over the same input and seed."""

    data: ForecastInput
    to: datetime
    baseline: Forecast
    what_if: Forecast | None
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of": self.data.snapshot.as_of.isoformat(),
            "to": self.to.isoformat(),
            "events_read": self.data.events_read,
            "caution": self.data.caution(),
            "parameters": self.data.parameters.as_dict(),
            "baseline": self.baseline.as_dict(),
            "what_if": self.what_if.as_dict() if self.what_if is not None else None,
            "seconds": round(self.seconds, 3),
        }


def run_forecast(
    data: ForecastInput, to: datetime | None, *, runs: int, seed: int, what_if: WhatIf | None = None
) -> ForecastRun:
    """The one way the CLI, the API and the quarterly report run the model on what the store read (`to` None: the
    next forum meeting). CPU-bound and synchronous: an event loop runs it in a thread."""
    began = data.snapshot.as_of
    until = to or next_forum_meeting(began)
    if until <= began:
        raise TargetNotAfterStart(f"{until.isoformat()} is not after the forecast's start {began.isoformat()}")
    clock = time.perf_counter()
    baseline = forecast(data.snapshot, data.parameters, until, runs=runs, seed=seed, what_if=BASELINE)
    scenario = None
    if what_if is not None:
        scenario = forecast(data.snapshot, data.parameters, until, runs=runs, seed=seed, what_if=what_if)
    return ForecastRun(data, until, baseline, scenario, time.perf_counter() - clock)
