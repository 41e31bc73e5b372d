"""Append-only event store on PostgreSQL (asyncpg).

Append is insert-or-confirm: an event whose id is already stored with the same content is a success that returns
the original position (an activity retried after a lost reply must not fail or write twice); the same id with other
content, or a stream-version conflict, fails loudly. Appends serialise on an EXCLUSIVE lock of the events table so
that global positions become visible in order: a reader following `global_position` can never skip an event that
commits later with a smaller position (the sequence-gap failure seen with Marten). The whole append is one call of
the SQL function `eventlog_append` (migration 0003): one round trip and one commit, and appends that arrive while
one is being written share the next call and commit (group commit), which is what the lock otherwise costs.

`personal` fields are sealed per data subject before they leave the process (see `eventlog.personal`); readers get
them back only through `read_stream(..., access=Access(...))`, which writes the access log in the same transaction.
Everything else reads them as None.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from domain.events import EVENT_TYPES, ApplicationReceived, Event, event_from_record
from eventlog.access import Access, record_access_in
from eventlog.db import Conn, Db, Row
from eventlog.personal import (
    SubjectCipher,
    SubjectKey,
    canonical_json,
    case_subject,
    forget_subject_in,
    is_envelope,
    subject_key,
)
from runtime.config import get_settings

__all__ = [
    "Access",
    "ConcurrencyError",
    "DuplicateEventConflict",
    "Erasure",
    "EventDataRefused",
    "EventLogError",
    "EventStore",
    "StoredEvent",
    "canonical_json",
    "case_streams",
    "content_hash",
    "create_pool",
    "decode_event",
    "head_position_in",
]


class EventLogError(Exception):
    pass


@dataclass(frozen=True)
class Erasure:
    """What `EventStore.erase_subject` erased: counts and ids-free facts only, safe to print and log."""

    key_deleted: bool
    cases: int
    documents: int
    intake_records: int


class ConcurrencyError(EventLogError):
    """The stream moved on since the writer read it: retrying the same append cannot succeed."""


class DuplicateEventConflict(EventLogError):
    """An event id already stored with different content: a bug in id generation, never to be papered over."""


class EventDataRefused(EventLogError):
    """The database refused the events' values as data (SQLSTATE class 22, or a value the driver cannot encode).
    The same append would be refused again; the message names the kind only, since the database's may quote the
    values."""

    def __init__(self, cause: Exception) -> None:
        self.kind = type(cause).__name__
        self.sqlstate = getattr(cause, "sqlstate", None) or "-"
        super().__init__(f"the event log cannot store these events as data ({self.kind}, SQLSTATE {self.sqlstate})")


@dataclass(frozen=True)
class StoredEvent:
    global_position: int
    stream_version: int
    event: Event
    recorded_at: datetime


_ABSENT: Any = object()


def _hash_body(event: Event, data_without_personal: dict[str, Any], has_personal: bool) -> bytes:
    body = {
        "case_id": event.case_id,
        "type": event.type,
        "schema_version": type(event).SCHEMA_VERSION,
        "occurred_at": event.occurred_at.isoformat(),
        "data": data_without_personal,
        "has_personal": has_personal,
    }
    return hashlib.sha256(canonical_json(body).encode()).digest()


def content_hash(event: Event) -> bytes:
    """Hash of everything but the `personal` value (that enters through `personal_mac`), plus whether it is set."""
    data = event.data()
    personal = data.pop("personal", None)
    return _hash_body(event, data, personal is not None)


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
    except ValidationError as exc:
        # Pydantic's messages quote the input, which may be personal: name only the fields and error kinds.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors(include_input=False))
        raise EventLogError(
            f"event {event_id} ({row['type']} v{row['schema_version']}) does not decode: {problems}"
        ) from None
    except ValueError as exc:  # the upcaster chain is incomplete
        raise EventLogError(f"event {event_id}: {exc}") from None


def to_stored(row: Row, personal: PersonalOpener | None = None) -> StoredEvent:
    return StoredEvent(row["global_position"], row["stream_version"], decode_event(row, personal), row["recorded_at"])


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=canonical_json, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: Conn) -> None:
    """Pool reset without a round trip (asyncpg itself still rolls back an open transaction and drops listeners).

    The default reset (UNLISTEN, RESET ALL, advisory unlock, CLOSE ALL) costs one round trip per release, a large
    part of a single-event append. So: leave no session state on pooled connections (SET LOCAL and
    transaction-scoped advisory locks only).
    """


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose every statement is bounded: a hung database, a lock held by a crashed peer or a lost network
    turns into an error the caller handles (503, a retried activity) instead of a request or a worker slot that
    waits forever."""
    settings = get_settings()
    statement_ms = int(settings.db_statement_timeout * 1000)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        timeout=settings.db_connect_timeout,
        # The server cancels a statement (lock waits included) after statement_timeout; the client gives up a little
        # later, for the case where the server can no longer say so (a partition, a frozen host).
        command_timeout=settings.db_statement_timeout + 5,
        server_settings={
            "statement_timeout": str(statement_ms),
            "idle_in_transaction_session_timeout": str(statement_ms * 2),
        },
    )
    assert pool is not None
    return pool


