"""The exits and detours: a kommune returns the task, the citizen moves or withdraws, pre-screening rejects,
delivery gives up."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain.events import (
    CaseTransferred,
    CitizenNotified,
    DecisionMade,
    KommuneNotified,
    OplysningCancelled,
    OplysningDeliveryFailed,
    OplysningRequested,
    Outcome,
    PreScreeningCompleted,
    RequestReason,
    TransferReason,
    Verdict,
)
from domain.state import CaseStatus, TaskStatus
from tests.workflows.conftest import Lifecycle, eventually, utc
from tests.workflows.test_lifecycle import of_type
from workflows.case import CaseWorkflow
from workflows.models import DecisionRequest, ReturnRequest, SubmitPartRequest, TransferRequest, WithdrawRequest
from workflows.task import OplysningTaskWorkflow


async def test_return_reroutes_to_the_right_kommune(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 4, 6, 8, 0))
    first = await lifecycle.delivery()
    old_task = lifecycle.task(first.task_id)
    await lifecycle.skip_until(utc(2021, 4, 9, 10, 0))
    returned = await old_task.execute_update(
        OplysningTaskWorkflow.return_task,
        ReturnRequest(kommune_kode="329", correct_kommune_kode="101", reason="Borgeren bor i København"),
    )
    assert returned.recorded == ("OplysningReturned", "CaseTransferred")
    assert returned.task.status is TaskStatus.RETURNED

    second = await lifecycle.delivery()
    assert second.kommune_kode == "101"
    assert (await lifecycle.task(second.task_id).query(OplysningTaskWorkflow.status)).reason is RequestReason.REROUTED
    assert second.deadline_at is not None
    assert first.deadline_at is not None
    assert second.deadline_at > first.deadline_at  # a new task, a new 3-month deadline from today
    old = await old_task.result()
    assert old.outcome == "returned"
    assert "return_task:" + first.task_id in old.answers  # a late duplicate of the return finds its answer here
    with pytest.raises(RPCError):  # the returned task is closed for good
        await old_task.execute_update(
            OplysningTaskWorkflow.submit_part,
            SubmitPartRequest(kommune_kode="329", submission_id="late", document_ids=("d",)),
        )

    submit = SubmitPartRequest(kommune_kode="101", submission_id="s-1", document_ids=("d-1",), final=True)
    await lifecycle.task(second.task_id).execute_update(OplysningTaskWorkflow.submit_part, submit)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    await case.execute_update(CaseWorkflow.decide, DecisionRequest(request_id="d", outcome="granted", decided_by="c"))
    result = await lifecycle.finish(case, "return_reroute")

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events] == [
        "ApplicationReceived",
        "PreScreeningCompleted",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningReturned",
        "CaseTransferred",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    (moved,) = of_type(events, CaseTransferred)
    assert (moved.from_kommune_kode, moved.to_kommune_kode, moved.reason) == ("329", "101", TransferReason.RETURNED)
    assert [r.kommune_kode for r in of_type(events, OplysningRequested)] == ["329", "101"]
    (notified,) = of_type(events, KommuneNotified)
    assert notified.kommune_kode == "101"


async def test_move_transfers_the_case_and_closes_the_old_task(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    first = await lifecycle.delivery()
    old_task = lifecycle.task(first.task_id)
    await lifecycle.skip_until(utc(2021, 5, 20, 10, 0))  # the first reminder went to 329
    moved = await case.execute_update(CaseWorkflow.transfer, TransferRequest(request_id="m-1", to_kommune_kode="751"))
    assert moved.recorded == ("OplysningCancelled", "CaseTransferred")
    assert moved.case.kommune_kode == "751"

    second = await lifecycle.delivery()
    assert second.kommune_kode == "751"
    status = await lifecycle.task(second.task_id).query(OplysningTaskWorkflow.status)
    assert status.reason is RequestReason.TRANSFERRED
    old = await old_task.result()
    assert old.outcome == "handed_back"
    with pytest.raises(RPCError):
        await old_task.execute_update(
            OplysningTaskWorkflow.submit_part,
            SubmitPartRequest(kommune_kode="329", submission_id="late", document_ids=("d",), final=True),
        )

    submit = SubmitPartRequest(kommune_kode="751", submission_id="s-1", document_ids=("d-1",), final=True)
    await lifecycle.task(second.task_id).execute_update(OplysningTaskWorkflow.submit_part, submit)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    await case.execute_update(CaseWorkflow.decide, DecisionRequest(request_id="d", outcome="rejected", decided_by="c"))
    result = await lifecycle.finish(case, "move_transfer")

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events] == [
        "ApplicationReceived",
        "PreScreeningCompleted",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "KommuneReminderSent",
        "OplysningCancelled",
        "CaseTransferred",
        "KommuneNotified",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    (cancelled,) = of_type(events, OplysningCancelled)
    assert cancelled.task_id == first.task_id
    closed_notice, decision_notice = of_type(events, KommuneNotified)
    assert (closed_notice.kind, closed_notice.kommune_kode, closed_notice.task_id) == (
        "task_closed",
        "329",
        first.task_id,
    )
    assert (decision_notice.kind, decision_notice.kommune_kode) == ("decision", "751")
    assert lifecycle.kommune.notices(task_id=first.task_id) == ["reminder", "task_closed"]


async def test_withdrawal_cancels_the_open_task_with_a_notice(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    first = await lifecycle.delivery()
    await lifecycle.skip_until(utc(2021, 3, 20, 10, 0))
    answer = await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-1", reason="Fik job"))
    assert answer.recorded == ("OplysningCancelled", "ApplicationWithdrawn")
    result = await lifecycle.finish(case, "withdrawal")
    assert (result.status, result.outcome) == (CaseStatus.WITHDRAWN, None)
    assert (await lifecycle.task(first.task_id).result()).outcome == "handed_back"

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events] == [
        "ApplicationReceived",
        "PreScreeningCompleted",
        "OplysningRequested",
        "OplysningTaskDelivered",
        "OplysningCancelled",
        "ApplicationWithdrawn",
        "CitizenNotified",  # the citizen first: a kommune system that is down must not delay the letter
        "KommuneNotified",
        "CaseClosed",
    ]
    (notified,) = of_type(events, KommuneNotified)
    assert (notified.kind, notified.task_id) == ("withdrawn", first.task_id)
    (confirmed,) = of_type(events, CitizenNotified)
    assert confirmed.kind == "withdrawal_confirmed"
    (letter,) = lifecycle.post.for_case(result.case_id)
    assert letter.kind == "withdrawal_confirmed"


async def test_formal_rejection_is_an_explained_decision_without_a_task(lifecycle: Lifecycle) -> None:
    # Born 1970: folkepensionsalder 69 in 2039, so far outside the seniorpension window in 2021.
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0), applicant={"cpr": "010170-1234", "name": "Ung"})
    result = await lifecycle.finish(case, "formal_rejection")
    assert (result.status, result.outcome) == (CaseStatus.REJECTED_FORMAL, Outcome.REJECTED_FORMAL)

    events = await lifecycle.events(result.case_id)
    assert [e.type for e in events] == [
        "ApplicationReceived",
        "PreScreeningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "CaseClosed",
    ]
    (screening,) = of_type(events, PreScreeningCompleted)
    assert screening.verdict is Verdict.FORMAL_REJECTION
    assert any(rule.outcome == "not_met" for rule in screening.rules)
    (decision,) = of_type(events, DecisionMade)
    assert (decision.outcome, decision.decided_by) == (Outcome.REJECTED_FORMAL, "prescreening")
    assert decision.reason_codes
    assert lifecycle.kommune.tasks() == []
    (letter,) = lifecycle.post.for_case(result.case_id)
    assert (letter.kind, letter.outcome) == ("decision", Outcome.REJECTED_FORMAL)


async def test_delivery_that_gives_up_is_recorded_for_operations(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0), kommune_kode="860")  # its endpoint answers 410

    async def failed() -> bool:
        task_id = (await case.query(CaseWorkflow.status)).open_task_id
        return (
            task_id is not None and (await lifecycle.task(task_id).query(OplysningTaskWorkflow.status)).delivery_failed
        )

    await eventually(failed, "delivery failure recorded")
    summary = await case.query(CaseWorkflow.status)
    assert summary.open_task_id is not None
    await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w"))
    result = await lifecycle.finish(case, "delivery_failed")

    events = await lifecycle.events(result.case_id)
    (failure,) = of_type(events, OplysningDeliveryFailed)
    # The delivery activity's technical message (kommune, HTTP status), never a response body.
    assert failure.reason == "DeliveryRejected: kommune 860: push rejected with HTTP 410"
    # The kommune's endpoint refuses everything, so the withdrawal notice does not go out either: it is not
    # recorded as sent (operations see the failed activity).
    assert [e.type for e in events][3:] == [
        "OplysningDeliveryFailed",
        "OplysningCancelled",
        "ApplicationWithdrawn",
        "CitizenNotified",
        "CaseClosed",
    ]


async def test_a_refused_update_names_the_reason(lifecycle: Lifecycle) -> None:
    """Smoke check of the error shape the API maps to HTTP (the full list is in test_refusals)."""
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    await lifecycle.delivery()
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await case.execute_update(
            CaseWorkflow.decide, DecisionRequest(request_id="d", outcome="granted", decided_by="c")
        )
    assert "cannot decide: the case is awaiting_kommune" in str(info.value.cause)
    await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w"))
    await case.result()
