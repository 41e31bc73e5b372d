"""`CaseCounts`: the simulator's counts over a chosen set of cases, straight from the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from domain.commands import RecordPreScreening, RequestOplysning
from domain.events import RequestReason, Verdict
from domain.state import CaseStatus, fold
from eventlog.counts import CaseCounts
from eventlog.store import EventStore
from tests.eventlog.builders import LogCase, happy_case

T0 = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


def awaiting_kommune(case_id: str, at: datetime) -> LogCase:
    case = LogCase(case_id, now=at)
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH, details={"note": "ok"}), at=at + timedelta(minutes=5))
    case.do(
        RequestOplysning(task_id=f"{case_id}-t1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"),
        at=at + timedelta(minutes=6),
    )
    return case


async def test_counts_cover_only_the_chosen_cases(pool: asyncpg.Pool, store: EventStore) -> None:
    closed = happy_case("c-1", start=T0 + timedelta(days=1))
    waiting = awaiting_kommune("c-2", T0)
    other = happy_case("c-3", start=T0)
    for case in (closed, waiting, other):
        await store.append(case.case_id, 0, case.events)
    counts = CaseCounts(pool)
    chosen = ["c-1", "c-2", "c-9"]

    assert await counts.has_case("c-2")
    assert not await counts.has_case("c-9")
    assert await counts.count_of_type("ApplicationReceived") == 3
    assert await counts.received_at(chosen) == [("c-2", T0), ("c-1", T0 + timedelta(days=1))]
    by_type = await counts.count_by_type(chosen)
    assert sum(by_type.values()) == len(closed.events) + len(waiting.events)
    assert by_type["ApplicationReceived"] == 2
    assert await counts.decision_outcomes(chosen) == {"granted": 1}
    assert await counts.cases_with("CaseClosed", chosen) == {"c-1"}

    streams = [events async for events in counts.streams(["c-2", "c-1"])]
    assert [[e.event_id for e in s] for s in streams] == [
        [e.event_id for e in closed.events],
        [e.event_id for e in waiting.events],
    ]
    assert fold(streams[1]).status is CaseStatus.AWAITING_KOMMUNE
    # Personal data is not read: the counts never need it.
    assert all(getattr(e, "personal", None) is None for s in streams for e in s)