@dataclass(frozen=True)
class _KeyPlan:
    """How this append seals personal data: with `key` (None: the subject is forgotten, shred on arrival)."""

    subject: str | None = None
    key: SubjectKey | None = None
    # A fresh key for a subject with none yet, stored by eventlog_append in the same transaction: (id, wrapped key).
    proposal: tuple[str, bytes] | None = None


@dataclass(frozen=True)
class _Sealed:
    data: list[dict[str, Any]]
    hashes: list[bytes]
    macs: list[bytes | None]
    # personal was set but the subject is forgotten: a retry cannot be checked on that field (it is shredded anyway)
    unverifiable: list[bool]


def _seal(events: Sequence[Event], plan: _KeyPlan) -> _Sealed:
    data: list[dict[str, Any]] = []
    hashes: list[bytes] = []
    macs: list[bytes | None] = []
    unverifiable: list[bool] = []
    for e in events:
        body = e.data()
        personal = body.pop("personal", None) if "personal" in body else _ABSENT
        hashes.append(_hash_body(e, body, personal not in (None, _ABSENT)))
        mac = None
        if personal is not _ABSENT:
            if personal is not None and plan.key is not None:
                body["personal"] = SubjectCipher.seal(plan.key, e.event_id, personal)
                mac = SubjectCipher.mac(plan.key, e.event_id, personal)
            else:
                body["personal"] = None  # None, or the subject is forgotten: shredded on arrival
        data.append(body)
        macs.append(mac)
        unverifiable.append(personal not in (None, _ABSENT) and plan.key is None)
    return _Sealed(data, hashes, macs, unverifiable)


@dataclass
class _Request:
    case_id: str
    expected_version: int
    events: Sequence[Event]
    sealed: _Sealed
    plan: _KeyPlan
    new_subject: str | None


async def _call_append(conn: Conn, requests: Sequence[_Request]) -> list[list[asyncpg.Record]]:
    """Run `eventlog_append` for a group of appends; the result rows of each, in order."""
    n_events = sum(len(r.events) for r in requests)
    cols: list[list[Any]] = [[] for _ in range(9)]
    for no, r in enumerate(requests, start=1):
        for j, e in enumerate(r.events):
            values = (
                no,
                r.expected_version + 1 + j,
                e.event_id,
                e.type,
                type(e).SCHEMA_VERSION,
                r.sealed.data[j],
                r.sealed.hashes[j],
                r.sealed.macs[j],
                e.occurred_at,
            )
            for col, v in zip(cols, values, strict=True):
                col.append(v)
    assert len(cols[0]) == n_events
    proposals = [r.plan.proposal for r in requests]
    rows = await conn.fetch(
        "SELECT * FROM eventlog_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        [r.case_id for r in requests],
        [r.expected_version for r in requests],
        [r.new_subject for r in requests],
        [r.plan.subject if p is not None else None for r, p in zip(requests, proposals, strict=True)],
        [p[0] if p is not None else None for p in proposals],
        [p[1] if p is not None else None for p in proposals],
        *cols,
    )
    out: list[list[asyncpg.Record]] = [[] for _ in requests]
    for row in rows:
        out[row["o_append"] - 1].append(row)
    return out


