"""The projection runner: tracking position in the same transaction, follow via NOTIFY, rebuild and swap."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from domain.events import OplysningCompleted
from eventlog import queries
from eventlog.migrate import migrate_dsn
from eventlog.projections import FACT_TYPES, TABLES, ProjectionError, ProjectionRunner, projection_position, rebuild
from eventlog.store import EventStore
from tests.eventlog.builders import happy_case
from tests.eventlog.naive import NaiveLog

START = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


async def _append_cases(store: EventStore, first: int, count: int) -> None:
    for i in range(first, first + count):
        case = happy_case(f"c-{i}", start=START + timedelta(days=i))
        # Two appends per case, as a workflow would record them.
        await store.append(case.case_id, 0, case.events[:4])
        await store.append(case.case_id, 4, case.events[4:])


async def _naive(store: EventStore) -> NaiveLog:
    return NaiveLog([s.event for s in await store.read_all(0, limit=100_000)])


async def _wait_for(pool: asyncpg.Pool, position: int) -> None:
    async with asyncio.timeout(20):
        while await projection_position(pool) < position:  # noqa: ASYNC110 - watching a table, no event to await
            await asyncio.sleep(0.02)


async def test_follows_on_notify_without_waiting_for_the_poll(store: EventStore, pool: asyncpg.Pool) -> None:
    await _append_cases(store, 0, 3)
    runner = ProjectionRunner(pool, batch_size=5, poll_interval=3600)  # only a notification can wake it
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await _wait_for(pool, await store.head_position())
        await _append_cases(store, 3, 2)
        await _wait_for(pool, await store.head_position())
    finally:
        stop.set()
        await task
    naive = await _naive(store)
    assert await queries.case_backlog(pool) == naive.case_backlog()
    assert await queries.period_counts(pool, "week") == naive.period_counts("week")


async def test_polling_alone_catches_up(store: EventStore, pool: asyncpg.Pool) -> None:
    await _append_cases(store, 0, 2)
    runner = ProjectionRunner(pool, batch_size=5, poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await _wait_for(pool, await store.head_position())
        # Written below the store, so no notification is sent: only the poll can find these.
        await pool.execute(
            "INSERT INTO events (event_id, case_id, stream_version, type, schema_version, data, content_hash,"
            " occurred_at)"
            " SELECT gen_random_uuid(), 'copy-' || case_id, stream_version, type, schema_version,"
            " CASE WHEN data ? 'task_id' THEN jsonb_set(data, '{task_id}', to_jsonb('copy-' || (data ->> 'task_id')))"
            " ELSE data END, content_hash, occurred_at"
            " FROM events WHERE case_id = 'c-0' ORDER BY stream_version"
        )
        await _wait_for(pool, await store.head_position())
    finally:
        stop.set()
        await task
    naive = await _naive(store)
    assert await queries.task_backlog(pool, START + timedelta(days=5)) == naive.task_backlog(START + timedelta(days=5))
    assert await pool.fetchval("SELECT status FROM case_status WHERE case_id = 'copy-c-0'") == "closed"


async def test_concurrent_runners_apply_each_event_once(store: EventStore, pool: asyncpg.Pool) -> None:
    await _append_cases(store, 0, 12)
    runners = [ProjectionRunner(pool, batch_size=b) for b in (3, 5, 7, 11)]
    # event_facts has the global position as primary key: a double apply would fail loudly here.
    await asyncio.gather(*(r.catch_up() for r in runners))
    await _append_cases(store, 12, 4)
    await asyncio.gather(*(r.catch_up() for r in runners))
    naive = await _naive(store)
    assert await projection_position(pool) == await store.head_position()
    assert await queries.period_counts(pool, "quarter", by_kommune=True) == naive.period_counts(
        "quarter", by_kommune=True
    )
    at = START + timedelta(days=10)
    assert await queries.task_backlog(pool, at) == naive.task_backlog(at)
    facts = await pool.fetchval("SELECT count(*) FROM event_facts")
    assert facts == len([e for e in naive.events if isinstance(e, FACT_TYPES)]) < len(naive.events)


async def test_a_batch_that_cannot_fold_changes_nothing(store: EventStore, pool: asyncpg.Pool) -> None:
    await _append_cases(store, 0, 2)
    runner = ProjectionRunner(pool, batch_size=1000)
    await runner.catch_up()
    before = await pool.fetch("SELECT * FROM case_status ORDER BY case_id")
    position = await projection_position(pool)
    good = happy_case("c-9", start=START)
    await store.append("c-9", 0, good.events[:2])
    # A completion for a task that was never requested: the log is corrupt from here and the projection must stop.
    bad = OplysningCompleted(event_id=uuid.uuid4(), case_id="c-9", occurred_at=START, task_id="nope")
    await store.append("c-9", 2, [bad])
    with pytest.raises(ProjectionError, match="does not fold"):
        await runner.catch_up()
    # The batch held c-9's good events too: they rolled back with the position.
    assert await projection_position(pool) == position
    assert await pool.fetch("SELECT * FROM case_status ORDER BY case_id") == before


async def test_rebuild_swaps_in_fresh_tables_while_writers_and_a_runner_go_on(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await _append_cases(store, 0, 10)
    runner = ProjectionRunner(pool, batch_size=4, poll_interval=0.05)
    stop = asyncio.Event()
    follower = asyncio.create_task(runner.run(stop))
    # Damage the live read model: a rebuild must not inherit anything from it.
    await _wait_for(pool, await store.head_position())
    await pool.execute("DELETE FROM task_intervals WHERE task_id = 'c-1-t1'")
    writer = asyncio.create_task(_append_cases(store, 10, 10))
    try:
        rebuilt_at = await rebuild(pool, batch_size=7)
        await writer
        assert rebuilt_at > 0
        await _wait_for(pool, await store.head_position())
    finally:
        stop.set()
        await follower
    naive = await _naive(store)
    for at in (None, START + timedelta(days=2), START + timedelta(days=25), START + timedelta(days=40)):
        assert await queries.task_backlog(pool, at) == naive.task_backlog(at)
        assert await queries.case_backlog(pool, at) == naive.case_backlog(at)
    assert await queries.period_counts(pool, "week", by_kommune=True) == naive.period_counts("week", by_kommune=True)
    # The swapped tables carry the live names, indexes included, and no rebuild table is left behind.
    names = {r["name"] for r in await pool.fetch("SELECT relname AS name FROM pg_class WHERE relname LIKE '%rebuild%'")}
    assert names == set()
    indexes = {
        r["indexname"]
        for r in await pool.fetch("SELECT indexname FROM pg_indexes WHERE tablename = ANY($1)", list(TABLES))
    }
    assert {"case_status_pkey", "task_intervals_open_during", "event_facts_occurred"} <= indexes
    assert await pool.fetchval("SELECT generation FROM projection_positions WHERE name = 'case_views'") == 1


async def test_a_snapshot_answers_at_one_position_while_the_runner_moves_on(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await _append_cases(store, 0, 3)
    runner = ProjectionRunner(pool, batch_size=1000)
    await runner.catch_up()
    assert await queries.projection_lag(pool) == 0
    async with queries.snapshot(pool) as (conn, position):
        before = await queries.period_counts(conn, "week")
        await _append_cases(store, 3, 3)
        assert await queries.projection_lag(pool) > 0
        await runner.catch_up()
        assert await queries.period_counts(conn, "week") == before
        assert await queries.projection_position(conn) == position
    assert await queries.projection_lag(pool) == 0
    assert await queries.period_counts(pool, "week") != before


async def test_migration_0006_brings_v1_tables_to_v2_with_the_same_answers(
    store: EventStore, pool: asyncpg.Pool, db_url: str
) -> None:
    await _append_cases(store, 0, 12)
    await ProjectionRunner(pool, batch_size=7).catch_up()
    # Back to the v1 shape migration 0004 made (what a database merged before 0006 holds), then migrate again.
    await pool.execute(
        "DROP TABLE task_deltas, case_deltas; ALTER TABLE event_facts DROP COLUMN local_date;"
        " DROP INDEX task_intervals_open_now, task_intervals_open_from, task_intervals_open_to,"
        " case_intervals_active_now, case_intervals_active_from, case_intervals_active_to;"
        " DELETE FROM schema_migrations WHERE version IN ('0006_case_views_v2', '0009_as_of_dekads')"
    )
    assert await migrate_dsn(db_url) == ["0006_case_views_v2", "0009_as_of_dekads"]
    await _append_cases(store, 12, 4)
    await ProjectionRunner(pool, batch_size=5).catch_up()
    naive = await _naive(store)
    for at in (START + timedelta(days=d, hours=h) for d in (1, 9, 14, 30, 45, 60) for h in (0, 7, 13)):
        assert await queries.task_backlog(pool, at) == naive.task_backlog(at)
        assert await queries.case_backlog(pool, at) == naive.case_backlog(at)
    assert await queries.period_counts(pool, "week", by_kommune=True) == naive.period_counts("week", by_kommune=True)


async def test_a_tasks_kommune_is_known_once_projected_and_through_every_status(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    case = happy_case("c-owner", start=START)
    task_id = next(str(e.task_id) for e in case.events if hasattr(e, "task_id"))
    kommune = next(str(e.kommune_kode) for e in case.events if hasattr(e, "kommune_kode") and hasattr(e, "task_id"))
    await store.append(case.case_id, 0, case.events[:4])
    # Not projected yet: the API asks the workflow instead.
    assert await queries.task_kommune(pool, task_id) is None
    await ProjectionRunner(pool).catch_up()
    assert await queries.task_kommune(pool, task_id) == kommune
    await store.append(case.case_id, 4, case.events[4:])
    await ProjectionRunner(pool).catch_up()
    assert await queries.task_kommune(pool, task_id) == kommune  # completed: still the same kommune's task
    assert await queries.task_kommune(pool, "no-such-task") is None


async def test_migration_0009_adds_the_ten_day_rows_the_projection_writes(
    store: EventStore, pool: asyncpg.Pool, db_url: str
) -> None:
    # Cases a day apart over 40 days: boundaries in every ten-day block of two months, the 31st included.
    await _append_cases(store, 0, 40)
    await ProjectionRunner(pool, batch_size=9).catch_up()
    dump = "SELECT * FROM {} WHERE grain = 't' AND delta <> 0 ORDER BY 1, 2, 3, 4"
    written = {t: await pool.fetch(dump.format(t)) for t in ("task_deltas", "case_deltas")}
    assert all(written.values())
    # A database projected before 0009 (no 't' rows), migrated: the same rows as the projection writes itself.
    await pool.execute(
        "DELETE FROM task_deltas WHERE grain = 't'; DELETE FROM case_deltas WHERE grain = 't';"
        " DELETE FROM schema_migrations WHERE version = '0009_as_of_dekads'"
    )
    assert await migrate_dsn(db_url) == ["0009_as_of_dekads"]
    assert {t: await pool.fetch(dump.format(t)) for t in written} == written
    naive = await _naive(store)
    for at in (START + timedelta(days=d, hours=h) for d in (9, 10, 11, 20, 21, 27, 31, 45) for h in (0, 8, 23)):
        assert await queries.task_backlog(pool, at) == naive.task_backlog(at)
        assert await queries.case_backlog(pool, at) == naive.case_backlog(at)
