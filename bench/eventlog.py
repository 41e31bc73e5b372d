"""Event log benchmark: appends vs the `eventsourcing` library and raw COPY; queries at scale vs a naive fold.

    python bench/eventlog.py [--quick]

Starts its own embedded PostgreSQL (fsync on) and measures, in one run on that one server:

1. Appends/s of `EventStore.append` (idempotent insert-or-confirm, stream-version check, EXCLUSIVE lock, personal
   fields sealed per subject) for single events, per-case batches of 5 and 4 concurrent writers; the same event
   bodies through `eventsourcing`'s `PostgresApplicationRecorder` (same EXCLUSIVE-lock protocol, bytes pre-serialised
   for it, no idempotency check); and one raw COPY of the same rows into a table shaped like ours.
2. A realistic log (cases of 5 lifecycles over 2021-2025, kommuner weighted by population) written with COPY up to
   1 M and then 3 M events; the projection catching up; the as-of backlog query and quarterly aggregates; and the
   same answers by a naive fold over the raw log, checked equal. The naive fold is measured whole at the first size
   and extrapolated linearly (it is linear in the log) to the second; the JSON says so.

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
import json
import random
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

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


def generate_log(n_events: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """About `n_events` COPY rows (event_id, case_id, stream_version, type, schema_version, data, hash, occurred_at),
    in business-time order, cut at the end of 2025 (cases still running then stay open)."""
    rng = random.Random(seed)
    kommuner = all_kommuner()
    codes = [k.kode for k in kommuner]
    weights = [k.indbyggere for k in kommuner]
    variants = list(VARIANTS)
    vweights = list(VARIANTS.values())
    days = (END.date() - START_DAY).days
    templates: dict[tuple[int, str], Template] = {}
    avg = 11.5
    n_cases = int(n_events / avg * 1.08)
    rows: list[tuple[Any, ...]] = []
    zero = bytes(32)
    for i in range(n_cases):
        day_index = rng.randrange(days)
        variant = rng.choices(variants, vweights)[0]
        key = (day_index, variant)
        template = templates.get(key)
        if template is None:
            template = templates[key] = make_template(START_DAY + timedelta(days=day_index), variant)
        k1 = rng.choices(codes, weights)[0]
        k2 = codes[(codes.index(k1) + 1 + rng.randrange(len(codes) - 1)) % len(codes)]
        case_id = f"b{i}"
        base = datetime.combine(START_DAY + timedelta(days=day_index), datetime.min.time(), UTC) + timedelta(
            hours=7, minutes=rng.randrange(600)
        )
        for version, etype, sv, text, offset in template:
            at = base + offset
            if at >= END:
                break
            data = text.replace("CASE", case_id).replace("\x01", k1).replace("\x02", k2)
            rows.append((uuid.uuid4(), case_id, version, etype, sv, data, zero, at))
    rows.sort(key=lambda r: (r[7], r[1], r[2]))
    return rows[:n_events]


async def copy_rows(url: str, rows: list[tuple[Any, ...]]) -> float:
    conn = await asyncpg.connect(url)  # no jsonb codec: the data column goes in as JSON text
    try:
        t = time.perf_counter()
        for i in range(0, len(rows), 200_000):
            await conn.copy_records_to_table(
                "events",
                records=rows[i : i + 200_000],
                columns=[
                    "event_id",
                    "case_id",
                    "stream_version",
                    "type",
                    "schema_version",
                    "data",
                    "content_hash",
                    "occurred_at",
                ],
            )
        elapsed = time.perf_counter() - t
        await conn.execute("ANALYZE events")
        return elapsed
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
            columns=[
                "event_id",
                "case_id",
                "stream_version",
                "type",
                "schema_version",
                "data",
                "content_hash",
                "occurred_at",
            ],
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
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Copenhagen")
    start = datetime(year, 3 * q - 2, 1, tzinfo=tz)
    end = datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=tz)
    return start, end


async def bench_scale(url: str, sizes: tuple[int, int], rng: random.Random) -> dict[str, Any]:
    n1, n3 = sizes
    out: dict[str, Any] = {}
    t = time.perf_counter()
    rows = generate_log(n3)
    out["generate_s"] = time.perf_counter() - t
    say(f"generated {len(rows):,} events in {out['generate_s']:.1f}s")
    pool = await create_pool(url, min_size=2, max_size=4)
    runner = ProjectionRunner(pool, batch_size=5000)
    try:
        done = 0
        for label, upto in (("1m", n1), ("3m", n3)):
            copy_s = await copy_rows(url, rows[done:upto])
            _, project_s = await atimed(runner.catch_up())
            new = upto - done
            out[f"{label}_copy_events_per_s"] = new / copy_s
            out[f"{label}_projection_events_per_s"] = new / project_s
            done = upto
            await pool.execute("VACUUM ANALYZE")  # what autovacuum does after a load this size
            say(f"{label}: {done:,} events; COPY {new / copy_s:,.0f}/s; projection {new / project_s:,.0f} events/s")
            last = rows[upto - 1][7]
            first = rows[0][7]
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
            _, s = await atimed(queries.case_backlog(pool, ats[0]))
            out[f"{label}_asof_case_backlog_ms"] = s * 1000
            _, s = await atimed(queries.task_backlog(pool))
            out[f"{label}_now_backlog_ms"] = s * 1000
            _, s = await atimed(queries.waiting_tasks(pool, ats[0]))
            out[f"{label}_asof_waiting_tasks_ms"] = s * 1000
            mid = first + (last - first) / 2
            qstart, qend = quarter_bounds(mid.year, (mid.month - 1) // 3 + 1)
            q_kommune, s = await atimed(queries.period_counts(pool, "quarter", start=qstart, end=qend, by_kommune=True))
            out[f"{label}_quarter_by_kommune_s"] = s
            _, s = await atimed(queries.period_counts(pool, "quarter"))
            out[f"{label}_all_quarters_s"] = s
            _, s = await atimed(queries.period_counts(pool, "week"))
            out[f"{label}_all_weeks_s"] = s
            say(
                f"{label}: as-of backlog median {statistics.median(backlog_ms):.1f} ms, max {max(backlog_ms):.1f} ms;"
                f" quarter by kommune {out[f'{label}_quarter_by_kommune_s']:.3f}s;"
                f" all quarters {out[f'{label}_all_quarters_s']:.3f}s"
            )
            if label == "1m":
                out.update(await naive_fold(url, pool, ats[0], (qstart, qend), q_kommune))
        scale = n3 / n1
        out["3m_naive_asof_backlog_s"] = out["1m_naive_asof_backlog_s"] * scale
        out["3m_naive_quarter_s"] = out["1m_naive_quarter_s"] * scale
        out["3m_naive_extrapolated_from_1m"] = True
        for label in ("1m", "3m"):
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
    url: str, pool: asyncpg.Pool, at: datetime, quarter: tuple[datetime, datetime], q_kommune: list[Any]
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
    say(f"1m: naive fold read+decode {t1 - t0:.1f}s, backlog fold {t2 - t1:.1f}s, quarter {t3 - t2:.1f}s")
    return {
        "1m_naive_read_decode_s": t1 - t0,
        "1m_naive_asof_backlog_s": t2 - t0,
        "1m_naive_quarter_s": (t1 - t0) + (t3 - t2),
        "1m_naive_checked_equal": True,
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


async def run(server_url: str, mode: str) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": mode, "postgres_fsync": "on"}
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

    scale_url = await create_db(server_url, "bench_scale")
    await migrate_dsn(scale_url)
    result.update(await bench_scale(scale_url, SIZES[mode], random.Random(11)))

    result["target_appends_3x_eventsourcing"] = all(
        result[f"ratio_ours_vs_eventsourcing_{k}"] >= 3
        for k in ("single_appends_per_s", "batch5_appends_per_s", "concurrent4_appends_per_s")
    )
    result["target_asof_backlog_le_50ms_at_3m"] = result["3m_asof_backlog_ms_p95"] <= 50
    result["target_quarter_le_2s_at_3m"] = max(result["3m_quarter_by_kommune_s"], result["3m_all_quarters_s"]) <= 2
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (0.1 M / 0.3 M events, fewer appends)")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="sagsflow-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", free_port(), log_file=Path(tmp) / "postgres.log")
        server.start()
        try:
            result = asyncio.run(run(server.url, mode))
        finally:
            server.stop()
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