class _GroupCommit:
    """Appends submitted while a group is being written wait and go together in the next one: one statement, one
    commit for all of them. Under the table lock appends serialise anyway, so this is where concurrent throughput
    comes from; a lone append goes straight through (a group of one)."""

    MAX_GROUP = 64

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._queue: list[tuple[_Request, asyncio.Future[list[asyncpg.Record]]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, request: _Request) -> list[asyncpg.Record]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[asyncpg.Record]] = loop.create_future()
        self._queue.append((request, future))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = loop.create_task(self._drain())
        # Shielded: a caller that gives up does not cancel the group; its append may still commit, as after a lost
        # reply, and a retry then confirms it.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        group: list[tuple[_Request, asyncio.Future[list[asyncpg.Record]]]] = []
        try:
            while self._queue:
                group, self._queue = self._queue[: self.MAX_GROUP], self._queue[self.MAX_GROUP :]
                await self._write(group)
        finally:
            # Cancelled (the loop is closing): nobody may wait forever on an append that was never written.
            for _, future in group + self._queue:
                _settle(future, exc=EventLogError("the append writer stopped before writing this append"))

    async def _write(self, group: list[tuple[_Request, asyncio.Future[list[asyncpg.Record]]]]) -> None:
        try:
            async with self.pool.acquire() as conn:
                results = await _call_append(conn, [r for r, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc=exc)
                return
            # Something failed the whole group: write them one by one, so only the culprit sees the error.
            for request, future in group:
                try:
                    async with self.pool.acquire() as conn:
                        (rows,) = await _call_append(conn, [request])
                except Exception as one_exc:
                    _settle(future, exc=one_exc)
                else:
                    _settle(future, rows)
            return
        for (_, future), rows in zip(group, results, strict=True):
            _settle(future, rows)


def _settle(
    future: asyncio.Future[list[asyncpg.Record]],
    rows: list[asyncpg.Record] | None = None,
    exc: BaseException | None = None,
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert rows is not None
        future.set_result(rows)


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


async def case_streams(pool: asyncpg.Pool, query: str, *args: Any) -> AsyncIterator[list[Event]]:
    """Each case's events, one case at a time, from `query`: rows of the events table (without personal data)
    ordered by case_id, stream_version. Read through a cursor, so a whole log never sits in memory at once."""
    current: str | None = None
    batch: list[Event] = []
    async with pool.acquire() as conn, conn.transaction():
        async for row in conn.cursor(query, *args, prefetch=5000):
            if row["case_id"] != current and batch:
                yield batch
                batch = []
            current = row["case_id"]
            batch.append(decode_event(row))
    if batch:
        yield batch


async def head_position_in(db: Db) -> int:
    """The last global position written (0 for an empty log), read on `db`: inside its transaction if one is open."""
    return int(await db.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))


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
        self._group = _GroupCommit(pool)

    @property
    def cipher(self) -> SubjectCipher:
        if self._cipher is None:
            self._cipher = SubjectCipher.from_settings(get_settings())
        return self._cipher

    # ---- append -------------------------------------------------------------------------------------------------

    async def append(self, case_id: str, expected_version: int, events: Sequence[Event]) -> list[int]:
        """Append `events` as stream versions expected_version+1.. of `case_id`; return their global positions.

        Appends issued concurrently from this process share one statement and one commit (group commit); each
        still succeeds or fails on its own.
        """
        try:
            return await self._append(None, case_id, expected_version, events)
        except (asyncpg.DataError, UnicodeError) as exc:
            raise EventDataRefused(exc) from exc

    async def append_in(self, conn: Conn, case_id: str, expected_version: int, events: Sequence[Event]) -> list[int]:
        """`append` on the caller's connection, inside the caller's transaction if one is open.

        The table lock is then held until the caller commits: keep such transactions short.
        """
        try:
            return await self._append(conn, case_id, expected_version, events)
        except (asyncpg.DataError, UnicodeError) as exc:
            raise EventDataRefused(exc) from exc

    async def _append(
        self, conn: Conn | None, case_id: str, expected_version: int, events: Sequence[Event]
    ) -> list[int]:
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
        new_subject = next((e.subject_id for e in events if isinstance(e, ApplicationReceived)), None)
        plan = await self._key_plan(conn, case_id, expected_version, events, new_subject)
        request = _Request(case_id, expected_version, events, _seal(events, plan), plan, new_subject)
        rows = await self._submit(conn, request)
        if rows[0]["o_status"] == "subject_key":
            # Our fresh key lost: the person has a key from another case (or is forgotten). Seal with what is stored.
            plan = _KeyPlan(plan.subject, await self._stored_key(conn, plan.subject))
            request = _Request(case_id, expected_version, events, _seal(events, plan), plan, new_subject)
            rows = await self._submit(conn, request)
        status = rows[0]["o_status"]
        if status == "version":
            raise ConcurrencyError(
                f"case {case_id}: expected stream version {expected_version}, found {rows[0]['o_current_version']}"
            )
        if status == "existed":
            sealed = request.sealed
            if plan.proposal is not None:
                # A retry sealed with a key that was never stored: compare against the stored key instead.
                plan = _KeyPlan(plan.subject, await self._stored_key(conn, plan.subject))
                sealed = _seal(events, plan)
            return self._confirm_replay(case_id, expected_version, events, sealed, rows)
        if status != "inserted":
            raise EventLogError(f"case {case_id}: the append function answered {status!r}")
        if conn is None or not conn.is_in_transaction():  # committed: safe to remember
            if new_subject is not None:
                self._case_subjects.put(case_id, new_subject)
            if plan.subject is not None:
                self._write_keys.put(plan.subject, plan.key)
        by_id = {r["o_event_id"]: r["o_global_position"] for r in rows}
        return [int(by_id[i]) for i in ids]

    async def _submit(self, conn: Conn | None, request: _Request) -> list[asyncpg.Record]:
        if conn is not None:
            return (await _call_append(conn, [request]))[0]
        return await self._group.submit(request)

    async def _key_plan(
        self, conn: Conn | None, case_id: str, expected_version: int, events: Sequence[Event], new_subject: str | None
    ) -> _KeyPlan:
        """Which key seals this append's personal data; usually no round trip at all (cached, or a fresh proposal)."""
        if not any(getattr(e, "personal", None) is not None for e in events):
            return _KeyPlan()
        subject = new_subject or self._case_subjects.get(case_id)
        if subject is not None and subject in self._write_keys:
            cached: SubjectKey | None = self._write_keys[subject]
            return _KeyPlan(subject, cached)
        if conn is not None and conn.is_in_transaction():
            # A proposal that loses would abort the caller's transaction: settle the key first, in that transaction.
            subject = subject or await case_subject(conn, case_id)
            if subject is None:
                raise await self._no_subject(conn, case_id, expected_version)
            return _KeyPlan(subject, await subject_key(conn, self.cipher, subject, create=True))
        if subject is None or new_subject is None:
            row = await self._fetchrow(
                conn,
                "SELECT cs.subject_id, sk.subject_id IS NOT NULL AS has_row, sk.master_key_id, sk.wrapped_key"
                " FROM case_subjects cs LEFT JOIN subject_keys sk ON sk.subject_id = cs.subject_id"
                " WHERE cs.case_id = $1",
                case_id,
            )
            if row is None:
                raise await self._no_subject(conn, case_id, expected_version)
            subject = str(row["subject_id"])
            self._case_subjects.put(case_id, subject)
            if row["has_row"]:
                key = (
                    None
                    if row["wrapped_key"] is None
                    else SubjectKey(subject, self.cipher.unwrap(subject, row["master_key_id"], row["wrapped_key"]))
                )
                self._write_keys.put(subject, key)
                return _KeyPlan(subject, key)
        kid, wrapped, raw = self.cipher.new_key(subject)
        return _KeyPlan(subject, SubjectKey(subject, raw), (kid, wrapped))

    async def _fetchrow(self, conn: Conn | None, query: str, *args: Any) -> asyncpg.Record | None:
        if conn is not None:
            return await conn.fetchrow(query, *args)
        async with self.pool.acquire() as c:
            return await c.fetchrow(query, *args)

    async def _stored_key(self, conn: Conn | None, subject: str | None) -> SubjectKey | None:
        assert subject is not None
        if conn is not None:
            return await subject_key(conn, self.cipher, subject, create=False)
        async with self.pool.acquire() as c:
            return await subject_key(c, self.cipher, subject, create=False)

    async def _no_subject(self, conn: Conn | None, case_id: str, expected_version: int) -> EventLogError:
        row = await self._fetchrow(
            conn, "SELECT coalesce(max(stream_version), 0) AS v FROM events WHERE case_id = $1", case_id
        )
        current = row["v"] if row is not None else 0
        if current != expected_version:
            return ConcurrencyError(f"case {case_id}: expected stream version {expected_version}, found {current}")
        return EventLogError(f"case {case_id}: no data subject recorded, so personal data cannot be sealed")

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
        return await head_position_in(self.pool)

    # ---- personal data ------------------------------------------------------------------------------------------

    async def forget_subject(self, subject_id: str, *, actor: str = "system", purpose: str = "erasure") -> bool:
        """Crypto-shred a data subject: their `personal` fields read back as None from now on. Idempotent.

        The whole erasure (`erase_subject`): the key, the stored documents and the intake records in one go."""
        return (await self.erase_subject(subject_id, actor=actor, purpose=purpose)).key_deleted

    async def erase_subject(self, subject_id: str, *, actor: str, purpose: str) -> Erasure:
        """Erase a data subject in ONE transaction, with its access-log entry: their event-log key (crypto-shredding:
        every `personal` field reads back as None; the events stay, so figures stay), the documents kommuner
        submitted for their cases' tasks, and the intake records of their applications. Idempotent: a second call
        finds nothing and says so. Either all of it happens and is logged, or none of it."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                cases = [
                    str(r["case_id"])
                    for r in await conn.fetch("SELECT case_id FROM case_subjects WHERE subject_id = $1", subject_id)
                ]
                # Documents are stored per task (before the task's event names them); a case's tasks are the task
                # ids its events carry.
                documents = await conn.fetchval(
                    "WITH gone AS (DELETE FROM documents WHERE task_id IN ("
                    "  SELECT data ->> 'task_id' FROM events WHERE case_id = ANY($1::text[]) AND data ? 'task_id'"
                    ") RETURNING 1) SELECT count(*) FROM gone",
                    cases,
                )
                intake = await conn.fetchval(
                    "WITH gone AS (DELETE FROM intake_requests WHERE case_id::text = ANY($1::text[]) RETURNING 1)"
                    " SELECT count(*) FROM gone",
                    cases,
                )
                deleted = await forget_subject_in(conn, subject_id)
                await record_access_in(
                    conn,
                    Access(actor=actor, purpose=purpose),
                    subject_id=subject_id,
                    what=f"erase subject: key {'deleted' if deleted else 'already gone'}, {documents} documents,"
                    f" {intake} intake records, {len(cases)} cases",
                )
            # Best effort: let the dead row versions holding the wrapped key and the documents' ciphertext go now
            # rather than at autovacuum.
            for table in ("subject_keys", "documents", "intake_requests"):
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f"VACUUM {table}")
        self._write_keys.pop(subject_id, None)
        if self._cipher is not None:
            self._cipher.forget_cached(subject_id)
        return Erasure(
            key_deleted=deleted, cases=len(cases), documents=int(documents or 0), intake_records=int(intake or 0)
        )
