"""Calls the state does not allow are refused by the update validators with a clear reason and a code the API maps
to HTTP, before they enter history: nothing is recorded, nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from domain.calendar import Duration, Unit
from domain.events import Party
from tests.workflows.conftest import Lifecycle, refusal, utc
from workflows.case import CaseWorkflow
from workflows.models import (
    AnswerRequest,
    DecisionRequest,
    ExtensionDecision,
    ExtensionRequest,
    QuestionRequest,
    ReturnRequest,
    SubmitPartRequest,
    TransferRequest,
    WithdrawRequest,
)
from workflows.task import OplysningTaskWorkflow


async def refused(handle: WorkflowHandle[Any, Any], update: Any, request: Any) -> tuple[str, str]:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, request)
    cause = refusal(info.value)
    return cause.type or "", cause.message


async def accepted_updates(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)


async def test_invalid_calls_are_refused_with_clear_messages_and_change_nothing(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    delivery = await lifecycle.delivery()
    task = lifecycle.task(delivery.task_id)
    submit = OplysningTaskWorkflow.submit_part
    part = SubmitPartRequest(kommune_kode="329", submission_id="s-1", document_ids=("a",))
    await task.execute_update(submit, part)
    question = QuestionRequest(question_id="q-1", asked_by=Party.KOMMUNE, kommune_kode="329", text="?")
    await task.execute_update(OplysningTaskWorkflow.ask_question, question)
    before = await lifecycle.types(delivery.case_id)
    accepted = await accepted_updates(task)

    cases: list[tuple[Any, Any, Any, str, str]] = [
        (task, submit, SubmitPartRequest(kommune_kode="101", submission_id="s-2", document_ids=("a",)),
         "forbidden", "is not addressed to kommune 101"),
        (task, submit, SubmitPartRequest(kommune_kode="329", submission_id="s-2"),
         "invalid", "document_ids: a partial submission needs at least one document"),
        (task, submit, SubmitPartRequest(kommune_kode="329", submission_id="s-2", final=True),
         "conflict", "cannot complete the task while questions are unanswered"),
        (task, submit, SubmitPartRequest(kommune_kode="329", submission_id="s-1", document_ids=("other",)),
         "conflict", "idempotency key 's-1' was already used for another request"),
        (task, OplysningTaskWorkflow.answer_question, AnswerRequest(question_id="q-9", text="svar"),
         "not_found", "question 'q-9' is not open on this task"),
        (task, OplysningTaskWorkflow.ask_question,
         QuestionRequest(question_id="q-1", asked_by=Party.CASEWORKER, text="igen?"),
         "conflict", "idempotency key 'q-1' was already used for another request"),
        (task, OplysningTaskWorkflow.return_task, ReturnRequest(kommune_kode="329", correct_kommune_kode="329"),
         "invalid", "correct_kommune_kode: must be another kommune than the one returning"),
        (task, OplysningTaskWorkflow.return_task, ReturnRequest(kommune_kode="329", correct_kommune_kode="999"),
         "invalid", "correct_kommune_kode: unknown kommune code '999'"),
        (task, OplysningTaskWorkflow.decide_extension, ExtensionDecision(request_id="x-9", grant=True),
         "not_found", "no pending extension request 'x-9'"),
        (task, OplysningTaskWorkflow.request_extension,
         ExtensionRequest(kommune_kode="329", request_id="x-1", extend_by=Duration(quantity=30, unit=Unit.SECONDS)),
         "invalid", "extensions are in days, weeks, months or working days"),
        (case, CaseWorkflow.decide, DecisionRequest(request_id="d-1", outcome="granted", decided_by="cw"),
         "conflict", "cannot decide: the case is awaiting_kommune"),
        (case, CaseWorkflow.decide, DecisionRequest(request_id="d-2", outcome="supplementary", decided_by="cw"),
         "conflict", "cannot request supplementary information: the case is awaiting_kommune"),
        (case, CaseWorkflow.transfer, TransferRequest(request_id="t-1", to_kommune_kode="329"),
         "invalid", "to_kommune_kode: the case is already in that kommune"),
        (case, CaseWorkflow.transfer, TransferRequest(request_id="t-2", to_kommune_kode="999"),
         "invalid", "to_kommune_kode: unknown kommune code '999'"),
    ]  # fmt: skip
    for handle, update, request, code, message in cases:
        got = await refused(handle, update, request)
        assert got == (code, message) or (got[0] == code and message in got[1]), (request, got)

    # A payload that is not even well-formed is refused too (never a stalled workflow task).
    with pytest.raises(WorkflowUpdateFailedError):
        await task.execute_update("submit_part", {"kommune_kode": "abc", "submission_id": "x"})

    assert await lifecycle.types(delivery.case_id) == before  # nothing recorded
    assert await accepted_updates(task) == accepted  # refused calls never entered history
    status = await task.query(OplysningTaskWorkflow.status)
    assert (status.submissions, status.open_questions) == (("s-1",), ("q-1",))

    await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-1"))
    result = await case.result()
    with pytest.raises(Exception):  # noqa: B017, PT011 - the closed case takes no more calls, whatever the RPC error
        await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-2"))
    assert "withdraw:w-1" in result.answers


async def test_case_calls_after_the_decision_are_refused(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0), applicant={"cpr": "010170-1234", "name": "Ung"})
    result = await case.result()  # formally rejected and closed
    assert result.outcome is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - a closed workflow rejects the call at the server
        await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w"))
    assert (await lifecycle.types(result.case_id))[-1] == "CaseClosed"
