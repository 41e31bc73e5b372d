"""Event log benchmark: appends vs the `eventsourcing` library and raw COPY; queries at scale vs a naive fold.

    python bench/eventlog.py [--quick]
    python bench/eventlog.py --scale 30M [--check 300k] [--project 1.5M]

Starts its own embedded PostgreSQL (fsync on) and measures, in one run on that one server:

1. Appends/s of `EventStore.append` (idempotent insert-or-confirm, stream-version check, EXCLUSIVE lock, personal
   fields sealed per subject) for single events, per-case batches of 5 and 4 concurrent writers; the same event
   bodies through `eventsourcing`'s `PostgresApplicationRecorder` (same EXCLUSIVE-lock protocol, bytes pre-serialised
   for it, no idempotency check); and one raw COPY of the same rows into a table shaped like ours.
2. A realistic log (cases of 5 lifecycles over 2021-2025, kommuner weighted by population) written with COPY up to
   1 M and then 3 M events; the projection catching up; the as-of backlog query and quarterly aggregates; and the
   same answers by a naive fold over the raw log, checked equal. The naive fold is measured whole at the first size
   and extrapolated linearly (it is linear in the log) to the second; the JSON says so.

With `--scale N` only part 2 runs, to N events (3M, 10M, 30M...): the rows are made day by day by a thread while
the server takes the previous chunk, so the log never sits in memory; the first checkpoint (`--check`, default 1 M)
is checked against the naive fold and times the quarterly report's own path (`FigureStore.log_at` + `compute`,
which folds the whole log and is linear in it: extrapolated, the JSON says so); at N it adds the disk size of every
table and its indexes. `--project M` projects only the first M events (a projection runs at ~1/10 of COPY's rate,
hours at 30 M): the log is in business-time order, so the answers as of any instant before the last projected event
are exact, and the as-of and quarter queries are measured over the second half of that span, at N's density.

The last line of output is one JSON object with every figure and ratio.
"""

