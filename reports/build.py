"""Build a quarterly report from the event log at a fixed log position (so it can be rebuilt byte for byte)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from uuid import UUID

import asyncpg

from domain.events import Event, event_from_record
from reports.quarterly import LogSpan, Quarter, compute
from reports.render import QuarterlyReport, write_report
from reports.timeline import CaseTimeline, case_timeline


async def head_position(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))


async def _case_streams(conn: asyncpg.Connection, up_to: int) -> AsyncIterator[list[Event]]:
    """Each case's events in stream order. Personal fields are never read: reports must work after shredding."""
    current: str | None = None
    batch: list[Event] = []
    async with conn.transaction():
        cursor = conn.cursor(
            "SELECT event_id, case_id, type, schema_version, occurred_at, data - 'personal' AS data FROM events"
            " WHERE global_position <= $1 ORDER BY case_id, stream_version",
            up_to,
            prefetch=5000,
        )
        async for row in cursor:
            if row["case_id"] != current and batch:
                yield batch
                batch = []
            current = row["case_id"]
            data = row["data"]
            if isinstance(data, str):  # a connection without our jsonb codec
                data = json.loads(data)
            batch.append(
                event_from_record(
                    event_id=row["event_id"] if isinstance(row["event_id"], UUID) else UUID(str(row["event_id"])),
                    case_id=row["case_id"],
                    event_type=row["type"],
                    schema_version=row["schema_version"],
                    occurred_at=row["occurred_at"],
                    data=data,
                )
            )
    if batch:
        yield batch


async def load_timelines(conn: asyncpg.Connection, up_to: int) -> tuple[list[CaseTimeline], int, LogSpan]:
    """Every case's timeline at the position, the number of events, and the business time they span."""
    timelines: list[CaseTimeline] = []
    count = 0
    first: datetime | None = None
    last: datetime | None = None
    async for events in _case_streams(conn, up_to):
        count += len(events)
        stamps = [e.occurred_at for e in events]
        first = min(stamps) if first is None else min(first, *stamps)
        last = max(stamps) if last is None else max(last, *stamps)
        tl = case_timeline(events)
        if tl is not None:
            timelines.append(tl)
    return timelines, count, LogSpan(first, last)


class PositionBeyondLog(ValueError):
    """A report named after a position the log has not reached would change as the log grows: refused."""


async def build_quarterly(dsn: str, quarter: Quarter, *, position: int | None = None) -> QuarterlyReport:
    conn = await asyncpg.connect(dsn)
    try:
        head = await head_position(conn)
        if position is not None and position > head:
            raise PositionBeyondLog(f"the event log ends at position {head}")
        at = position if position is not None else head
        timelines, count, span = await load_timelines(conn, at)
    finally:
        await conn.close()
    return QuarterlyReport(
        current=compute(timelines, quarter, span),
        previous=compute(timelines, quarter.previous(), span),
        log_position=at,
        event_count=count,
        span=span,
    )


async def build_and_write(dsn: str, quarter: Quarter, out: Path, *, position: int | None = None) -> list[Path]:
    return write_report(await build_quarterly(dsn, quarter, position=position), out)
