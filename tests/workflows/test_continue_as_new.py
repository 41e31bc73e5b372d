"""A case that runs long continues-as-new, carrying its state, answers and the stream version.

The time-skipping server never suggests continue-as-new, so the workflows' test hook `continue_as_new_after`
(history length) triggers the same code path here.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from domain.events import OplysningOverdue
from domain.sla import STANDARD_2021
from domain.state import CaseStatus
from tests.workflows.conftest import Lifecycle, utc
from tests.workflows.test_lifecycle import of_type
from workflows.models import DecisionRequest, SubmitPartRequest
from workflows.task import OplysningTaskWorkflow


async def continued(handle: WorkflowHandle[Any, Any]) -> bool:
    """Is the latest run of this workflow id a continuation?"""
    history = await handle.fetch_history()
    return bool(history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id)


async def test_a_long_overdue_case_continues_as_new_and_keeps_its_state(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 9, 24, 7, 0), continue_as_new_after=40)
    delivery = await lifecycle.delivery()
    task = lifecycle.task(delivery.task_id)
    part = SubmitPartRequest(kommune_kode="329", submission_id="early", document_ids=("d-0",))
    first_answer = await task.execute_update(OplysningTaskWorkflow.submit_part, part)

    await lifecycle.skip_until(utc(2022, 3, 9, 10, 0))  # ten weeks past the deadline: weekly escalations
    assert await continued(task)
    # The answers map survived the continuation: a duplicate still gets the first answer.
    assert await task.execute_update(OplysningTaskWorkflow.submit_part, part) == first_answer
    final = SubmitPartRequest(kommune_kode="329", submission_id="late", document_ids=("d-1",), final=True)
    await task.execute_update(OplysningTaskWorkflow.submit_part, final)
    # No status polling here: the time-skipping server wedges a query that meets the case's continue-as-new (and
    # with it all later time skipping). The caseworker's call is simply refused until the case is ready.
    decision = DecisionRequest(request_id="d", outcome="granted", decided_by="cw")
    await lifecycle.decide_when_ready(case, decision)
    result = await lifecycle.finish(case, "continue_as_new")
    assert await continued(case)
    assert result.status is CaseStatus.CLOSED

    events = await lifecycle.events(result.case_id)
    assert result.version == len(events)
    escalations = of_type(events, OplysningOverdue)
    deadline = utc(2021, 12, 27, 23, 0)
    expected = [STANDARD_2021.escalation_after(deadline, n) for n in range(1, 12)]
    assert [e.escalation_no for e in escalations] == list(range(1, 12))  # each once, none lost or repeated
    assert all(due <= e.occurred_at for e, due in zip(escalations, expected, strict=True))
    assert [e.type for e in events][-6:] == [
        "OplysningPartReceived",
        "OplysningCompleted",
        "DecisionMade",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