# ruff: noqa: E402 - the path fix below must run before the project imports
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/eventlog.py` puts bench/ first on sys.path, where this very file would shadow the eventlog package;
# the repo root goes first instead, for the naive fold in tests/ (not an installed package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import itertools
import json
import queue
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from domain.application import Application
from domain.calendar import Duration, Unit
from domain.commands import (
    CloseCase,
    Command,
    MakeDecision,
    MarkDelivered,
    MarkOverdue,
    NotifyCitizen,
    NotifyKommune,
    ReceiveApplication,
    RecordPreScreening,
    RejectFormally,
    RequestExtension,
    RequestOplysning,
    ReturnTask,
    SendReminder,
    SubmitPart,
    Withdraw,
    decide,
)
from domain.events import Channel, Event, Outcome, RequestReason, Verdict
from domain.kommuner import all_kommuner
from domain.state import CaseState, evolve
from eventlog import queries
from eventlog.migrate import migrate_dsn
from eventlog.personal import SubjectCipher, canonical_json
from eventlog.projections import ProjectionRunner
from eventlog.store import EventStore, create_pool, decode_event
from runtime.crypto import KeyRing
from runtime.embedded import EmbeddedPostgres, free_port
from tests.eventlog.naive import NaiveLog

START_DAY = date(2021, 1, 4)
END = datetime(2026, 1, 1, tzinfo=UTC)
VARIANTS = {"granted": 45, "rejected": 15, "overdue": 15, "formal": 8, "withdrawn": 8, "returned": 9}
K1, K2 = "101", "147"  # template kommuner, replaced per case
SIZES = {"full": (1_000_000, 3_000_000), "quick": (100_000, 300_000)}
# Single appends, batch cases, concurrent appends per round; rounds alternate ours and theirs, so that load from
# other processes on the machine hits both alike, and the medians over rounds are reported.
APPENDS = {"full": (1000, 300, 1000), "quick": (300, 100, 400)}
ROUNDS = {"full": 3, "quick": 1}


def say(text: str) -> None:
    print(text, flush=True)


# ---- realistic cases, made by the domain itself -----------------------------------------------------------------


def application(kommune: str, received: date) -> Application:
    return Application.model_validate(
        {
            "case_type": "seniorpension",
            "applicant": {"cpr": "150562-1234", "name": "Bench Person"},
            "kommune_kode": kommune,
            "received_on": received.isoformat(),
            "employment": [{"start": "1985-01-01", "end": None, "weekly_hours": 37}],
            "current_attachment": {"status": "working", "since": "1985-01-01"},
            "declared_weekly_work_capacity_hours": 10,
            "latest_job_months": 60,
        }
    )


class Driver:
    def __init__(self, case_id: str, now: datetime) -> None:
        self.case_id = case_id
        self.now = now
        self.state = CaseState()
        self.appends: list[list[Event]] = []

    def do(self, command: Command, at: datetime) -> None:
        self.now = at
        events = decide(command, self.state, now=at, new_id=uuid.uuid4)
        for e in events:
            self.state = evolve(self.state, e)
        self.appends.append(events)


def lifecycle(case_id: str, start: datetime, kommune: str, other: str, variant: str) -> list[list[Event]]:
    """One case's appends for a lifecycle variant, starting at `start`."""
    d = Driver(case_id, start)
    minute = timedelta(minutes=1)
    day = timedelta(days=1)
    d.do(
        ReceiveApplication(
            case_id=case_id, subject_id=f"subj-{case_id}", application=application(kommune, start.date())
        ),
        start,
    )
    if variant == "formal":
        d.do(RecordPreScreening(verdict=Verdict.FORMAL_REJECTION, details={"rule": "age"}), start + 10 * minute)
        d.do(RejectFormally(reason_codes=("age",), reasons="Alder"), start + 2 * day)
        d.do(NotifyCitizen(message_id="m1"), start + 2 * day + minute)
        d.do(CloseCase(), start + 2 * day + 2 * minute)
        return d.appends
    d.do(RecordPreScreening(verdict=Verdict.DISPATCH), start + 10 * minute)
    tid = f"{case_id}-t1"
    d.do(RequestOplysning(task_id=tid, reason=RequestReason.INITIAL, policy_id="standard-2021.1"), start + 15 * minute)
    d.do(MarkDelivered(task_id=tid, channel=Channel.PUSH), start + 16 * minute)
    if variant == "withdrawn":
        d.do(Withdraw(reason="Fortrudt"), start + 30 * day)
        d.do(NotifyCitizen(message_id="m1"), start + 30 * day + minute)
        d.do(NotifyKommune(kommune_kode=kommune, notice="withdrawn", task_id=tid), start + 30 * day + 2 * minute)
        d.do(CloseCase(), start + 31 * day)
        return d.appends
    if variant == "returned":
        d.do(ReturnTask(task_id=tid, kommune_kode=kommune, correct_kommune_kode=other), start + 6 * day)
        tid = f"{case_id}-t2"
        d.do(
            RequestOplysning(task_id=tid, reason=RequestReason.REROUTED, policy_id="standard-2021.1"),
            start + 6 * day + minute,
        )
        d.do(MarkDelivered(task_id=tid, channel=Channel.INBOX), start + 6 * day + 2 * minute)
        kommune = other
    task = d.state.open_task
    assert task is not None
    if variant == "overdue":
        d.do(SendReminder(task_id=tid), task.deadline_at - 14 * day)
        d.do(SendReminder(task_id=tid), task.deadline_at - 3 * day)
        d.do(MarkOverdue(task_id=tid), task.deadline_at + timedelta(hours=1))
        d.do(
            RequestExtension(
                task_id=tid, kommune_kode=kommune, request_id="x1", extend_by=Duration(quantity=2, unit=Unit.WEEKS)
            ),
            task.deadline_at + 2 * day,
        )
        answered = task.deadline_at + 10 * day
    else:
        d.do(SubmitPart(task_id=tid, kommune_kode=kommune, submission_id="s1", document_ids=("d1",)), d.now + 25 * day)
        answered = d.now + 20 * day
    d.do(SubmitPart(task_id=tid, kommune_kode=kommune, submission_id="s2", document_ids=("d2",), final=True), answered)
    outcome = Outcome.REJECTED if variant == "rejected" else Outcome.GRANTED
    d.do(MakeDecision(outcome=outcome, decided_by="cw-1", reasons="Begrundelse"), answered + 14 * day)
    d.do(NotifyCitizen(message_id="m1"), answered + 14 * day + minute)
    d.do(NotifyKommune(kommune_kode=kommune, notice="decision"), answered + 14 * day + 2 * minute)
    d.do(CloseCase(), answered + 15 * day)
    return d.appends


# ---- fast log generation: per-day templates, substituted per case, written with COPY ----------------------------

Template = list[tuple[int, str, int, str, timedelta]]  # (stream_version, type, schema_version, data text, offset)


def make_template(day: date, variant: str) -> Template:
    start = datetime(day.year, day.month, day.day, 7, 0, tzinfo=UTC)
    out: Template = []
    version = 0
    for batch in lifecycle("CASE", start, K1, K2, variant):
        for e in batch:
            version += 1
            data = e.data()
            if "personal" in data:
                data["personal"] = None
            text = canonical_json(data).replace(f'"{K1}"', '"\x01"').replace(f'"{K2}"', '"\x02"')
            out.append((version, e.type, type(e).SCHEMA_VERSION, text, e.occurred_at - start))
    return out


def generate_log(n_events: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """About `n_events` COPY rows (event_id, case_id, stream_version, type, schema_version, data, hash, occurred_at),
    in business-time order, cut at the end of 2025 (cases still running then stay open).

    Streamed day by day, so that 30 M rows never sit in memory at once: each case's events wait in the bucket of the
    UTC day they fall on until the walk reaches that day (only the cases still running are held)."""
    rng = random.Random(seed)
    kommuner = all_kommuner()
    codes = [k.kode for k in kommuner]
    cum = list(itertools.accumulate(k.indbyggere for k in kommuner))
    variants = list(VARIANTS)
    vcum = list(itertools.accumulate(VARIANTS.values()))
    index = {c: i for i, c in enumerate(codes)}
    days = (END.date() - START_DAY).days
    avg = 11.5
    n_cases = int(n_events / avg * 1.08)
    # The same draws, in the same order, as when the whole log was built in memory and sorted.
    starts: list[list[tuple[int, str, str, str, int]]] = [[] for _ in range(days)]
    for i in range(n_cases):
        day_index = rng.randrange(days)
        variant = rng.choices(variants, cum_weights=vcum)[0]
        k1 = rng.choices(codes, cum_weights=cum)[0]
        k2 = codes[(index[k1] + 1 + rng.randrange(len(codes) - 1)) % len(codes)]
        starts[day_index].append((i, variant, k1, k2, rng.randrange(600)))
    templates: dict[tuple[int, str], Template] = {}
    zero = bytes(32)
    origin = datetime.combine(START_DAY, datetime.min.time(), UTC)
    end_day = (END - origin).days
    pending: dict[int, list[tuple[datetime, str, int, str, int, str]]] = {}
    emitted = 0
    for day in range(end_day):
        for i, variant, k1, k2, minute in starts[day] if day < days else ():
            key = (day, variant)
            template = templates.get(key)
            if template is None:
                template = templates[key] = make_template(START_DAY + timedelta(days=day), variant)
            case_id = f"b{i}"
            base = origin + timedelta(days=day, hours=7, minutes=minute)
            for version, etype, sv, text, offset in template:
                at = base + offset
                if at >= END:
                    break
                data = text.replace("CASE", case_id).replace("\x01", k1).replace("\x02", k2)
                pending.setdefault((at - origin).days, []).append((at, case_id, version, etype, sv, data))
        today = pending.pop(day, [])
        today.sort(key=lambda r: (r[0], r[1], r[2]))
        for at, case_id, version, etype, sv, data in today:
            if emitted == n_events:
                return
            yield (uuid.uuid4(), case_id, version, etype, sv, data, zero, at)
            emitted += 1


def parse_count(text: str) -> int:
    """'30M', '500k', '3000000' -> a number of events."""
    t = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    number = float(t[:-1] if factor > 1 else t)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"not a positive count: {text!r}")
    return int(number * factor)


def label_of(n: int) -> str:
    """The JSON key prefix of a log size: 1m, 3m, 30m, 0.3m."""
    return f"{n / 1_000_000:g}m"


COPY_COLUMNS = [
    "event_id",
    "case_id",
    "stream_version",
    "type",
    "schema_version",
    "data",
    "content_hash",
    "occurred_at",
]


class Feed:
    """Rows of a generator in chunks, made by a thread one or two chunks ahead, so that making the next chunk (Python)
    overlaps the COPY of this one (the server) instead of taking turns with it."""

    def __init__(self, rows: Iterator[tuple[Any, ...]], chunk: int = 200_000) -> None:
        self._rows = rows
        self._chunk = chunk
        self._queue: queue.Queue[list[tuple[Any, ...]]] = queue.Queue(maxsize=2)
        self._want: queue.Queue[int] = queue.Queue()
        self._thread = threading.Thread(target=self._make, daemon=True)
        self._thread.start()

    def _make(self) -> None:
        while True:
            n = self._want.get()
            while n > 0:
                chunk = list(itertools.islice(self._rows, min(self._chunk, n)))
                self._queue.put(chunk)
                if not chunk:
                    return
                n -= len(chunk)

    def ask(self, n: int) -> None:
        """Start making the next `n` rows (in chunks) before they are taken."""
        self._want.put(n)

    async def take(self) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._queue.get)


async def copy_rows(url: str, feed: Feed, n: int) -> tuple[int, float, datetime | None]:
    """COPY the next `n` rows of `feed` (asked for already); (rows written, seconds in COPY, last row's occurred_at).

    Only the COPY calls are timed: making the rows is the generator's cost, not the database's."""
    conn = await asyncpg.connect(url)  # no jsonb codec: the data column goes in as JSON text
    written = 0
    elapsed = 0.0
    last: datetime | None = None
    try:
        while written < n:
            chunk = await feed.take()
            if not chunk:
                break
            t = time.perf_counter()
            await conn.copy_records_to_table("events", records=chunk, columns=COPY_COLUMNS)
            elapsed += time.perf_counter() - t
            written += len(chunk)
            last = chunk[-1][7]
            if written % 2_000_000 == 0:
                say(f"  COPY {written:,} / {n:,} ({written / elapsed:,.0f} rows/s)")
        await conn.execute("ANALYZE events")
        return written, elapsed, last
    finally:
        await conn.close()


# ---- appends ----------------------------------------------------------------------------------------------------


def append_workload(n_cases: int, prefix: str) -> list[list[Event]]:
    """The first five events of `n_cases` realistic cases (received with personal data, then four more)."""
    rng = random.Random(prefix)
    out = []
    for i in range(n_cases):
        variant = rng.choices(list(VARIANTS), list(VARIANTS.values()))[0]
        start = datetime(2021, 3, 1, 8, tzinfo=UTC) + timedelta(hours=i)
        events = [e for batch in lifecycle(f"{prefix}{i}", start, "329", "101", variant) for e in batch]
        out.append(events[:5])
    return out


async def bench_ours(url: str, cipher: SubjectCipher, sizes: tuple[int, int, int], tag: str) -> dict[str, float]:
    n_single, n_batch_cases, n_concurrent = sizes
    pool = await create_pool(url, min_size=5, max_size=5)
    store = EventStore(pool, cipher)
    out: dict[str, float] = {}
    try:
        cases = append_workload(n_single // 5, f"s{tag}-")
        t = time.perf_counter()
        for events in cases:
            for v, e in enumerate(events):
                await store.append(e.case_id, v, [e])
        out["single_appends_per_s"] = n_single / (time.perf_counter() - t)

        cases = append_workload(n_batch_cases, f"b{tag}-")
        t = time.perf_counter()
        for events in cases:
            await store.append(events[0].case_id, 0, events)
        elapsed = time.perf_counter() - t
        out["batch5_appends_per_s"] = n_batch_cases / elapsed
        out["batch5_events_per_s"] = 5 * n_batch_cases / elapsed

        cases = append_workload(n_concurrent // 5, f"c{tag}-")

        async def writer(mine: list[list[Event]]) -> None:
            for events in mine:
                for v, e in enumerate(events):
                    await store.append(e.case_id, v, [e])

        t = time.perf_counter()
        await asyncio.gather(*(writer(cases[w::4]) for w in range(4)))
        out["concurrent4_appends_per_s"] = n_concurrent / (time.perf_counter() - t)
    finally:
        await pool.close()
    return out


def bench_eventsourcing(url: str, sizes: tuple[int, int, int], tag: str) -> dict[str, float]:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    n_single, n_batch_cases, n_concurrent = sizes
    rest = url.removeprefix("postgresql://")
    user, _, hostpart = rest.partition("@")
    hostport, _, dbname = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    datastore = PostgresDatastore(dbname, host, port, user, "", pool_size=4)
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()

    def stored(events: list[Event]) -> list[StoredEvent]:
        # Same bodies as ours, serialised up front (we serialise, hash and seal inside the timed append).
        oid = uuid.uuid5(uuid.NAMESPACE_URL, events[0].case_id)
        return [
            StoredEvent(oid, v + 1, f"domain.events:{e.type}", canonical_json(e.data()).encode())
            for v, e in enumerate(events)
        ]

    out: dict[str, float] = {}
    try:
        cases = [stored(c) for c in append_workload(n_single // 5, f"es-s{tag}-")]
        t = time.perf_counter()
        for evs in cases:
            for e in evs:
                recorder.insert_events([e])
        out["single_appends_per_s"] = n_single / (time.perf_counter() - t)

        cases = [stored(c) for c in append_workload(n_batch_cases, f"es-b{tag}-")]
        t = time.perf_counter()
        for evs in cases:
            recorder.insert_events(evs)
        elapsed = time.perf_counter() - t
        out["batch5_appends_per_s"] = n_batch_cases / elapsed
        out["batch5_events_per_s"] = 5 * n_batch_cases / elapsed

        cases = [stored(c) for c in append_workload(n_concurrent // 5, f"es-c{tag}-")]

        def writer(mine: list[list[StoredEvent]]) -> None:
            for evs in mine:
                for e in evs:
                    recorder.insert_events([e])

        threads = [threading.Thread(target=writer, args=(cases[w::4],)) for w in range(4)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        out["concurrent4_appends_per_s"] = n_concurrent / (time.perf_counter() - t)
    finally:
        datastore.close()
    return out


async def bench_copy(url: str, n: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE copy_events (LIKE events INCLUDING ALL)")
        rows = [
            (e.event_id, e.case_id, v + 1, e.type, 1, canonical_json(e.data()), bytes(32), e.occurred_at)
            for events in append_workload(n // 5, "copy")
            for v, e in enumerate(events)
        ]
        t = time.perf_counter()
        await conn.copy_records_to_table(
            "copy_events",
            records=rows,
            columns=COPY_COLUMNS,
        )
        return len(rows) / (time.perf_counter() - t)
    finally:
        await conn.close()


# ---- queries at scale -------------------------------------------------------------------------------------------


async def atimed(coro: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - t


async def read_all_events(url: str) -> list[Event]:
    conn = await asyncpg.connect(url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    events: list[Event] = []
    try:
        async with conn.transaction():
            async for row in conn.cursor(
                "SELECT global_position, event_id, case_id, stream_version, type, schema_version, data, occurred_at"
                " FROM events ORDER BY global_position",
                prefetch=20_000,
            ):
                events.append(decode_event(row))
    finally:
        await conn.close()
    return events


def quarter_bounds(year: int, q: int) -> tuple[datetime, datetime]:
    tz = ZoneInfo("Europe/Copenhagen")
    start = datetime(year, 3 * q - 2, 1, tzinfo=tz)
    end = datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=tz)
    return start, end


async def measure_queries(
    pool: asyncpg.Pool, label: str, first: datetime, last: datetime, rng: random.Random
) -> dict[str, Any]:
    """The as-of backlog at 50 random instants in [first, last), and the quarter figures of the quarter in the middle
    (or the last whole quarter before `last`, when the projection covers only the start of the log)."""
    out: dict[str, Any] = {}
    ats = [first + (last - first) * rng.random() for _ in range(50)]
    for at in ats[:3]:
        await queries.task_backlog(pool, at)  # warm the caches; not measured
    backlog_ms = []
    for at in ats:
        _, s = await atimed(queries.task_backlog(pool, at))
        backlog_ms.append(s * 1000)
    out[f"{label}_asof_backlog_ms_median"] = statistics.median(backlog_ms)
    out[f"{label}_asof_backlog_ms_p95"] = statistics.quantiles(backlog_ms, n=20)[-1]
    out[f"{label}_asof_backlog_ms_max"] = max(backlog_ms)
    out[f"{label}_asof_backlog_instants"] = len(backlog_ms)
    _, s = await atimed(queries.case_backlog(pool, ats[0]))
    out[f"{label}_asof_case_backlog_ms"] = s * 1000
    _, s = await atimed(queries.task_backlog(pool))
    out[f"{label}_now_backlog_ms"] = s * 1000
    _, s = await atimed(queries.waiting_tasks(pool, ats[0]))
    out[f"{label}_asof_waiting_tasks_ms"] = s * 1000
    mid = first + (last - first) / 2
    qstart, qend = quarter_bounds(mid.year, (mid.month - 1) // 3 + 1)
    if qend > last:  # a quarter the projection does not cover to its end: the one before it
        prev = qstart - timedelta(days=1)
        qstart, qend = quarter_bounds(prev.year, (prev.month - 1) // 3 + 1)
    out[f"{label}_quarter"] = f"{qstart.year}-Q{(qstart.month - 1) // 3 + 1}"
    q_kommune, s = await atimed(queries.period_counts(pool, "quarter", start=qstart, end=qend, by_kommune=True))
    out[f"{label}_quarter_by_kommune_s"] = s
    _, s = await atimed(queries.period_counts(pool, "quarter", start=qstart, end=qend))
    out[f"{label}_quarter_all_kommuner_s"] = s
    _, s = await atimed(queries.period_counts(pool, "quarter"))
    out[f"{label}_all_quarters_s"] = s
    _, s = await atimed(queries.period_counts(pool, "week"))
    out[f"{label}_all_weeks_s"] = s
    out["_ats"] = ats
    out["_quarter"] = (qstart, qend, q_kommune)
    say(
        f"{label}: as-of backlog median {statistics.median(backlog_ms):.1f} ms, p95"
        f" {out[f'{label}_asof_backlog_ms_p95']:.1f} ms; quarter {out[f'{label}_quarter']} by kommune"
        f" {out[f'{label}_quarter_by_kommune_s']:.3f}s; all quarters {out[f'{label}_all_quarters_s']:.3f}s"
    )
    return out


async def project_to(runner: ProjectionRunner, pool: asyncpg.Pool, target: int) -> tuple[int, float]:
    """Apply the projection up to position `target` (the next batch boundary); (events applied, seconds)."""
    start = await queries.projection_position(pool)
    t = time.perf_counter()
    position = start
    while position < target:
        if not await runner.step():
            break
        position = await queries.projection_position(pool)
    return position - start, time.perf_counter() - t


async def sizes_of(pool: asyncpg.Pool, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    gib = 1024**3
    for table in ("events", "task_intervals", "task_deltas", "case_intervals", "case_deltas", "event_facts"):
        row = await pool.fetchrow(
            "SELECT pg_relation_size($1::regclass), pg_indexes_size($1::regclass),"
            " pg_total_relation_size($1::regclass)",
            table,
        )
        assert row is not None
        heap, indexes, total = row
        out[f"{prefix}_{table}_table_gib"] = heap / gib
        out[f"{prefix}_{table}_indexes_gib"] = indexes / gib
        out[f"{prefix}_{table}_total_gib"] = total / gib
    out[f"{prefix}_database_gib"] = await pool.fetchval("SELECT pg_database_size(current_database())") / gib
    return out


async def report_path(url: str, position: int, quarter: tuple[datetime, datetime]) -> dict[str, float]:
    """The quarterly report's own figures path (reports/build.py): fold every case from the raw log at a position
    (`FigureStore.log_at`), then `reports.quarterly.compute` for the quarter and the one before it."""
    from eventlog.figures import FigureStore
    from reports.quarterly import Quarter, compute

    start = quarter[0].astimezone(ZoneInfo("Europe/Copenhagen"))
    q = Quarter(start.year, (start.month - 1) // 3 + 1)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        t = time.perf_counter()
        log = await FigureStore(pool).log_at(position)
        t1 = time.perf_counter()
        compute(log.timelines, q, log.span)
        compute(log.timelines, q.previous(), log.span)
        t2 = time.perf_counter()
    finally:
        await pool.close()
    return {"fold_s": t1 - t, "compute_s": t2 - t1, "total_s": t2 - t}


async def bench_scale(
    url: str, checkpoints: tuple[int, int], rng: random.Random, *, project: int | None = None
) -> dict[str, Any]:
    """Write the log with COPY up to the first checkpoint, project it, measure the queries and check them against the
    naive fold; then COPY on to the second and measure again. The projection follows up to `project` events
    (default: all); the log is in business-time order, so the answers as of any instant before the last projected
    event are exact, and the queries are measured there, at the second checkpoint's density."""
    n1, n2 = checkpoints
    project = n2 if project is None else max(n1, min(project, n2))
    l1, l2 = label_of(n1), label_of(n2)
    out: dict[str, Any] = {"checkpoints": [n1, n2]}
    feed = Feed(generate_log(n2))
    feed.ask(n1)
    pool = await create_pool(url, min_size=2, max_size=4)
    runner = ProjectionRunner(pool, batch_size=5000)
    first: datetime | None = None
    try:
        t = time.perf_counter()
        copied, copy_s, last1 = await copy_rows(url, feed, n1)
        gen1_s = time.perf_counter() - t - copy_s
        first = await pool.fetchval("SELECT occurred_at FROM events ORDER BY global_position LIMIT 1")
        applied, project_s = await project_to(runner, pool, copied)
        out[f"{l1}_copy_events_per_s"] = copied / copy_s
        out[f"{l1}_projection_events_per_s"] = applied / project_s
        out[f"{l1}_projection_vs_copy_ratio"] = out[f"{l1}_projection_events_per_s"] / out[f"{l1}_copy_events_per_s"]
        await pool.execute("VACUUM ANALYZE")  # what autovacuum does after a load this size
        say(
            f"{l1}: {copied:,} events (waited {gen1_s:.0f}s for the generator); COPY {copied / copy_s:,.0f}/s;"
            f" projection {applied / project_s:,.0f} events/s"
        )
        assert first is not None and last1 is not None
        m = await measure_queries(pool, l1, first, last1, rng)
        ats, (qstart, qend, q_kommune) = m.pop("_ats"), m.pop("_quarter")
        out.update(m)
        out.update(await naive_fold(url, pool, ats[0], (qstart, qend), q_kommune, l1))
        rp = await report_path(url, copied, (qstart, qend))
        out.update({f"{l1}_report_{k}": v for k, v in rp.items()})
        say(f"{l1}: the report's path (fold the log at the head, compute two quarters) {rp['total_s']:.1f}s")

        t = time.perf_counter()
        feed.ask(n2 - copied)
        more, copy2_s, _ = await copy_rows(url, feed, n2 - copied)
        gen2_s = time.perf_counter() - t - copy2_s
        total = copied + more
        out["events"] = total
        out[f"{l2}_copy_events_per_s"] = more / copy2_s if more else out[f"{l1}_copy_events_per_s"]
        rate = out[f"{l2}_copy_events_per_s"]
        say(f"{l2}: {total:,} events (waited {gen2_s:.0f}s for the generator); COPY {rate:,.0f}/s")
        applied2, project2_s = await project_to(runner, pool, project)
        out[f"{l2}_projected_events"] = await queries.projection_position(pool)
        out[f"{l2}_projection_covers_whole_log"] = out[f"{l2}_projected_events"] >= total
        if applied2:
            out[f"{l2}_projection_events_per_s"] = applied2 / project2_s
            out[f"{l2}_projection_sample_events"] = applied2
            out[f"{l2}_projection_vs_copy_ratio"] = (
                out[f"{l2}_projection_events_per_s"] / out[f"{l2}_copy_events_per_s"]
            )
            say(f"{l2}: projection {applied2:,} more events at {applied2 / project2_s:,.0f} events/s")
        await pool.execute("VACUUM ANALYZE")
        upto = await pool.fetchval(
            "SELECT occurred_at FROM events WHERE global_position = $1", out[f"{l2}_projected_events"]
        )
        # A partial projection covers the first months of the log, where cases are still ramping up: the queries are
        # measured over the second half of that span, at the full log's density.
        since = first if out[f"{l2}_projection_covers_whole_log"] else first + (upto - first) / 2
        out[f"{l2}_queries_span"] = [since.isoformat(), upto.isoformat()]
        m = await measure_queries(pool, l2, since, upto, rng)
        m.pop("_ats"), m.pop("_quarter")
        out.update(m)
        if not out[f"{l2}_projection_covers_whole_log"]:
            # Only the facts projected so far are scanned: scaled up, since that scan is linear in the facts.
            share = out[f"{l2}_projected_events"] / total
            for k in ("all_quarters_s", "all_weeks_s"):
                out[f"{l2}_{k}_extrapolated"] = out.pop(f"{l2}_{k}") / share
        out.update(await sizes_of(pool, l2))
        say(f"{l2}: events table + indexes {out[f'{l2}_events_total_gib']:.2f} GiB")
        scale = total / n1
        out[f"{l2}_naive_asof_backlog_s"] = out[f"{l1}_naive_asof_backlog_s"] * scale
        out[f"{l2}_naive_quarter_s"] = out[f"{l1}_naive_quarter_s"] * scale
        out[f"{l2}_naive_extrapolated_from_{l1}"] = True
        out[f"{l2}_report_total_s_extrapolated_from_{l1}"] = rp["total_s"] * scale
        for label in (l1, l2):
            out[f"{label}_asof_backlog_speedup_vs_naive"] = (
                out[f"{label}_naive_asof_backlog_s"] * 1000 / out[f"{label}_asof_backlog_ms_median"]
            )
            out[f"{label}_quarter_speedup_vs_naive"] = (
                out[f"{label}_naive_quarter_s"] / out[f"{label}_quarter_by_kommune_s"]
            )
    finally:
        await pool.close()
    return out


async def naive_fold(
    url: str, pool: asyncpg.Pool, at: datetime, quarter: tuple[datetime, datetime], q_kommune: list[Any], label: str
) -> dict[str, Any]:
    """The naive fold, whole: read and decode the log, fold it, answer; checked equal to the projection."""
    t0 = time.perf_counter()
    naive = NaiveLog(await read_all_events(url))
    t1 = time.perf_counter()
    want_backlog = naive.task_backlog(at)
    t2 = time.perf_counter()
    want_q = naive.period_counts("quarter", start=quarter[0], end=quarter[1], by_kommune=True)
    t3 = time.perf_counter()
    assert want_backlog == await queries.task_backlog(pool, at), "as-of backlog differs from the naive fold"
    assert [dataclass_key(r) for r in want_q] == [dataclass_key(r) for r in q_kommune], "quarter differs from the fold"
    say(f"{label}: naive fold read+decode {t1 - t0:.1f}s, backlog fold {t2 - t1:.1f}s, quarter {t3 - t2:.1f}s")
    return {
        f"{label}_naive_read_decode_s": t1 - t0,
        f"{label}_naive_asof_backlog_s": t2 - t0,
        f"{label}_naive_quarter_s": (t1 - t0) + (t3 - t2),
        f"{label}_naive_checked_equal": True,
    }


def dataclass_key(row: Any) -> tuple[Any, ...]:
    import dataclasses

    return tuple(round(v, 6) if isinstance(v, float) else v for v in dataclasses.astuple(row))


# ---- main -------------------------------------------------------------------------------------------------------


async def create_db(server_url: str, name: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server_url.rpartition("/")[0] + "/" + name


async def run(server_url: str, mode: str, scale: int | None, project: int | None, check: int | None) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": mode, "postgres_fsync": "on"}
    if scale is None:
        await bench_appends(server_url, mode, result)
    else:
        result["appends"] = "skipped at --scale (the default run measures them)"
    checkpoints = SIZES[mode] if scale is None else (min(check or 1_000_000, scale // 3), scale)
    scale_url = await create_db(server_url, "bench_scale")
    await migrate_dsn(scale_url)
    result.update(await bench_scale(scale_url, checkpoints, random.Random(11), project=project))
    l2 = label_of(checkpoints[1])
    quarter_s = max(result[f"{l2}_quarter_by_kommune_s"], result[f"{l2}_quarter_all_kommuner_s"])
    if scale is None:
        result["target_asof_backlog_le_50ms_at_3m"] = result[f"{l2}_asof_backlog_ms_p95"] <= 50
        result["target_quarter_le_2s_at_3m"] = max(quarter_s, result[f"{l2}_all_quarters_s"]) <= 2
    else:
        result[f"target_asof_backlog_p95_le_10ms_at_{l2}"] = result[f"{l2}_asof_backlog_ms_p95"] <= 10
        result[f"target_quarter_le_2s_at_{l2}"] = quarter_s <= 2
    return result


async def bench_appends(server_url: str, mode: str, result: dict[str, Any]) -> None:
    append_sizes = APPENDS[mode]
    ours_url = await create_db(server_url, "bench_ours")
    await migrate_dsn(ours_url)
    es_url = await create_db(server_url, "bench_es")
    cipher = SubjectCipher(KeyRing.generate("bench-1"))

    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    for r in range(ROUNDS[mode]):
        say(f"appends, round {r + 1}/{ROUNDS[mode]}: ours, then eventsourcing ...")
        ours_r = await bench_ours(ours_url, cipher, append_sizes, str(r))
        es_r = await asyncio.to_thread(bench_eventsourcing, es_url, append_sizes, str(r))
        rounds.append((ours_r, es_r))
    say("appends: COPY ...")
    copy_rows_per_s = await bench_copy(ours_url, append_sizes[0])
    ours = {k: statistics.median(o[k] for o, _ in rounds) for k in rounds[0][0]}
    es = {k: statistics.median(e[k] for _, e in rounds) for k in rounds[0][1]}
    result["append_rounds"] = len(rounds)
    for k, v in ours.items():
        result[f"ours_{k}"] = v
        result[f"eventsourcing_{k}"] = es[k]
        result[f"ratio_ours_vs_eventsourcing_{k}"] = v / es[k]
        result[f"ratio_ours_vs_eventsourcing_{k}_worst_round"] = min(o[k] / e[k] for o, e in rounds)
    result["copy_rows_per_s"] = copy_rows_per_s
    result["ratio_ours_single_vs_copy_rows"] = ours["single_appends_per_s"] / copy_rows_per_s
    result["ratio_ours_batch5_events_vs_copy_rows"] = ours["batch5_events_per_s"] / copy_rows_per_s
    for k in ("single_appends_per_s", "batch5_appends_per_s", "concurrent4_appends_per_s"):
        say(f"  {k}: ours {ours[k]:,.0f}  eventsourcing {es[k]:,.0f}  ratio {ours[k] / es[k]:.2f}")
    say(f"  COPY {copy_rows_per_s:,.0f} rows/s")
    result["target_appends_3x_eventsourcing"] = all(
        result[f"ratio_ours_vs_eventsourcing_{k}"] >= 3
        for k in ("single_appends_per_s", "batch5_appends_per_s", "concurrent4_appends_per_s")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (0.1 M / 0.3 M events, fewer appends)")
    parser.add_argument(
        "--scale",
        type=parse_count,
        help="only the log at this size (e.g. 3M, 10M, 30M): COPY to 1 M, project, check against the naive fold,"
        " then COPY on to this size and measure again; no append comparison",
    )
    parser.add_argument(
        "--project",
        type=parse_count,
        help="with --scale: project only the first this many events (e.g. 3M; default all) and measure the"
        " queries over the business time they cover",
    )
    parser.add_argument(
        "--check",
        type=parse_count,
        help="with --scale: the first checkpoint, where the projection is checked against the naive fold and the"
        " report's fold is timed (default 1M; both are linear in it and extrapolated to the full size)",
    )
    args = parser.parse_args()
    if args.quick and args.scale:
        parser.error("--quick and --scale exclude each other")
    if (args.project or args.check) and not args.scale:
        parser.error("--project and --check need --scale")
    mode = "quick" if args.quick else "full" if args.scale is None else "scale"
    with tempfile.TemporaryDirectory(prefix="sagsflow-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", free_port(), log_file=Path(tmp) / "postgres.log")
        server.start()
        try:
            result = asyncio.run(run(server.url, mode, args.scale, args.project, args.check))
        finally:
            server.stop()
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
