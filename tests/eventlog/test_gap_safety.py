"""A follower reading by global_position while many writers append never skips an event.

Positions come from a sequence, so without care a transaction holding position 5 can commit after one holding 6,
and a follower that read 6 and moved on has skipped 5 for good (Marten's lost events). The store's appends
serialise on an EXCLUSIVE table lock, taken before the position is drawn and held until commit.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime

import asyncpg

from domain.events import KommuneNotified
from eventlog.store import EventStore

WRITERS = 8
APPENDS_PER_WRITER = 500
CASES_PER_WRITER = 10


def _event(case_id: str) -> KommuneNotified:
    return KommuneNotified(
        event_id=uuid.uuid4(),
        case_id=case_id,
        occurred_at=datetime(2021, 3, 2, tzinfo=UTC),
        kommune_kode="329",
        kind="task_closed",
    )


class Rollback(Exception):
    pass


async def _writer(pool: asyncpg.Pool, store: EventStore, w: int, seed: int) -> int:
    rnd = random.Random(seed)
    versions = dict.fromkeys((f"w{w}-c{i}" for i in range(CASES_PER_WRITER)), 0)
    committed = 0
    async with pool.acquire() as conn:
        for _ in range(APPENDS_PER_WRITER):
            case_id = rnd.choice(list(versions))
            try:
                async with conn.transaction():
                    if rnd.random() < 0.3:
                        await asyncio.sleep(rnd.uniform(0, 0.001))
                    await store.append_in(conn, case_id, versions[case_id], [_event(case_id)])
                    if rnd.random() < 0.3:
                        await asyncio.sleep(rnd.uniform(0, 0.002))  # hold the position uncommitted for a while
                    if rnd.random() < 0.05:
                        raise Rollback  # leaves a permanent hole in the sequence
            except Rollback:
                continue
            versions[case_id] += 1
            committed += 1
    return committed


async def test_follower_never_skips_an_event_under_concurrent_writers(pool: asyncpg.Pool, store: EventStore) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def follow() -> None:
        position = 0
        while True:
            finished = done.is_set()  # read before reading, so the last pass sees every commit
            batch = await store.read_all(position, limit=97)
            seen.extend(e.global_position for e in batch)
            if batch:
                position = batch[-1].global_position
            elif finished:
                return
            else:
                await asyncio.sleep(0.0005)

    follower = asyncio.create_task(follow())
    committed = await asyncio.gather(*(_writer(pool, store, w, seed=w) for w in range(WRITERS)))
    done.set()
    await follower
    final = [r["global_position"] for r in await pool.fetch("SELECT global_position FROM events ORDER BY 1")]
    assert len(final) == sum(committed) > 0.9 * WRITERS * APPENDS_PER_WRITER
    assert seen == final
    # The sequence did get holes (rolled-back appends), and the follower neither waited on nor invented them.
    assert final[-1] > len(final)


async def test_without_the_lock_a_follower_skips_and_with_it_it_does_not(pool: asyncpg.Pool, store: EventStore) -> None:
    """The failure the lock prevents, shown deterministically, then the same interleaving through the store."""
    insert = (
        "INSERT INTO events (event_id, case_id, stream_version, type, schema_version, data, content_hash,"
        " occurred_at) VALUES ($1, $2, 1, 'KommuneNotified', 1, $3, '\\x00', now()) RETURNING global_position"
    )
    async with pool.acquire() as a, pool.acquire() as b:
        # Plain inserts: A draws a position and stays open while B draws a later one and commits.
        tx = a.transaction()
        await tx.start()
        early = await a.fetchval(insert, uuid.uuid4(), "raw-a", {"kommune_kode": "329", "kind": "task_closed"})
        late = await b.fetchval(insert, uuid.uuid4(), "raw-b", {"kommune_kode": "329", "kind": "task_closed"})
        follower_position = max(e.global_position for e in await store.read_all(0))
        await tx.commit()
        assert early < late == follower_position
        assert await store.read_all(follower_position) == []  # `early` is committed now, and skipped for good

        # Through the store: B's append waits for A's commit, so the follower sees both, in order.
        tx = a.transaction()
        await tx.start()
        (first,) = await store.append_in(a, "s-a", 0, [_event("s-a")])
        blocked = asyncio.create_task(store.append("s-b", 0, [_event("s-b")]))
        await asyncio.sleep(0.2)
        assert not blocked.done()
        assert await store.read_all(follower_position) == []
        await tx.commit()
        (second,) = await blocked
        assert [e.global_position for e in await store.read_all(follower_position)] == [first, second]
