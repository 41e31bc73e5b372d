"""The quarterly report from a real event log: figures a forum member can check by hand, and reproducibility."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.commands import (
    CloseCase,
    MakeDecision,
    MarkOverdue,
    NotifyCitizen,
    RecordPreScreening,
    RejectFormally,
    RequestOplysning,
    SendReminder,
    SubmitPart,
)
from domain.events import Outcome, RequestReason, Verdict
from eventlog.store import EventStore, create_pool
from reports.build import build_quarterly
from reports.quarterly import parse_quarter
from reports.render import write_report
from tests.domain.factories import Case

T0 = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


def _answered_case(case_id: str, kommune: str, start: datetime, answer_after: timedelta) -> Case:
    case = Case(case_id, now=start)
    case.receive(kommune_kode=kommune)
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    case.do(RequestOplysning(task_id=f"{case_id}-t1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    case.do(
        SubmitPart(task_id=f"{case_id}-t1", kommune_kode=kommune, submission_id="s1", final=True, document_ids=("d",)),
        at=start + answer_after,
    )
    case.do(MakeDecision(outcome=Outcome.GRANTED, decided_by="cw"), at=start + answer_after + timedelta(days=5))
    case.do(NotifyCitizen(message_id="m"))
    case.do(CloseCase())
    return case


def _waiting_case(case_id: str, kommune: str, start: datetime, overdue: bool) -> Case:
    case = Case(case_id, now=start)
    case.receive(kommune_kode=kommune)
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    task_id = f"{case_id}-t1"
    case.do(RequestOplysning(task_id=task_id, reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    deadline = case.state.tasks[task_id].deadline_at
    case.do(SendReminder(task_id=task_id), at=deadline - timedelta(days=3))
    if overdue:
        case.do(MarkOverdue(task_id=task_id), at=deadline)
    return case


def _formal_rejection(case_id: str, start: datetime) -> Case:
    case = Case(case_id, now=start)
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.FORMAL_REJECTION))
    case.do(RejectFormally(reason_codes=("age_window",)), at=start + timedelta(days=1))
    case.do(NotifyCitizen(message_id="m"))
    case.do(CloseCase())
    return case


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_url)
    yield EventStore(pool)
    await pool.close()


async def test_quarter_figures_and_byte_identical_rebuild(store: EventStore, db_url: str, tmp_path: Path) -> None:
    cases = [
        _answered_case("a1", "329", T0, timedelta(days=20)),  # answered in Q1, within the 3-month SLA
        _answered_case("a2", "101", T0 + timedelta(days=7), timedelta(days=30)),
        _answered_case("a3", "751", T0 + timedelta(days=14), timedelta(days=40)),
        _waiting_case("w1", "329", T0 + timedelta(days=1), overdue=True),  # deadline 5 Apr → overdue in Q2
        _waiting_case("w2", "751", T0 + timedelta(days=60), overdue=False),
        _formal_rejection("f1", T0 + timedelta(days=2)),
    ]
    for c in cases:
        # Append only what happened in the quarter or earlier; later events still exist for Q2's report.
        await store.append(c.case_id, 0, c.events)
    position = await store.head_position()

    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position)
    f = report.current
    assert f.intake_total == 6
    assert f.decisions == {"granted": 3, "rejected": 0, "rejected_formal": 1, "withdrawn": 0}
    # At the end of Q1 the two waiting cases are open and both wait on a kommune.
    assert (f.open_at_end, f.waiting_at_end, f.waiting_share_pct) == (2, 2, 100.0)
    by_code = {k.kode: k for k in f.kommuner}
    assert (by_code["329"].received, by_code["329"].answered, by_code["329"].median_days) == (2, 1, 20.0)
    assert by_code["329"].forum and not by_code["751"].forum
    assert by_code["751"].sla_kept_pct == 100.0
    forum, rest = f.groups
    assert (forum.answered, rest.answered) == (2, 1)
    # 1 day for the formal rejection; 25, 35 and 45 days from receipt to decision for the others.
    assert (f.e2e_median_days, f.e2e_p90_days) == (30.0, 45.0)
    assert report.previous.intake_total == 0

    q2 = await build_quarterly(db_url, parse_quarter("2021Q2"), position=position)
    assert {k.kode: k.overdue for k in q2.current.kommuner}["329"] == 1

    first = write_report(report, tmp_path / "one")
    again = write_report(await build_quarterly(db_url, parse_quarter("2021Q1"), position=position), tmp_path / "two")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    html = first[0].read_text()
    assert f"position {position}" in html and "<svg" in html and "København" in html
    assert "150562" not in html and "Testperson" not in html


async def test_report_at_an_earlier_position_ignores_later_events(store: EventStore, db_url: str) -> None:
    c1 = _answered_case("a1", "329", T0, timedelta(days=20))
    await store.append("a1", 0, c1.events)
    early = await store.head_position()
    c2 = _answered_case("a2", "329", T0, timedelta(days=10))
    await store.append("a2", 0, c2.events)
    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=early)
    assert report.current.intake_total == 1
    assert report.log_position == early


def test_parse_quarter_errors() -> None:
    assert parse_quarter("2021q3").label == "2021Q3"
    with pytest.raises(ValueError, match="2021Q1"):
        parse_quarter("2021-05")
