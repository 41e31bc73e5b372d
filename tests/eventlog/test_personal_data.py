"""Personal fields are sealed per data subject; forgetting the subject shreds them and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from domain.application import Applicant
from domain.events import ApplicationReceived, DecisionMade, Event
from eventlog import queries
from eventlog.access import Access, AccessLog
from eventlog.personal import SubjectCipher
from eventlog.projections import ProjectionRunner, rebuild
from eventlog.store import DuplicateEventConflict, EventStore, content_hash
from runtime.config import Settings
from runtime.crypto import KeyRing, KeyRingError
from tests.eventlog.builders import happy_case
from tests.eventlog.naive import NaiveLog

READER = Access(actor="cw-7", purpose="sagsbehandling")
START = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
PLAINTEXT = ("150562", "Testperson", "Lang og tro tjeneste", '"note"')


def without_personal(events: list[Event]) -> list[Event]:
    return [e.model_copy(update={"personal": None}) if "personal" in type(e).model_fields else e for e in events]


async def test_personal_fields_are_ciphertext_at_rest_and_readable_only_with_an_access(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events)
    raw = "\n".join(r["data"] for r in await pool.fetch("SELECT data::text AS data FROM events"))
    for text in PLAINTEXT:
        assert text not in raw
    assert raw.count('"$enc"') == 3  # the application, the pre-screening details, the decision's reasons

    assert [s.event for s in await store.read_stream("c-1")] == without_personal(case.events)
    assert [s.event for s in await store.read_stream("c-1", access=READER)] == case.events
    (entry,) = await AccessLog(pool).find(case_id="c-1")
    assert (entry.actor, entry.case_id, entry.subject_id, entry.purpose) == (
        "cw-7",
        "c-1",
        "subj-c-1",
        "sagsbehandling",
    )


async def test_forgetting_a_subject_shreds_personal_data_and_every_figure_stays(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # Two cases of one person, one of another.
    mine = [happy_case(f"m-{i}", start=START + timedelta(days=i), subject_id="subj-A") for i in range(2)]
    theirs = happy_case("t-1", start=START, subject_id="subj-B")
    for c in [*mine, theirs]:
        await store.append(c.case_id, 0, c.events)
    runner = ProjectionRunner(pool)
    await runner.catch_up()
    at = START + timedelta(days=10)
    before = (
        await queries.task_backlog(pool, at),
        await queries.case_backlog(pool, at),
        await queries.period_counts(pool, "week", by_kommune=True),
        await pool.fetch("SELECT * FROM case_status ORDER BY case_id"),
    )

    assert await store.forget_subject("subj-A", actor="dpo-1", purpose="sletning art. 17") is True
    assert await store.forget_subject("subj-A") is False  # idempotent

    for c in mine:
        assert [s.event for s in await store.read_stream(c.case_id, access=READER)] == without_personal(c.events)
    assert [s.event for s in await store.read_stream("t-1", access=READER)] == theirs.events
    # Through a store that never saw the key (another process), and with the key row itself gone.
    fresh = EventStore(pool, store.cipher)
    assert [s.event for s in await fresh.read_stream("m-0", access=READER)] == without_personal(mine[0].events)
    assert await pool.fetchval("SELECT wrapped_key FROM subject_keys WHERE subject_id = 'subj-A'") is None

    # Figures are untouched, and a rebuild from the shredded log gives them again.
    after = (
        await queries.task_backlog(pool, at),
        await queries.case_backlog(pool, at),
        await queries.period_counts(pool, "week", by_kommune=True),
        await pool.fetch("SELECT * FROM case_status ORDER BY case_id"),
    )
    assert after == before
    await rebuild(pool)
    assert await queries.period_counts(pool, "week", by_kommune=True) == before[2]
    naive = NaiveLog([s.event for s in await store.read_all(0)])
    assert await queries.task_backlog(pool, at) == naive.task_backlog(at) == before[0]
    # The erasure itself is on record, per person.
    forgets = [r for r in await AccessLog(pool).find(subject_id="subj-A") if r.what.startswith("erase subject")]
    assert [(r.actor, r.purpose) for r in forgets] == [("dpo-1", "sletning art. 17"), ("system", "erasure")]


async def test_retries_still_confirm_after_a_forget_and_new_personal_data_is_shredded_on_arrival(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    case = happy_case("c-1")
    positions = await store.append("c-1", 0, case.events[:6])
    await store.forget_subject("subj-c-1")
    # A late activity retry of an append made before the forget: same positions, nothing written.
    assert await store.append("c-1", 0, case.events[:6]) == positions
    assert await EventStore(pool, store.cipher).append("c-1", 0, case.events[:6]) == positions
    # The decision arrives after the forget: stored, counted, but its reasons are never readable.
    await store.append("c-1", 6, case.events[6:])
    stored = [s.event for s in await store.read_stream("c-1", access=READER)]
    decision = next(e for e in stored if isinstance(e, DecisionMade))
    assert decision.personal is None
    assert decision.decided_by == "cw-1"
    assert await pool.fetchval("SELECT count(*) FROM subject_keys WHERE wrapped_key IS NOT NULL") == 0
    assert await pool.fetchval("SELECT data -> 'personal' FROM events WHERE type = 'DecisionMade'") is None


async def test_forgetting_before_the_first_event_means_no_key_is_ever_made(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.forget_subject("subj-c-1")
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE data -> 'personal' <> 'null'::jsonb") == 0
    assert [s.event for s in await store.read_stream("c-1", access=READER)] == without_personal(case.events)


async def test_the_content_hash_holds_no_fingerprint_of_personal_data(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    received = case.events[0]
    assert isinstance(received, ApplicationReceived)
    assert received.personal is not None
    other_person = received.model_copy(
        update={"personal": received.personal.model_copy(update={"applicant": Applicant(cpr="010170-1234", name="B")})}
    )
    # The plaintext hash is blind to who the person is; the keyed MAC is not, and dies with the key.
    assert content_hash(other_person) == content_hash(received)
    await store.append("c-1", 0, [received])
    fresh = EventStore(pool, store.cipher)
    with pytest.raises(DuplicateEventConflict, match="different content"):
        await fresh.append("c-1", 0, [other_person])


async def test_a_store_without_the_master_key_cannot_read_and_says_so(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events)
    stranger = EventStore(pool, SubjectCipher(KeyRing.generate("other-1")))
    with pytest.raises(KeyRingError, match="unknown key id"):
        await stranger.read_stream("c-1", access=READER)
    # Without personal data it reads fine.
    assert len(await stranger.read_stream("c-1")) == len(case.events)


async def test_master_key_rotation_keeps_old_subject_keys_readable(key_ring: KeyRing, pool: asyncpg.Pool) -> None:
    old = EventStore(pool, SubjectCipher(key_ring))
    first = happy_case("c-1")
    await old.append("c-1", 0, first.events)
    new_key = KeyRing.generate("test-2")
    rotated = KeyRing(active="test-2", keys={**key_ring.keys, **new_key.keys})
    store = EventStore(pool, SubjectCipher(rotated))
    second = happy_case("c-2")
    await store.append("c-2", 0, second.events)
    assert await pool.fetchval("SELECT master_key_id FROM subject_keys WHERE subject_id = 'subj-c-2'") == "test-2"
    assert [s.event for s in await store.read_stream("c-1", access=READER)] == first.events
    assert [s.event for s in await store.read_stream("c-2", access=READER)] == second.events


async def test_one_key_per_person_across_cases_and_processes(store: EventStore, pool: asyncpg.Pool) -> None:
    # Two worker processes (cold caches) receive two applications from the same person.
    first = happy_case("c-1", subject_id="subj-A")
    second = happy_case("c-2", subject_id="subj-A")
    await EventStore(pool, store.cipher).append("c-1", 0, first.events[:3])
    await EventStore(pool, store.cipher).append("c-2", 0, second.events[:3])
    await EventStore(pool, store.cipher).append("c-1", 3, first.events[3:])
    assert await pool.fetchval("SELECT count(*) FROM subject_keys") == 1
    assert [s.event for s in await store.read_stream("c-1", access=READER)] == first.events
    assert [s.event for s in await store.read_stream("c-2", access=READER)] == second.events[:3]
    await store.forget_subject("subj-A")
    assert [s.event for s in await store.read_stream("c-2", access=READER)] == without_personal(second.events[:3])


async def test_a_rolled_back_append_leaves_no_key_behind_to_seal_with(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await store.append_in(conn, "c-1", 0, case.events[:2])
        await tx.rollback()
    assert await pool.fetchval("SELECT count(*) FROM subject_keys") == 0
    await store.append("c-1", 0, case.events[:2])
    async with pool.acquire() as conn, conn.transaction():
        await store.append_in(conn, "c-1", 2, case.events[2:])
    assert [s.event for s in await store.read_stream("c-1", access=READER)] == case.events


def test_the_dev_master_key_is_made_once_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.model_validate({"SAGSFLOW_DATA_DIR": str(tmp_path)})
    first = SubjectCipher.from_settings(settings)
    again = SubjectCipher.from_settings(settings)
    assert first.ring == again.ring
    assert (tmp_path / "eventlog-keys.json").stat().st_mode & 0o777 == 0o600
    configured = Settings.model_validate(
        {"eventlog_key_file": str(tmp_path / "missing.json"), "SAGSFLOW_DATA_DIR": str(tmp_path)}
    )
    with pytest.raises(KeyRingError, match="does not exist"):
        SubjectCipher.from_settings(configured)
