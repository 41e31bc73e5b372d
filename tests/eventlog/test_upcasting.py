"""An event stored under an older schema version reads back through its upcaster chain."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from domain import events as ev
from domain.events import Channel, OplysningTaskDelivered
from eventlog.projections import ProjectionRunner
from eventlog.store import EventLogError, EventStore
from tests.eventlog.builders import happy_case


def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # v1 (a made-up past) called the channel "delivery_channel" and said "webhook" for push.
    out = {k: v for k, v in data.items() if k != "delivery_channel"}
    out["channel"] = {"webhook": "push", "portal": "inbox"}[data["delivery_channel"]]
    return out


def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return data  # a version bump that kept the body: chains must still walk through it


@pytest.fixture
def delivered_v3(monkeypatch: pytest.MonkeyPatch) -> None:
    """OplysningTaskDelivered at schema v3 for one test; monkeypatch restores the class and the registry."""
    monkeypatch.setattr(OplysningTaskDelivered, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(ev.UPCASTERS, ("OplysningTaskDelivered", 1), v1_to_v2)
    monkeypatch.setitem(ev.UPCASTERS, ("OplysningTaskDelivered", 2), v2_to_v3)


async def _insert_v1(pool: asyncpg.Pool, case_id: str, version: int, task_id: str) -> uuid.UUID:
    event_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO events (event_id, case_id, stream_version, type, schema_version, data, content_hash, occurred_at)"
        " VALUES ($1, $2, $3, 'OplysningTaskDelivered', 1, $4, '\\x00', $5)",
        event_id,
        case_id,
        version,
        {"task_id": task_id, "delivery_channel": "webhook"},
        datetime(2021, 1, 4, 9, 7, tzinfo=UTC),
    )
    return event_id


@pytest.mark.usefixtures("delivered_v3")
async def test_a_v1_event_reads_back_as_the_current_version(store: EventStore, pool: asyncpg.Pool) -> None:
    case = happy_case("c-1")
    await store.append("c-1", 0, case.events[:3])  # received, pre-screened, requested
    event_id = await _insert_v1(pool, "c-1", 4, "c-1-t1")
    (stored,) = await store.read_stream("c-1", from_version=3)
    assert stored.event == OplysningTaskDelivered(
        event_id=event_id,
        case_id="c-1",
        occurred_at=datetime(2021, 1, 4, 9, 7, tzinfo=UTC),
        task_id="c-1-t1",
        channel=Channel.PUSH,
    )
    # The projection folds the upcast event like any other.
    await ProjectionRunner(pool).catch_up()
    status = await pool.fetchval("SELECT state -> 'tasks' -> 'c-1-t1' ->> 'status' FROM case_status")
    assert status == "delivered"
    # New appends are written at the current version.
    later = case.events[3].model_copy(update={"event_id": uuid.uuid4()})
    await store.append("c-1", 4, [later])
    assert await pool.fetchval("SELECT schema_version FROM events WHERE stream_version = 5") == 3


@pytest.mark.usefixtures("delivered_v3")
async def test_a_missing_upcaster_fails_loudly(
    store: EventStore, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(ev.UPCASTERS, ("OplysningTaskDelivered", 2))
    await _insert_v1(pool, "c-1", 1, "t")
    with pytest.raises(EventLogError, match="no upcaster for OplysningTaskDelivered v2"):
        await store.read_stream("c-1")


def test_the_upcaster_registry_is_clean_after_the_tests() -> None:
    # Runs after the others in this module: monkeypatch undid the temporary schema bump and registrations.
    assert OplysningTaskDelivered.SCHEMA_VERSION == 1
    assert not any(t == "OplysningTaskDelivered" for t, _ in ev.UPCASTERS)


async def test_a_body_that_no_longer_validates_is_an_event_log_error_without_its_content(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await _insert_v1(pool, "c-1", 1, "t")  # a v1 body, but the code is at v1 and has no such field
    with pytest.raises(
        EventLogError, match=r"does not decode: .*channel: missing; .*delivery_channel: extra_forbidden"
    ) as info:
        await store.read_stream("c-1")
    assert "webhook" not in str(info.value)
