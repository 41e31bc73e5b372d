"""Append-only event store on PostgreSQL (asyncpg).

Append is insert-or-confirm: an event whose id is already stored with the same content is a success that returns
the original position (an activity retried after a lost reply must not fail or write twice); the same id with other
content, or a stream-version conflict, fails loudly. Appends serialise on an EXCLUSIVE lock of the events table so
that global positions become visible in order: a reader following `global_position` can never skip an event that
commits later with a smaller position (the sequence-gap failure seen with Marten). The whole append is one call of
the SQL function `eventlog_append` (migration 0003), so it costs one round trip.

`personal` fields are sealed per data subject before they leave the process (see `eventlog.personal`); readers get
them back only through `read_stream(..., access=Access(...))`, which writes the access log in the same transaction.
Everything else reads them as None.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from domain.events import EVENT_TYPES, ApplicationReceived, Event, event_from_record
from eventlog.access import Access, record_access_in
from eventlog.db import Conn, Row
from eventlog.personal import (
    SubjectCipher,
    SubjectKey,
    canonical_json,
    case_subject,
    forget_subject_in,
    is_envelope,
    subject_key,
)
from sagsflow.config import get_settings

__all__ = [
    "Access",
    "ConcurrencyError",
    "DuplicateEventConflict",
    "EventLogError",
    "EventStore",
    "StoredEvent",
    "canonical_json",
    "content_hash",
    "create_pool",
    "decode_event",
]

CONCURRENCY_SQLSTATE = "SF409"  # raised by eventlog_append on a stream-version mismatch


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


def _has_personal(event: Event) -> bool:
    return "personal" in type(event).model_fields


def content_hash(event: Event) -> bytes:
    """Hash of everything but the `personal` value (that enters through `personal_mac`), plus whether it is set."""
    data = event.data()
    personal = data.pop("personal", None)
    body = {
        "case_id": event.case_id,
        "type": event.type,
        "schema_version": type(event).SCHEMA_VERSION,
        "occurred_at": event.occurred_at.isoformat(),
        "data": data,
        "has_personal": personal is not None,
    }
    return hashlib.sha256(canonical_json(body).encode()).digest()


PersonalOpener = Callable[[UUID, Any], Any]


def decode_event(row: Row, personal: PersonalOpener | None = None) -> Event:
    """The domain event of a stored row, upcast to the current schema; `personal` is None unless an opener is given."""
    event_id = row["event_id"] if isinstance(row["event_id"], UUID) else UUID(str(row["event_id"]))
    cls = EVENT_TYPES.get(row["type"])
    if cls is None:
        raise EventLogError(f"event {event_id}: unknown type {row['type']!r}")
    if row["schema_version"] > cls.SCHEMA_VERSION:
        raise EventLogError(
            f"event {event_id}: stored schema v{row['schema_version']} is newer than this code's v{cls.SCHEMA_VERSION}"
        )
    data = dict(row["data"])
    raw = data.get("personal")
    if raw is not None:
        if personal is None:
            data["personal"] = None
        elif is_envelope(raw):
            data["personal"] = personal(event_id, raw)
        # else: a plain value written before encryption existed (dev databases only); the caller may read it.
    try:
        return event_from_record(
            event_id=event_id,
            case_id=row["case_id"],
            event_type=row["type"],
            schema_version=row["schema_version"],
            occurred_at=row["occurred_at"],
            data=data,
        )
    except ValueError as exc:  # pydantic errors may quote field values: keep them out of the message
        raise EventLogError(f"event {event_id} ({row['type']} v{row['schema_version']}) does not decode") from exc


def to_stored(row: Row, personal: PersonalOpener | None = None) -> StoredEvent:
    return StoredEvent(row["global_position"], row["stream_version"], decode_event(row, personal), row["recorded_at"])


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=canonical_json, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)
    assert pool is not None
    return pool


@dataclass(frozen=True)
class _Sealed:
    data: list[dict[str, Any]]
    hashes: list[bytes]
    macs: list[bytes | None]
    # personal was set but the subject is forgotten: a retry cannot be checked on that field (it is shredded anyway)
    unverifiable: list[bool]
    new_subject: str | None


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


_SELECT_EVENTS = (
    "SELECT global_position, event_id, case_id, stream_version, type, schema_version, data, occurred_at, recorded_at"
    " FROM events"
)


class EventStore:
    def __init__(self, pool: asyncpg.Pool, cipher: SubjectCipher | None = None, *, cache_size: int = 10_000) -> None:
        """`cipher` seals personal data; unset, the configured (or embedded dev) master key ring is loaded lazily."""
        self.pool = pool
        self._cipher = cipher
        # A case's subject never changes, and a write may use a cached key even right after a forget elsewhere: what
        # it seals is unreadable all the same. Reads never use these caches.
        self._case_subjects = _Lru(cache_size)
        self._write_keys = _Lru(cache_size)

    @property
    def cipher(self) -> SubjectCipher:
        if self._cipher is None:
            self._cipher = SubjectCipher.from_settings(get_settings())
        return self._cipher

    # ---- append -------------------------------------------------------------------------------------------------

    async def append(self, case_id: str, expected_version: int, events: Sequence[Event]) -> list[int]:
        """Append `events` as stream versions expected_version+1.. of `case_id`; return their global positions."""
        if not events:
            return []
        async with self.pool.acquire() as conn:
            return await self.append_in(conn, case_id, expected_version, events)

    async def append_in(self, conn: Conn, case_id: str, expected_version: int, events: Sequence[Event]) -> list[int]:
        """`append` on the caller's connection, inside the caller's transaction if one is open.

        The table lock is then held until the caller commits: keep such transactions short.
        """
        if not events:
            return []
        if expected_version < 0:
            raise EventLogError("expected_version must be >= 0")
        ids = [e.event_id for e in events]
        if len(set(ids)) != len(ids):
            raise EventLogError("an append must not repeat an event id")
        for e in events:
            if e.case_id != case_id:
                raise EventLogError("every event in one append must belong to the case appended to")
        sealed = await self._seal(conn, case_id, expected_version, events)
        try:
            rows = await conn.fetch(
                "SELECT * FROM eventlog_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                case_id,
                expected_version,
                ids,
                [e.type for e in events],
                [type(e).SCHEMA_VERSION for e in events],
                sealed.data,
                sealed.hashes,
                sealed.macs,
                [e.occurred_at for e in events],
                sealed.new_subject,
            )
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == CONCURRENCY_SQLSTATE:
                raise ConcurrencyError(str(getattr(exc, "message", exc))) from None
            raise
        if rows and rows[0]["o_existed"]:
            return self._confirm_replay(case_id, expected_version, events, sealed, rows)
        by_id = {r["o_event_id"]: r["o_global_position"] for r in rows}
        if sealed.new_subject is not None and not conn.is_in_transaction():
            self._case_subjects.put(case_id, sealed.new_subject)
        return [int(by_id[i]) for i in ids]

    async def _seal(self, conn: Conn, case_id: str, expected_version: int, events: Sequence[Event]) -> _Sealed:
        new_subject = next((e.subject_id for e in events if isinstance(e, ApplicationReceived)), None)
        key: SubjectKey | None = None
        if any(getattr(e, "personal", None) is not None for e in events):
            subject = new_subject or await self._subject_of(conn, case_id)
            if subject is None:
                current = await conn.fetchval(
                    "SELECT coalesce(max(stream_version), 0) FROM events WHERE case_id = $1", case_id
                )
                if current != expected_version:
                    raise ConcurrencyError(
                        f"case {case_id}: expected stream version {expected_version}, found {current}"
                    )
                raise EventLogError(f"case {case_id}: no data subject recorded, so personal data cannot be sealed")
            key = await self._key_for_write(conn, subject)
        data: list[dict[str, Any]] = []
        hashes: list[bytes] = []
        macs: list[bytes | None] = []
        unverifiable: list[bool] = []
        for e in events:
            body = e.data()
            personal = body.get("personal")
            mac = None
            if personal is not None:
                if key is not None:
                    body["personal"] = SubjectCipher.seal(key, e.event_id, personal)
                    mac = SubjectCipher.mac(key, e.event_id, personal)
                else:
                    body["personal"] = None  # the subject is forgotten: shredded on arrival
            data.append(body)
            hashes.append(content_hash(e))
            macs.append(mac)
            unverifiable.append(personal is not None and key is None)
        return _Sealed(data, hashes, macs, unverifiable, new_subject)

    async def _subject_of(self, conn: Conn, case_id: str) -> str | None:
        cached = self._case_subjects.get(case_id)
        if cached is not None:
            return str(cached)
        subject = await case_subject(conn, case_id)
        if subject is not None and not conn.is_in_transaction():
            self._case_subjects.put(case_id, subject)
        return subject

    async def _key_for_write(self, conn: Conn, subject_id: str) -> SubjectKey | None:
        if subject_id in self._write_keys:
            cached: SubjectKey | None = self._write_keys[subject_id]
            return cached
        key = await subject_key(conn, self.cipher, subject_id, create=True)
        # Inside a caller's transaction the key row may still roll back: caching it would seal with a lost key.
        if not conn.is_in_transaction():
            self._write_keys.put(subject_id, key)
        return key

    @staticmethod
    def _confirm_replay(
        case_id: str,
        expected_version: int,
        events: Sequence[Event],
        sealed: _Sealed,
        existing: Sequence[asyncpg.Record],
    ) -> list[int]:
        by_id = {r["o_event_id"]: r for r in existing}
        positions = []
        for i, e in enumerate(events):
            row = by_id.get(e.event_id)
            if row is None:
                raise DuplicateEventConflict(
                    f"case {case_id}: append mixes stored and new events (event {e.event_id} is new)"
                )
            mac_ok = sealed.unverifiable[i] or row["o_personal_mac"] == sealed.macs[i]
            if (
                row["o_content_hash"] != sealed.hashes[i]
                or not mac_ok
                or row["o_case_id"] != case_id
                or row["o_stream_version"] != expected_version + 1 + i
            ):
                raise DuplicateEventConflict(f"event {e.event_id} is already stored with different content")
            positions.append(int(row["o_global_position"]))
        return positions

    # ---- read ---------------------------------------------------------------------------------------------------

    async def read_stream(
        self, case_id: str, from_version: int = 0, *, access: Access | None = None
    ) -> list[StoredEvent]:
        """A case's events in order. `personal` is None unless `access` says who reads it and why (logged)."""
        query = _SELECT_EVENTS + " WHERE case_id = $1 AND stream_version > $2 ORDER BY stream_version"
        async with self.pool.acquire() as conn:
            if access is None:
                rows = await conn.fetch(query, case_id, from_version)
                return [to_stored(r) for r in rows]
            async with conn.transaction():
                subject = await case_subject(conn, case_id)
                await record_access_in(conn, access, case_id=case_id, subject_id=subject, what="case events")
                key = await subject_key(conn, self.cipher, subject, create=False) if subject else None
                rows = await conn.fetch(query, case_id, from_version)
        return [to_stored(r, lambda eid, env: SubjectCipher.open(key, eid, env)) for r in rows]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Events after a global position, in order, without personal data (for projections and reports)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                _SELECT_EVENTS + " WHERE global_position > $1 ORDER BY global_position LIMIT $2",
                after_position,
                limit,
            )
        return [to_stored(r) for r in rows]

    async def head_position(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))

    # ---- personal data ------------------------------------------------------------------------------------------

    async def forget_subject(self, subject_id: str, *, actor: str = "system", purpose: str = "erasure") -> bool:
        """Crypto-shred a data subject: their `personal` fields read back as None from now on. Idempotent."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                deleted = await forget_subject_in(conn, subject_id)
                await record_access_in(
                    conn, Access(actor=actor, purpose=purpose), subject_id=subject_id, what="forget subject key"
                )
            # Best effort: let the dead row version holding the wrapped key go now rather than at autovacuum.
            with contextlib.suppress(asyncpg.PostgresError):
                await conn.execute("VACUUM subject_keys")
        self._write_keys.pop(subject_id, None)
        self.cipher.forget_cached(subject_id)
        return deleted
