"""Append semantics: insert-or-confirm, loud conflicts, stream-version checks, retry races."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest

from domain.events import DecisionMade, Event
from eventlog.store import ConcurrencyError, DuplicateEventConflict, EventLogError, EventStore
from tests.eventlog.builders import happy_case


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events"))


async def test_append_returns_positions_and_reads_back(store: EventStore) -> None:
    case = happy_case("c-1")
    first = await store.append("c-1", 0, case.events[:3])
    rest = await store.append("c-1", 3, case.events[3:])
    assert first + rest == sorted(first + rest)
    stored = await store.read_stream("c-1")
    assert [s.stream_version for s in stored] == list(range(1, len(case.events) + 1))
    assert [s.global_position for s in stored] == first + rest
    assert [s.event.event_id for s in stored] == [e.event_id for e in case.events]
    assert await store.head_position() == rest[-1]


async def test_retry_with_same_content_returns_original_positions(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    # The first event carries personal data: its ciphertext differs on every attempt, the confirmation must not.
    positions = await store.append("c-1", 0, case.events[:3])
    again = await store.append("c-1", 0, case.events[:3])
    assert again == positions
    # Also through a fresh store (another worker process, cold caches).
    assert await EventStore(pool, store.cipher).append("c-1", 0, case.events[:3]) == positions
    assert await _count(pool) == 3


async def test_same_id_with_other_content_fails_loudly(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events)
    decision = next(e for e in case.events if isinstance(e, DecisionMade))
    idx = case.events.index(decision)
    for changed in (
        decision.model_copy(update={"decided_by": "cw-2"}),
        decision.model_copy(update={"personal": "Andre begrundelser"}),
        decision.model_copy(update={"personal": None}),
        decision.model_copy(update={"occurred_at": decision.occurred_at + timedelta(seconds=1)}),
    ):
        with pytest.raises(DuplicateEventConflict, match="different content"):
            await store.append("c-1", idx, [changed])
    # Same content claimed at another stream version is not the same append either.
    with pytest.raises(DuplicateEventConflict):
        await store.append("c-1", idx + 1, [decision])
    assert await _count(pool) == len(case.events)


async def test_mixing_stored_and_new_events_is_refused(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events[:2])
    with pytest.raises(DuplicateEventConflict, match="mixes stored and new"):
        await store.append("c-1", 0, case.events[:3])
    assert await _count(pool) == 2


async def test_expected_version_mismatch_is_a_concurrency_error(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    with pytest.raises(ConcurrencyError, match="expected stream version 1, found 0"):
        await store.append("c-1", 1, case.events[1:2])
    await store.append("c-1", 0, case.events[:2])
    with pytest.raises(ConcurrencyError):
        await store.append("c-1", 1, case.events[2:3])
    with pytest.raises(ConcurrencyError):
        await store.append("c-1", 3, case.events[2:3])
    assert await _count(pool) == 2


async def test_bad_appends_are_refused_before_touching_the_log(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    other = happy_case("c-2")
    with pytest.raises(EventLogError, match="belong to the case"):
        await store.append("c-1", 0, [case.events[0], other.events[1]])
    with pytest.raises(EventLogError, match="repeat an event id"):
        await store.append("c-1", 0, [case.events[0], case.events[0]])
    assert await store.append("c-1", 0, []) == []
    assert await _count(pool) == 0


async def test_concurrent_retries_of_one_append_all_get_the_same_positions(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # Activity retries racing each other: every attempt succeeds with the same positions, one copy is stored.
    cases = [happy_case(f"c-{i}") for i in range(6)]
    for round_ in range(3):
        for c in cases:
            batch: list[Event] = c.events[round_ * 2 : round_ * 2 + 2]
            results = await asyncio.gather(
                *(EventStore(pool, store.cipher).append(c.case_id, round_ * 2, batch) for _ in range(5))
            )
            assert all(r == results[0] for r in results)
    assert await _count(pool) == 6 * 6


async def test_competing_writers_on_one_stream_exactly_one_wins(store: EventStore, pool: asyncpg.Pool) -> None:
    base = happy_case("c-1")
    await store.append("c-1", 0, base.events[:3])
    # Five writers each decided something different on version 3; the log must take exactly one.
    rivals = [[e.model_copy(update={"event_id": uuid.uuid4()}) for e in base.events[3:4]] for _ in range(5)]
    outcomes = await asyncio.gather(*(store.append("c-1", 3, r) for r in rivals), return_exceptions=True)
    assert sum(isinstance(o, list) for o in outcomes) == 1
    assert sum(isinstance(o, ConcurrencyError) for o in outcomes) == 4
    assert await _count(pool) == 4


async def test_stored_schema_newer_than_code_is_refused(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events[:1])
    await pool.execute("UPDATE events SET schema_version = 99")
    with pytest.raises(EventLogError, match="newer than this code"):
        await store.read_stream("c-1")


async def test_concurrent_appends_share_commits_and_fail_alone(store: EventStore, pool: asyncpg.Pool) -> None:
    cases = [happy_case(f"g-{i}") for i in range(40)]
    stale = happy_case("g-stale")
    await store.append("g-stale", 0, stale.events[:2])
    results = await asyncio.gather(
        *(store.append(c.case_id, 0, c.events[:3]) for c in cases),
        store.append("g-stale", 1, stale.events[2:3]),  # stale expected version: refused, alone
        return_exceptions=True,
    )
    assert isinstance(results[-1], ConcurrencyError)
    positions = [r for r in results[:-1] if isinstance(r, list)]
    assert len(positions) == 40
    assert all(p == sorted(p) and p[-1] - p[0] == 2 for p in positions)  # each case's events contiguous, in order
    # Group commit: far fewer transactions than appends wrote the 40 cases.
    transactions = await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM events WHERE case_id LIKE 'g-%'")
    assert transactions < 40
    for c in cases[:3]:
        assert [s.event for s in await store.read_stream(c.case_id)] == [
            e.model_copy(update={"personal": None}) if "personal" in type(e).model_fields else e for e in c.events[:3]
        ]


async def test_a_group_that_fails_as_a_whole_is_written_one_by_one(store: EventStore, pool: asyncpg.Pool) -> None:
    from eventlog.store import _KeyPlan, _Request, _seal

    good = [happy_case(f"ok-{i}") for i in range(3)]
    broken = happy_case("broken").events[:1]
    sealed = _seal(broken, _KeyPlan())
    sealed.data[0]["cannot_encode"] = object()  # fails the whole group's statement before it is sent
    results = await asyncio.gather(
        *(store.append(c.case_id, 0, c.events[:2]) for c in good),
        store._group.submit(_Request("broken", 0, broken, sealed, _KeyPlan(), None)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [list, list, list, asyncpg.DataError]
    assert await pool.fetchval("SELECT count(*) FROM events") == 6
