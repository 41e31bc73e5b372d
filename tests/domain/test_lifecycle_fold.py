from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.calendar import Duration, Unit
from domain.commands import (
    CloseCase,
    MakeDecision,
    MarkDelivered,
    MarkOverdue,
    NotifyCitizen,
    RecordPreScreening,
    RequestExtension,
    RequestOplysning,
    SubmitPart,
    Withdraw,
)
from domain.errors import DomainError
from domain.events import Channel, OplysningRequested, Outcome, RequestReason, Verdict
from domain.sla import STANDARD_2021
from domain.state import CaseStatus, TaskStatus, fold
from tests.domain.factories import Case


def test_happy_path_folds_to_closed() -> None:
    case = Case()
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    case.do(RequestOplysning(task_id="t-1", reason=RequestReason.INITIAL, policy_id=STANDARD_2021.policy_id))
    assert case.state.status is CaseStatus.AWAITING_KOMMUNE
    case.do(MarkDelivered(task_id="t-1", channel=Channel.PUSH))
    case.do(SubmitPart(task_id="t-1", kommune_kode="329", submission_id="s1", document_ids=("d1",), final=True))
    assert case.state.status is CaseStatus.READY_FOR_DECISION
    assert case.state.tasks["t-1"].status is TaskStatus.COMPLETED
    case.do(MakeDecision(outcome=Outcome.GRANTED, decided_by="cw-7"))
    case.do(NotifyCitizen(message_id="m-1"))
    case.do(CloseCase())
    assert case.state.status is CaseStatus.CLOSED
    assert fold(case.events) == case.state
    assert case.state.version == len(case.events)


def test_other_kommune_is_refused_and_nothing_changes() -> None:
    case = Case()
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    case.do(RequestOplysning(task_id="t-1", reason=RequestReason.INITIAL, policy_id=STANDARD_2021.policy_id))
    before = case.state
    with pytest.raises(DomainError, match="not addressed to kommune 101") as info:
        case.do(SubmitPart(task_id="t-1", kommune_kode="101", submission_id="s1", final=True))
    assert info.value.code == "forbidden"
    assert case.state == before


def test_deadline_on_christmas_eve_rolls_to_next_working_day() -> None:
    # Requested 24 Sep 2021 → 3 months is Fri 24 Dec 2021 (closed), 25/26 holidays, 27 Dec is a Monday.
    case = Case(now=datetime(2021, 9, 24, 10, 0, tzinfo=UTC))
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    (ev,) = case.do(RequestOplysning(task_id="t-1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    assert isinstance(ev, OplysningRequested)
    assert ev.deadline_at == datetime(2021, 12, 27, 23, 0, tzinfo=UTC)  # midnight 28 Dec in Copenhagen (CET)
    # Reminders 14 and 3 days before the deadline day, on working days, 08:00 local.
    assert ev.reminder_ats == (
        datetime(2021, 12, 13, 7, 0, tzinfo=UTC),
        datetime(2021, 12, 23, 7, 0, tzinfo=UTC),
    )


def test_extension_within_policy_is_granted_and_beyond_waits() -> None:
    case = Case()
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    case.do(RequestOplysning(task_id="t-1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    original = case.state.tasks["t-1"].deadline_at
    evs = case.do(
        RequestExtension(
            task_id="t-1", kommune_kode="329", request_id="x1", extend_by=Duration(quantity=2, unit=Unit.WEEKS)
        )
    )
    assert [e.type for e in evs] == ["ExtensionRequested", "OplysningDeadlineExtended"]
    assert case.state.tasks["t-1"].deadline_at > original
    evs = case.do(
        RequestExtension(
            task_id="t-1", kommune_kode="329", request_id="x2", extend_by=Duration(quantity=1, unit=Unit.MONTHS)
        )
    )
    assert [e.type for e in evs] == ["ExtensionRequested"]
    assert case.state.tasks["t-1"].pending_extension is not None


def test_overdue_not_before_deadline_and_withdrawal_cancels_task() -> None:
    case = Case()
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    case.do(RequestOplysning(task_id="t-1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    with pytest.raises(DomainError, match="before the deadline"):
        case.do(MarkOverdue(task_id="t-1"))
    case.do(MarkOverdue(task_id="t-1"), at=case.state.tasks["t-1"].deadline_at + timedelta(seconds=1))
    assert case.state.tasks["t-1"].overdue
    evs = case.do(Withdraw())
    assert [e.type for e in evs] == ["OplysningCancelled", "ApplicationWithdrawn"]
    assert case.state.status is CaseStatus.WITHDRAWN
    assert case.state.open_task_id is None
