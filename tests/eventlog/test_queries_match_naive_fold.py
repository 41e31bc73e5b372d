"""Every query over the projection equals a naive fold over the raw log, for generated histories."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import Event
from domain.state import fold
from eventlog import queries
from eventlog.personal import SubjectCipher
from eventlog.projections import ProjectionRunner, rebuild
from eventlog.store import EventStore
from tests.eventlog.histories import log_history
from tests.eventlog.naive import NaiveLog

RESET = (
    "TRUNCATE events, case_subjects, subject_keys, access_log, case_status, task_intervals, task_deltas,"
    " case_intervals, case_deltas,"
    " event_facts RESTART IDENTITY;"
    " UPDATE projection_positions SET position = 0, generation = generation + 1"
)


def same(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 1e-9 (SQL and Python round differently in the last bits)."""
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and same(dataclasses.astuple(a), dataclasses.astuple(b))  # type: ignore[arg-type]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def sample_times(events: list[Event]) -> list[datetime]:
    times = sorted({e.occurred_at for e in events})
    picked = [*times[:: max(1, len(times) // 8)], times[-1]]
    out = [times[0] - timedelta(days=1), times[-1] + timedelta(days=400)]
    for t in picked:
        out += [t, t - timedelta(seconds=1), t + timedelta(seconds=1)]
        # The edges of the day, ten-day, month and year buckets the as-of query adds up.
        day = datetime.combine(t.astimezone(UTC).date(), time(), UTC)
        out += [day, day - timedelta(microseconds=1), day.replace(day=1), day.replace(month=1, day=1)]
        out += [day.replace(day=11), day.replace(day=21), day.replace(day=21) - timedelta(microseconds=1)]
        # Late in a day, a block, a month and a year, where the query sums backwards from the next bucket.
        out += [day + timedelta(hours=18), day + timedelta(days=1, microseconds=-1), day.replace(day=28, hour=20)]
        out += [day.replace(month=12, day=31, hour=23), day.replace(month=10, day=30, hour=13)]
    return sorted(set(out))


async def check_all(pool: asyncpg.Pool, naive: NaiveLog) -> None:
    for at in [None, *sample_times(naive.events)]:
        assert same(await queries.task_backlog(pool, at), naive.task_backlog(at)), at
        assert same(await queries.case_backlog(pool, at), naive.case_backlog(at)), at
        if at is not None:
            assert same(await queries.waiting_tasks(pool, at), naive.waiting_tasks(at)), at
    times = sorted(e.occurred_at for e in naive.events)
    windows: list[tuple[datetime | None, datetime | None]] = [(None, None), (times[len(times) // 3], times[-1])]
    for period in ("week", "quarter"):
        for by_kommune in (False, True):
            for start, end in windows:
                got = await queries.period_counts(pool, period, start=start, end=end, by_kommune=by_kommune)
                want = naive.period_counts(period, start=start, end=end, by_kommune=by_kommune)
                assert same(got, want), (period, by_kommune, start, end)
    # case_status holds exactly the fold of each case.
    rows = await pool.fetch("SELECT case_id, status, kommune_kode, version, state::text AS state FROM case_status")
    states = {cid: fold(stream) for cid, stream in naive.streams.items()}
    assert {r["case_id"] for r in rows} == set(states)
    for r in rows:
        s = states[r["case_id"]]
        assert (r["status"], r["kommune_kode"], r["version"]) == (s.status.value, s.kommune_kode, s.version)
        assert type(s).model_validate_json(r["state"]) == s


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@pytest.mark.slow
@given(history=log_history(), batch_size=st.integers(1, 40), do_rebuild=st.booleans())
async def test_queries_equal_naive_fold(
    pool: asyncpg.Pool,
    cipher: SubjectCipher,
    history: list[tuple[str, int, list[Event]]],
    batch_size: int,
    do_rebuild: bool,
) -> None:
    await pool.execute(RESET)
    store = EventStore(pool, cipher)
    runner = ProjectionRunner(pool, batch_size=batch_size)
    for i, (case_id, expected, events) in enumerate(history):
        await store.append(case_id, expected, events)
        if i % 3 == 0:
            await runner.step()  # project while the log grows, not only at the end
    await runner.catch_up()
    naive = NaiveLog([s.event for s in await store.read_all(0, limit=100_000)])
    await check_all(pool, naive)
    if do_rebuild:
        # A rebuild from position 0 into fresh tables lands on exactly the same answers.
        assert await rebuild(pool, batch_size=batch_size) == await store.head_position()
        await check_all(pool, naive)
