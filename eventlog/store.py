"""Append-only event store on PostgreSQL (asyncpg).

Append is insert-or-confirm: an event whose id is already stored with the same content is a success that returns
the original position (an activity retried after a lost reply must not fail or write twice); the same id with other
content, or a stream-version conflict, fails loudly. Appends serialise on an EXCLUSIVE lock of the events table so
that global positions become visible in order: a reader following `global_position` can never skip an event that
commits later with a smaller position (the sequence-gap failure seen with Marten).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from domain.events import Event, event_from_record


class EventLogError(Exception):
    pass


class ConcurrencyError(EventLogError):
    """The stream moved on since the writer read it: retrying the same append cannot succeed."""


class DuplicateEventConflict(EventLogError):
    """An event id already stored with different content: a bug in id generation, never to be papered over."""


@dataclass(frozen=True)
class StoredEvent:
    global_position: int
    stream_version: int
    event: Event
    recorded_at: datetime


def canonical_json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(event: Event) -> bytes:
    body = {
        "case_id": event.case_id,
        "type": event.type,
        "schema_version": type(event).SCHEMA_VERSION,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data(),
    }
    return hashlib.sha256(canonical_json(body).encode()).digest()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=canonical_json, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)
    assert pool is not None
    return pool


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(self, case_id: str, expected_version: int, events: Sequence[Event]) -> list[int]:
        """Append `events` as stream versions expected_version+1.. of `case_id`; return their global positions."""
        if not events:
            return []
        for e in events:
            if e.case_id != case_id:
                raise EventLogError("every event in one append must belong to the case appended to")
        hashes = [content_hash(e) for e in events]
        try:
            return await self._append_once(case_id, expected_version, events, hashes)
        except asyncpg.UniqueViolationError:
            # A concurrent retry of the same append won the race: now the ids exist, so this confirms or fails.
            return await self._append_once(case_id, expected_version, events, hashes)

    async def _append_once(
        self, case_id: str, expected_version: int, events: Sequence[Event], hashes: list[bytes]
    ) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await conn.fetch(
                "SELECT event_id, global_position, case_id, stream_version, content_hash"
                " FROM events WHERE event_id = ANY($1::uuid[])",
                [e.event_id for e in events],
            )
            if existing:
                return self._confirm_replay(case_id, expected_version, events, hashes, existing)
            await conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")
            current = await conn.fetchval(
                "SELECT coalesce(max(stream_version), 0) FROM events WHERE case_id = $1", case_id
            )
            if current != expected_version:
                raise ConcurrencyError(f"case {case_id}: expected stream version {expected_version}, found {current}")
            rows = await conn.fetch(
                "INSERT INTO events (event_id, case_id, stream_version, type, schema_version, data,"
                " content_hash, occurred_at)"
                " SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], $6::jsonb[],"
                " $7::bytea[], $8::timestamptz[])"
                " RETURNING global_position",
                [e.event_id for e in events],
                [case_id] * len(events),
                list(range(expected_version + 1, expected_version + 1 + len(events))),
                [e.type for e in events],
                [type(e).SCHEMA_VERSION for e in events],
                [e.data() for e in events],
                hashes,
                [e.occurred_at for e in events],
            )
            await conn.execute("SELECT pg_notify('events_appended', $1)", case_id)
            return [r["global_position"] for r in rows]

    @staticmethod
    def _confirm_replay(
        case_id: str,
        expected_version: int,
        events: Sequence[Event],
        hashes: list[bytes],
        existing: list[asyncpg.Record],
    ) -> list[int]:
        by_id = {r["event_id"]: r for r in existing}
        positions = []
        for i, (e, h) in enumerate(zip(events, hashes, strict=True)):
            row = by_id.get(e.event_id)
            if row is None:
                raise DuplicateEventConflict(
                    f"case {case_id}: append mixes stored and new events (event {e.event_id} is new)"
                )
            if (
                row["content_hash"] != h
                or row["case_id"] != case_id
                or (row["stream_version"] != expected_version + 1 + i)
            ):
                raise DuplicateEventConflict(f"event {e.event_id} is already stored with different content")
            positions.append(row["global_position"])
        return positions

    async def read_stream(self, case_id: str, from_version: int = 0) -> list[StoredEvent]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM events WHERE case_id = $1 AND stream_version > $2 ORDER BY stream_version",
                case_id,
                from_version,
            )
        return [to_stored(r) for r in rows]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2",
                after_position,
                limit,
            )
        return [to_stored(r) for r in rows]

    async def head_position(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))


def to_stored(row: asyncpg.Record) -> StoredEvent:
    event = event_from_record(
        event_id=row["event_id"] if isinstance(row["event_id"], UUID) else UUID(str(row["event_id"])),
        case_id=row["case_id"],
        event_type=row["type"],
        schema_version=row["schema_version"],
        occurred_at=row["occurred_at"],
        data=row["data"],
    )
    return StoredEvent(row["global_position"], row["stream_version"], event, row["recorded_at"])
