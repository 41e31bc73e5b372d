"""Projections of the event log: current case status, business-time state intervals, countable facts.

`CaseViews` folds events with the same `domain.evolve` the workflow uses, into four tables (migration 0004):

- `case_status`: the current state per case (key columns plus the whole `CaseState` as JSON, to fold on);
- `task_intervals` / `case_intervals`: each kommune task's (status, overdue, deadline) and each case's
  (status, kommune) over business time, `[valid_from, valid_to)`, for exact point-in-time queries;
- `event_facts`: one narrow row per countable event with the kommune it counts for, for weekly/quarterly figures.

Business time is `occurred_at`. An interval starts at the case's clock, the running maximum of its events'
`occurred_at`, so a late-stamped event never makes an interval end before it starts; "as of T" is then exactly the
fold of each case's events up to the first one stamped after T (what `tests/eventlog/naive.py` computes from the log).

`ProjectionRunner` applies batches in transactions that also move the tracking position, catches up, then follows
(LISTEN `events_appended` as a wake-up only, plus polling). `rebuild` refolds from position 0 into fresh tables and
swaps them in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from domain.errors import DomainError
from domain.events import (
    ApplicationReceived,
    ApplicationWithdrawn,
    CaseTransferred,
    DecisionMade,
    Event,
    KommuneReminderSent,
    OplysningCancelled,
    OplysningCompleted,
    OplysningDeadlineExtended,
    OplysningOverdue,
    OplysningRequested,
    OplysningReturned,
)
from domain.state import CaseState, CaseStatus, TaskState, evolve
from eventlog.db import Conn, Db, PoolConnectionProxy, Row
from eventlog.store import decode_event, head_position_in
from runtime.logs import get_logger

log = get_logger(__name__)

PROJECTION = "case_views"
REBUILD_SUFFIX = "_rebuild"
TABLES = ("case_status", "task_intervals", "task_deltas", "case_intervals", "case_deltas", "event_facts")
ACTIVE_CASE_STATUSES = frozenset(
    {CaseStatus.RECEIVED, CaseStatus.PRESCREENED, CaseStatus.AWAITING_KOMMUNE, CaseStatus.READY_FOR_DECISION}
)
# Events that reports count; each gets an `event_facts` row.
FACT_TYPES = (
    ApplicationReceived,
    OplysningRequested,
    OplysningCompleted,
    OplysningReturned,
    OplysningCancelled,
    OplysningDeadlineExtended,
    KommuneReminderSent,
    OplysningOverdue,
    CaseTransferred,
    DecisionMade,
    ApplicationWithdrawn,
)
SECONDS_PER_DAY = 86_400.0
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


class ProjectionError(Exception):
    pass


@dataclass
class CaseEntry:
    state: CaseState
    clock: datetime  # running max of occurred_at: intervals never run backwards
    position: int


def fact_for(event: Event, before: CaseState, after: CaseState) -> tuple[Any, ...] | None:
    """(task_id, kommune_kode, outcome, answer_days, on_time) for a countable event, else None.

    A task's events count for the task's kommune, a transfer for the receiving kommune, anything else for the
    case's kommune at that moment. `tests/eventlog/naive.py` works this out again from the raw events, independently.
    """
    if not isinstance(event, FACT_TYPES):
        return None
    task_id: str | None = getattr(event, "task_id", None)
    kommune = before.kommune_kode
    outcome = None
    answer_days = None
    on_time = None
    if isinstance(event, ApplicationReceived):
        kommune = after.kommune_kode
    elif isinstance(event, CaseTransferred):
        kommune = event.to_kommune_kode
    elif task_id is not None:
        task: TaskState = after.tasks[task_id]
        kommune = task.kommune_kode
        if isinstance(event, OplysningCompleted):
            answer_days = (event.occurred_at - task.requested_at).total_seconds() / SECONDS_PER_DAY
            on_time = event.occurred_at <= before.tasks[task_id].deadline_at
    if isinstance(event, DecisionMade):
        outcome = event.outcome.value
    return task_id, kommune, outcome, answer_days, on_time


def _task_key(t: TaskState) -> tuple[Any, ...]:
    return (t.status, t.overdue, t.deadline_at)


def dekad_start(day: date) -> date:
    """The first day of `day`'s ten-day block: the 1st, 11th or 21st of its month (the third runs to its end)."""
    return day.replace(day=min(2, (day.day - 1) // 10) * 10 + 1)


def buckets(at: datetime) -> tuple[tuple[str, date], ...]:
    """The ('y' year, 'm' month, 't' ten days, 'd' day) buckets, in UTC, that an interval boundary at `at` is summed
    into (the ten-day blocks spare an as-of query most of a month's days: migration 0009)."""
    day = at.astimezone(UTC).date()
    return ("y", day.replace(month=1, day=1)), ("m", day.replace(day=1)), ("t", dekad_start(day)), ("d", day)


@dataclass
class _Intervals:
    """Interval rows made by one batch (opened, maybe closed within it), DB rows it closes, and the +1/-1 boundary
    deltas of the counted ones (open tasks, active cases) per bucket and group."""

    valid_to_index: int
    group: Callable[[list[Any]], tuple[Any, ...] | None]  # the counted group of a row, None if not counted
    rows: list[list[Any]] = field(default_factory=list)
    open_new: dict[str, list[Any]] = field(default_factory=dict)
    close_db: dict[str, datetime] = field(default_factory=dict)
    deltas: Counter[tuple[Any, ...]] = field(default_factory=Counter)

    def change(self, key: str, at: datetime, row: list[Any], *, is_new: bool) -> None:
        previous = self.open_new.get(key)
        if previous is not None:
            previous[self.valid_to_index] = at
            self.count(self.group(previous), at, -1)
        elif not is_new:
            self.close_db[key] = at  # its -1 is counted when the UPDATE returns the row's group
        self.rows.append(row)
        self.open_new[key] = row
        self.count(self.group(row), at, +1)

    def count(self, group: tuple[Any, ...] | None, at: datetime, delta: int) -> None:
        if group is not None:
            for grain, bucket in buckets(at):
                self.deltas[(grain, bucket, *group)] += delta


_TASK_COLS = [
    "task_id",
    "case_id",
    "kommune_kode",
    "status",
    "is_open",
    "overdue",
    "requested_at",
    "deadline_at",
    "valid_from",
    "valid_to",
    "from_position",
]
_CASE_COLS = [
    "case_id",
    "kommune_kode",
    "status",
    "is_active",
    "received_at",
    "valid_from",
    "valid_to",
    "from_position",
]
_FACT_COLS = [
    "global_position",
    "occurred_at",
    "local_date",
    "type",
    "case_id",
    "task_id",
    "kommune_kode",
    "outcome",
    "answer_days",
    "on_time",
]


class CaseViews:
    """The `case_views` projection over tables named with `suffix` ("" live, "_rebuild" while rebuilding)."""

    def __init__(self, suffix: str = "", *, cache_size: int = 20_000) -> None:
        self.suffix = suffix
        self._cache: OrderedDict[str, CaseEntry] = OrderedDict()
        self._cache_size = cache_size

    def table(self, name: str) -> str:
        return f"{name}{self.suffix}"

    def forget_cache(self) -> None:
        self._cache.clear()

    def remember(self, entries: Mapping[str, CaseEntry]) -> None:
        """Keep states the caller has committed; closed cases receive no more events and are not kept."""
        for case_id, entry in entries.items():
            if entry.state.closed_at is not None:
                self._cache.pop(case_id, None)
                continue
            self._cache[case_id] = entry
            self._cache.move_to_end(case_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _load(self, conn: Conn, case_ids: set[str]) -> dict[str, CaseEntry]:
        found = {cid: self._cache[cid] for cid in case_ids if cid in self._cache}
        missing = [cid for cid in case_ids if cid not in found]
        if missing:
            rows = await conn.fetch(
                f"SELECT case_id, state::text AS state, clock, global_position FROM {self.table('case_status')}"
                " WHERE case_id = ANY($1::text[])",
                missing,
            )
            for r in rows:
                found[r["case_id"]] = CaseEntry(
                    CaseState.model_validate_json(r["state"]), r["clock"], r["global_position"]
                )
        return found

    async def apply(self, conn: Conn, rows: Sequence[Row]) -> dict[str, CaseEntry]:
        """Fold raw event rows (global order) into the tables, in the caller's transaction.

        Returns the new case entries; hand them to `remember` once the transaction has committed.
        """
        decoded = [(int(r["global_position"]), decode_event(r)) for r in rows]
        entries = await self._load(conn, {e.case_id for _, e in decoded})
        touched: dict[str, CaseEntry] = {}
        new_cases: set[str] = set()
        # Row layouts follow _TASK_COLS / _CASE_COLS.
        tasks = _Intervals(9, lambda r: (r[2], r[3], r[5]) if r[4] else None)
        cases = _Intervals(6, lambda r: (r[1], r[2]) if r[3] else None)
        facts: list[tuple[Any, ...]] = []
        for position, event in decoded:
            entry = entries.get(event.case_id)
            before = entry.state if entry else CaseState()
            if entry is not None and position <= entry.position:
                continue  # already folded (defensive: the tracking position should prevent this)
            try:
                after = evolve(before, event)
            except DomainError as exc:
                raise ProjectionError(
                    f"event {event.event_id} at position {position} does not fold onto case {event.case_id}: {exc}"
                ) from exc
            clock = event.occurred_at if entry is None else max(entry.clock, event.occurred_at)
            if entry is None:
                new_cases.add(event.case_id)
            entry = CaseEntry(after, clock, position)
            entries[event.case_id] = entry
            touched[event.case_id] = entry

            if (before.status, before.kommune_kode) != (after.status, after.kommune_kode):
                assert after.received_at is not None
                cases.change(
                    event.case_id,
                    clock,
                    [
                        event.case_id,
                        after.kommune_kode,
                        after.status.value,
                        after.status in ACTIVE_CASE_STATUSES and after.closed_at is None,
                        after.received_at,
                        clock,
                        None,
                        position,
                    ],
                    is_new=before.status is CaseStatus.NEW,
                )
            for task_id, task in after.tasks.items():
                old = before.tasks.get(task_id)
                if old is task or (old is not None and _task_key(old) == _task_key(task)):
                    continue
                tasks.change(
                    task_id,
                    clock,
                    [
                        task_id,
                        event.case_id,
                        task.kommune_kode,
                        task.status.value,
                        task.is_open,
                        task.overdue,
                        task.requested_at,
                        task.deadline_at,
                        clock,
                        None,
                        position,
                    ],
                    is_new=old is None,
                )
            fact = fact_for(event, before, after)
            if fact is not None:
                local_date = event.occurred_at.astimezone(COPENHAGEN).date()
                facts.append((position, event.occurred_at, local_date, event.type, event.case_id, *fact))

        await self._write(conn, touched, tasks, cases, facts)
        return touched

    async def _write(
        self,
        conn: Conn,
        touched: Mapping[str, CaseEntry],
        tasks: _Intervals,
        cases: _Intervals,
        facts: list[tuple[Any, ...]],
    ) -> None:
        if touched:
            cols: list[list[Any]] = [[] for _ in range(14)]
            for case_id, entry in touched.items():
                s = entry.state
                values = (
                    case_id,
                    s.status.value,
                    s.kommune_kode,
                    s.case_type.value if s.case_type else None,
                    s.subject_id,
                    s.open_task_id,
                    s.received_at,
                    s.decided_at,
                    s.outcome.value if s.outcome else None,
                    s.closed_at,
                    s.version,
                    entry.clock,
                    entry.position,
                    s.model_dump_json(),
                )
                for col, v in zip(cols, values, strict=True):
                    col.append(v)
            await conn.execute(
                f"INSERT INTO {self.table('case_status')} (case_id, status, kommune_kode, case_type, subject_id,"
                " open_task_id, received_at, decided_at, outcome, closed_at, version, clock, global_position, state)"
                " SELECT u.case_id, u.status, u.kommune_kode, u.case_type, u.subject_id, u.open_task_id,"
                " u.received_at, u.decided_at, u.outcome, u.closed_at, u.version, u.clock, u.global_position,"
                " u.state::jsonb"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
                " $7::timestamptz[], $8::timestamptz[], $9::text[], $10::timestamptz[], $11::int[],"
                " $12::timestamptz[], $13::bigint[], $14::text[])"
                " AS u (case_id, status, kommune_kode, case_type, subject_id, open_task_id, received_at, decided_at,"
                " outcome, closed_at, version, clock, global_position, state)"
                " ON CONFLICT (case_id) DO UPDATE SET status = excluded.status, kommune_kode = excluded.kommune_kode,"
                " case_type = excluded.case_type, subject_id = excluded.subject_id,"
                " open_task_id = excluded.open_task_id, received_at = excluded.received_at,"
                " decided_at = excluded.decided_at, outcome = excluded.outcome, closed_at = excluded.closed_at,"
                " version = excluded.version, clock = excluded.clock, global_position = excluded.global_position,"
                " state = excluded.state",
                *cols,
            )
        # Close the intervals left open by earlier batches before inserting this batch's rows.
        for name, key_col, group_cols, ivs in (
            ("task_intervals", "task_id", "t.kommune_kode, t.status, t.overdue, t.is_open", tasks),
            ("case_intervals", "case_id", "t.kommune_kode, t.status, t.is_active", cases),
        ):
            if ivs.close_db:
                closed = await conn.fetch(
                    f"UPDATE {self.table(name)} AS t SET valid_to = v.at"
                    f" FROM unnest($1::text[], $2::timestamptz[]) AS v (key, at)"
                    f" WHERE t.{key_col} = v.key AND t.valid_to IS NULL"
                    f" RETURNING v.at, {group_cols}",
                    list(ivs.close_db),
                    list(ivs.close_db.values()),
                )
                for r in closed:
                    *group, counted = tuple(r)[1:]
                    ivs.count(tuple(group) if counted else None, r["at"], -1)
        for name, ivs, group_cols in (
            ("task_deltas", tasks, "kommune_kode, status, overdue"),
            ("case_deltas", cases, "kommune_kode, status"),
        ):
            changed = [(k, n) for k, n in ivs.deltas.items() if n]
            if not changed:
                continue
            width = len(changed[0][0])
            columns = [[k[i] for k, _ in changed] for i in range(width)]
            types = ["text", "date", "text", "text", "boolean"][:width]
            unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
            await conn.execute(
                f"INSERT INTO {self.table(name)} AS d (grain, bucket, {group_cols}, delta)"
                f" SELECT * FROM unnest({unnest}, ${width + 1}::bigint[])"
                f" ON CONFLICT (grain, bucket, {group_cols}) DO UPDATE SET delta = d.delta + excluded.delta",
                *columns,
                [n for _, n in changed],
            )
        if tasks.rows:
            await conn.copy_records_to_table(self.table("task_intervals"), records=tasks.rows, columns=_TASK_COLS)
        if cases.rows:
            await conn.copy_records_to_table(self.table("case_intervals"), records=cases.rows, columns=_CASE_COLS)
        if facts:
            await conn.copy_records_to_table(self.table("event_facts"), records=facts, columns=_FACT_COLS)


_SELECT_RAW = (
    "SELECT global_position, event_id, case_id, stream_version, type, schema_version, data, occurred_at"
    " FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
)


class ProjectionRunner:
    """Keeps `case_views` up to date: one batch per transaction, tracking position in the same transaction.

    Several runners may run at once (e.g. one per worker process): the tracking row is locked per batch, so they
    take turns and never apply an event twice.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        views: CaseViews | None = None,
    ) -> None:
        self.pool = pool
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.views = views or CaseViews()
        self._token: tuple[int, int] | None = None  # (generation, position) the cache is valid for

    async def step(self) -> int:
        """Apply one batch; the number of events applied (0 when caught up)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT position, generation FROM projection_positions WHERE name = $1 FOR UPDATE", PROJECTION
                )
                if row is None:
                    raise ProjectionError(f"projection {PROJECTION!r} has no tracking row: run the migrations")
                position, generation = int(row["position"]), int(row["generation"])
                if self._token != (generation, position):
                    self.views.forget_cache()  # another runner or a rebuild moved it: our states may be stale
                rows = await conn.fetch(_SELECT_RAW, position, self.batch_size)
                if not rows:
                    self._token = (generation, position)
                    return 0
                entries = await self.views.apply(conn, rows)
                new_position = int(rows[-1]["global_position"])
                await conn.execute(
                    "UPDATE projection_positions SET position = $2, updated_at = now() WHERE name = $1",
                    PROJECTION,
                    new_position,
                )
        except BaseException:
            self.views.forget_cache()
            self._token = None
            raise
        self.views.remember(entries)
        self._token = (generation, new_position)
        return len(rows)

    async def catch_up(self) -> int:
        """Apply batches until none is left; the tracking position reached."""
        while await self.step():
            pass
        return await projection_position(self.pool)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Catch up, then follow until `stop` is set. A lost notification costs at most one poll interval."""
        stop = stop or asyncio.Event()
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        listener: PoolConnectionProxy[asyncpg.Record] | None = None
        try:
            while not stop.is_set():
                if listener is None or listener.is_closed():
                    listener = await self._listen(listener, on_notify)
                wake.clear()
                try:
                    await self.catch_up()
                except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                    log.warning("projection runner lost the database, retrying", error=type(exc).__name__)
                waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())}
                await asyncio.wait(waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.remove_listener("events_appended", on_notify)
                with contextlib.suppress(Exception):
                    await self.pool.release(listener)

    async def _listen(
        self, old: PoolConnectionProxy[asyncpg.Record] | None, callback: Any
    ) -> PoolConnectionProxy[asyncpg.Record] | None:
        """A pool connection kept for LISTEN while the runner lives (notifications arrive on that connection)."""
        if old is not None:
            with contextlib.suppress(Exception):
                await self.pool.release(old)
        try:
            conn = await self.pool.acquire()
            await conn.add_listener("events_appended", callback)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
            return None  # polling carries on; the next loop tries again
        return conn


async def projection_position(db: Db) -> int:
    return int(await db.fetchval("SELECT position FROM projection_positions WHERE name = $1", PROJECTION))


async def rebuild(pool: asyncpg.Pool, *, batch_size: int = 2000) -> int:
    """Refold the whole log into fresh tables, then swap them in; the live tables serve until the swap.

    Returns the position the new tables are at. A crash midway leaves the live tables untouched.
    """
    views = CaseViews(REBUILD_SUFFIX, cache_size=50_000)
    async with pool.acquire() as conn:
        for name in TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS {views.table(name)}")
        await conn.execute("SELECT eventlog_create_case_views($1)", REBUILD_SUFFIX)
    position = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_SELECT_RAW, position, batch_size)
            if not rows:
                break
            entries = await views.apply(conn, rows)
        views.remember(entries)
        position = int(rows[-1]["global_position"])
    async with pool.acquire() as conn, conn.transaction():
        # Holding the tracking row keeps every live runner out until the swap is committed.
        await conn.fetchrow("SELECT position FROM projection_positions WHERE name = $1 FOR UPDATE", PROJECTION)
        # Up to the head as of now; later events are the live runner's, from the position set below.
        head = await head_position_in(conn)
        while position < head:
            rows = await conn.fetch(_SELECT_RAW, position, batch_size)
            if not rows:
                break
            views.remember(await views.apply(conn, rows))
            position = int(rows[-1]["global_position"])
        await conn.execute("SELECT eventlog_swap_case_views($1)", REBUILD_SUFFIX)
        await conn.execute(
            "UPDATE projection_positions SET position = $2, generation = generation + 1, updated_at = now()"
            " WHERE name = $1",
            PROJECTION,
            position,
        )
    return position
