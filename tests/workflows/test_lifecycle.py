"""Whole lifecycles over simulated months: the SLA clock, kommune answers, decisions, and the event log after."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from domain.calendar import Duration, Unit
from domain.events import (
    CitizenNotified,
    DecisionMade,
    Event,
    KommuneNotified,
    KommuneReminderSent,
    OplysningDeadlineExtended,
    OplysningOverdue,
    OplysningRequested,
    Outcome,
    Party,
    RequestReason,
)
from domain.state import CaseStatus, TaskStatus
from tests.workflows.conftest import Lifecycle, eventually, utc
from workflows.case import CaseWorkflow
from workflows.models import (
    AnswerRequest,
    DecisionRequest,
    ExtensionDecision,
    ExtensionRequest,
    QuestionRequest,
    SubmitPartRequest,
)
from workflows.task import OplysningTaskWorkflow

# Business clock tolerance for events that a timer triggers: the workflow wakes at the due instant plus the few
# milliseconds a workflow task takes. The instants the policy computes are asserted exactly.
SLACK = timedelta(seconds=2)


def at_due(event: Event, due: datetime) -> bool:
    return due <= event.occurred_at < due + SLACK


E = TypeVar("E")


def of_type(events: list[Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


async def test_happy_path_over_three_months(lifecycle: Lifecycle) -> None:
    start = utc(2021, 3, 1, 8, 0)  # Monday 09:00 in Copenhagen
    case = await lifecycle.start(at=start)
    delivery = await lifecycle.delivery()
    assert delivery.kommune_kode == "329"
    assert delivery.deadline_at == utc(2021, 6, 1, 22, 0)  # 3 months: Tue 1 June, open until midnight (CEST)
    task = lifecycle.task(delivery.task_id)

    await lifecycle.skip_until(utc(2021, 3, 31, 10, 0))
    part = SubmitPartRequest(kommune_kode="329", submission_id="sub-1", document_ids=("doc-a", "doc-b"))
    first = await task.execute_update(OplysningTaskWorkflow.submit_part, part)
    again = await task.execute_update(OplysningTaskWorkflow.submit_part, part)
    assert first == again  # the same idempotency key: the first answer again, no second effect
    assert first.task.status is TaskStatus.PARTIALLY_RECEIVED
    assert first.task.documents == ("doc-a", "doc-b")

    await lifecycle.skip_until(utc(2021, 4, 12, 10, 0))
    question = QuestionRequest(question_id="q-1", asked_by=Party.KOMMUNE, kommune_kode="329", text="Hvilke LÆ?")
    await task.execute_update(OplysningTaskWorkflow.ask_question, question)
    asked = await task.query(OplysningTaskWorkflow.status)
    assert asked.open_questions == ("q-1",)
    await task.execute_update(OplysningTaskWorkflow.answer_question, AnswerRequest(question_id="q-1", text="LÆ 145"))

    await lifecycle.skip_until(utc(2021, 5, 29, 10, 0))  # both reminders are due by now
    final = SubmitPartRequest(kommune_kode="329", submission_id="sub-2", document_ids=("doc-c",), final=True)
    done = await task.execute_update(OplysningTaskWorkflow.submit_part, final)
    assert done.recorded == ("OplysningPartReceived", "OplysningCompleted")
    assert done.task.status is TaskStatus.COMPLETED

    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    decision = DecisionRequest(request_id="d-1", outcome="granted", decided_by="cw-7", reasons="Begrundelse")
    answer = await case.execute_update(CaseWorkflow.decide, decision)
    assert answer.recorded == ("DecisionMade",)
    result = await lifecycle.finish(case, "happy_path")
    assert result.status is CaseStatus.CLOSED
    assert result.outcome is Outcome.GRANTED
    assert "decide:d-1" in result.answers  # a retry after the case closed finds its answer here

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events] == [
        "ApplicationReceived",
        "PreScreeningCompleted",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningPartReceived",
        "QuestionAsked",
        "QuestionAnswered",
        "KommuneReminderSent",
        "KommuneReminderSent",
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    assert result.version == len(events)
    received = events[0]
    assert start <= received.occurred_at < start + SLACK  # business time, not the test server's real time
    (requested,) = of_type(events, OplysningRequested)
    assert requested.reminder_ats == (utc(2021, 5, 18, 6, 0), utc(2021, 5, 28, 6, 0))  # 14 and 3 (→ Fri) days
    reminders = of_type(events, KommuneReminderSent)
    assert [r.reminder_no for r in reminders] == [1, 2]
    assert all(at_due(r, due) for r, due in zip(reminders, requested.reminder_ats, strict=True))
    (letter,) = lifecycle.post.for_case(result.case_id)
    assert (letter.kind, letter.outcome) == ("decision", Outcome.GRANTED)
    assert lifecycle.kommune.notices(case_id=result.case_id) == ["reminder", "reminder", "decision"]
    (notified,) = of_type(events, KommuneNotified)
    assert (notified.kind, notified.kommune_kode, notified.task_id) == ("decision", "329", delivery.task_id)


async def test_deadline_on_christmas_eve_rolls_and_escalates_weekly(lifecycle: Lifecycle) -> None:
    # Requested Fri 24 Sep 2021: 3 months is Fri 24 Dec (closed), 25-26 Dec holidays → Mon 27 Dec.
    case = await lifecycle.start(at=utc(2021, 9, 24, 7, 0))
    delivery = await lifecycle.delivery()
    task = lifecycle.task(delivery.task_id)
    deadline = utc(2021, 12, 27, 23, 0)  # midnight after 27 Dec (CET)
    assert delivery.deadline_at == deadline

    await lifecycle.skip_until(utc(2021, 12, 28, 12, 0))  # past the deadline: first escalation

    async def overdue() -> bool:
        return (await task.query(OplysningTaskWorkflow.status)).overdue

    await eventually(overdue, "task overdue")

    async def case_sees_it() -> bool:
        return (await case.query(CaseWorkflow.status)).tasks[0].overdue

    await eventually(case_sees_it, "the case mirrors the overdue task")

    await lifecycle.skip_until(utc(2022, 1, 12, 9, 0))  # two weekly escalations later
    final = SubmitPartRequest(kommune_kode="329", submission_id="late", document_ids=("doc",), final=True)
    await task.execute_update(OplysningTaskWorkflow.submit_part, final)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    reject = DecisionRequest(request_id="d-1", outcome="rejected", decided_by="cw-1", reason_codes=("work_capacity",))
    await case.execute_update(CaseWorkflow.decide, reject)
    result = await lifecycle.finish(case, "christmas_escalation")
    assert result.outcome is Outcome.REJECTED

    events = await lifecycle.events(result.case_id)
    (requested,) = of_type(events, OplysningRequested)
    assert requested.deadline_at == deadline
    # 14 days before 27 Dec is Mon 13 Dec; 3 days before is Fri 24 Dec (closed) → Thu 23 Dec; 08:00 local.
    assert requested.reminder_ats == (utc(2021, 12, 13, 7, 0), utc(2021, 12, 23, 7, 0))
    reminders = of_type(events, KommuneReminderSent)
    assert all(at_due(r, due) for r, due in zip(reminders, requested.reminder_ats, strict=True))
    escalations = of_type(events, OplysningOverdue)
    # At the deadline, then weekly from the day after it at 08:00 local: Tue 4 Jan and Tue 11 Jan 2022.
    expected = [deadline, utc(2022, 1, 4, 7, 0), utc(2022, 1, 11, 7, 0)]
    assert [e.escalation_no for e in escalations] == [1, 2, 3]
    assert all(at_due(e, due) for e, due in zip(escalations, expected, strict=True))
    assert [e.type for e in events][3:] == [
        "OplysningTaskDelivered",
        "KommuneReminderSent",
        "KommuneReminderSent",
        "OplysningOverdue",
        "OplysningOverdue",
        "OplysningOverdue",
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    # Reminders go to the kommune; escalations go to operations (search attributes, the case's status).
    assert lifecycle.kommune.notices(task_id=delivery.task_id) == ["reminder", "reminder", "decision"]


async def test_extension_moves_the_deadline(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    delivery = await lifecycle.delivery()
    task = lifecycle.task(delivery.task_id)

    await lifecycle.skip_until(utc(2021, 3, 11, 8, 0))
    two_weeks = ExtensionRequest(
        kommune_kode="329", request_id="x-1", extend_by=Duration(quantity=2, unit=Unit.WEEKS), reason="Afventer LÆ"
    )
    granted = await task.execute_update(OplysningTaskWorkflow.request_extension, two_weeks)
    assert granted.extension == "granted"
    assert granted.task.deadline_at == utc(2021, 6, 15, 22, 0)

    await lifecycle.skip_until(utc(2021, 3, 21, 8, 0))
    a_month = ExtensionRequest(kommune_kode="329", request_id="x-2", extend_by=Duration(quantity=1, unit=Unit.MONTHS))
    pending = await task.execute_update(OplysningTaskWorkflow.request_extension, a_month)
    assert pending.extension == "pending"  # 15 July is beyond the policy's 1 month past 1 June: operations decide
    assert pending.task.pending_extension == "x-2"
    assert await task.execute_update(OplysningTaskWorkflow.request_extension, a_month) == pending
    decided = await task.execute_update(
        OplysningTaskWorkflow.decide_extension, ExtensionDecision(request_id="x-2", grant=True)
    )
    assert decided.extension == "granted"
    assert decided.task.deadline_at == utc(2021, 7, 15, 22, 0)

    await lifecycle.skip_until(utc(2021, 7, 13, 10, 0))  # past the original and first deadlines: not overdue
    status = await task.query(OplysningTaskWorkflow.status)
    assert (status.overdue, status.escalations) == (False, 0)
    final = SubmitPartRequest(kommune_kode="329", submission_id="s", document_ids=("d",), final=True)
    await task.execute_update(OplysningTaskWorkflow.submit_part, final)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    await case.execute_update(CaseWorkflow.decide, DecisionRequest(request_id="d", outcome="granted", decided_by="c"))
    result = await lifecycle.finish(case, "extension")

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events][3:] == [
        "OplysningTaskDelivered",
        "ExtensionRequested",
        "OplysningDeadlineExtended",
        "ExtensionRequested",
        "OplysningDeadlineExtended",
        "KommuneReminderSent",
        "KommuneReminderSent",
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    by_policy, by_operations = of_type(events, OplysningDeadlineExtended)
    assert (by_policy.granted_by, by_operations.granted_by) == ("policy", "operations")
    # Reminders follow the deadline in force: 14 and 3 days (→ working day) before 15 July.
    assert by_operations.reminder_ats == (utc(2021, 7, 1, 6, 0), utc(2021, 7, 12, 6, 0))
    reminders = of_type(events, KommuneReminderSent)
    assert all(at_due(r, due) for r, due in zip(reminders, by_operations.reminder_ats, strict=True))
    assert {r.deadline_at for r in reminders} == {utc(2021, 7, 15, 22, 0)}


async def test_supplementary_information_loops_back_to_the_kommune(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 2, 1, 9, 0))
    first = await lifecycle.delivery()
    await lifecycle.skip_until(utc(2021, 3, 1, 9, 0))
    submit = SubmitPartRequest(kommune_kode="329", submission_id="s-1", document_ids=("d-1",), final=True)
    await lifecycle.task(first.task_id).execute_update(OplysningTaskWorkflow.submit_part, submit)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)

    more = DecisionRequest(
        request_id="d-1", outcome="supplementary", decided_by="cw-2", requested_documents=("LÆ 145",)
    )
    answer = await case.execute_update(CaseWorkflow.decide, more)
    assert answer.recorded == ("OplysningRequested",)
    assert answer.task_id is not None
    assert answer.case.status is CaseStatus.AWAITING_KOMMUNE
    second = await lifecycle.delivery()
    assert second.task_id == answer.task_id
    assert second.requested_documents == ("LÆ 145",)
    second_status = await lifecycle.task(second.task_id).query(OplysningTaskWorkflow.status)
    assert second_status.reason is RequestReason.SUPPLEMENTARY

    await lifecycle.skip_until(utc(2021, 3, 15, 9, 0))
    submit = SubmitPartRequest(kommune_kode="329", submission_id="s-2", document_ids=("lae-145",), final=True)
    await lifecycle.task(second.task_id).execute_update(OplysningTaskWorkflow.submit_part, submit)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    await case.execute_update(CaseWorkflow.decide, DecisionRequest(request_id="d-2", outcome="granted", decided_by="c"))
    result = await lifecycle.finish(case, "supplementary")

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events] == [
        "ApplicationReceived",
        "PreScreeningCompleted",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningPartReceived",
        "OplysningCompleted",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    requests = of_type(events, OplysningRequested)
    assert [r.reason for r in requests] == [RequestReason.INITIAL, RequestReason.SUPPLEMENTARY]
    assert requests[1].requested_documents == ("LÆ 145",)
    (decision,) = of_type(events, DecisionMade)
    assert decision.outcome is Outcome.GRANTED
    assert len(of_type(events, CitizenNotified)) == 1
