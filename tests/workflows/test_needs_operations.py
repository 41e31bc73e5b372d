"""An append the event log refuses as data stops the workflow for operations: no endless retry, no lost answer.

The database refuses chosen events (tests/refused_events.py) as it refuses a NUL in a text. The workflow goes back to
the state the log has, the caller whose events were refused gets an error answer (the same on a retry), every later
call is refused, and operations find it by the `NeedsOperations` search attribute, the current details and the
summary. A task that stopped still hands the stream back to its case, which goes on from what the log holds.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.worker import Replayer

from domain.state import CaseStatus, TaskStatus
from runtime.temporal import data_converter, sandbox_runner
from tests.refused_events import refuse_events
from tests.workflows.conftest import HISTORY_RING, Lifecycle, eventually, refusal, utc
from workers.worker import WORKFLOWS
from workflows.case import CaseWorkflow
from workflows.common import FAILURE_TYPES, NEEDS_OPERATIONS_PATCH
from workflows.models import DecisionRequest, SubmitPartRequest, WithdrawRequest
from workflows.search_attributes import NEEDS_OPERATIONS
from workflows.task import OplysningTaskWorkflow


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata: WorkflowMetadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def needs_operations_attribute(client: Client, workflow_id: str) -> bool:
    """The search attribute as the server holds it (`describe` cannot decode the time-skipping server's datetime
    attributes, so the raw description)."""
    description = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    raw = description.workflow_execution_info.search_attributes
    payload = raw.indexed_fields.get(NEEDS_OPERATIONS.name)
    return payload is not None and json.loads(payload.data) is True


def patch_markers(history: WorkflowHistory) -> set[str]:
    found: set[str] = set()
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            for payloads in event.marker_recorded_event_attributes.details.values():
                found.update(
                    NEEDS_OPERATIONS_PATCH for p in payloads.payloads if NEEDS_OPERATIONS_PATCH.encode() in p.data
                )
    return found


async def replays(handle: WorkflowHandle[Any, Any], *, patched: bool = True) -> None:
    history: WorkflowHistory = await handle.fetch_history()
    assert (NEEDS_OPERATIONS_PATCH in patch_markers(history)) is patched  # the new path is behind its patch marker
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter(HISTORY_RING),
        workflow_runner=sandbox_runner(),
        workflow_failure_exception_types=list(FAILURE_TYPES),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_a_decision_the_log_refuses_stops_the_case_and_its_caller_is_told(
    lifecycle: Lifecycle, pool: asyncpg.Pool
) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    delivery = await lifecycle.delivery()
    final = SubmitPartRequest(kommune_kode="329", submission_id="sub-1", document_ids=("doc-a",), final=True)
    await lifecycle.task(delivery.task_id).execute_update(OplysningTaskWorkflow.submit_part, final)
    await lifecycle.wait_status(case, CaseStatus.READY_FOR_DECISION)
    before = await lifecycle.types(delivery.case_id)
    assert before[-1] == "OplysningCompleted"

    await refuse_events(pool, delivery.case_id, "DecisionMade")
    decision = DecisionRequest(request_id="d-1", outcome="granted", decided_by="cw-1")
    for _ in range(2):  # the caller's retry gets the same answer
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await lifecycle.decide_when_ready(case, decision)
        cause = refusal(info.value)
        assert cause.type == "needs_operations"
        assert "refused the events after version" in cause.message
    other = DecisionRequest(request_id="d-2", outcome="rejected", decided_by="cw-1")
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await case.execute_update(CaseWorkflow.decide, other)
    assert refusal(info.value).type == "needs_operations"  # refused by the validator: not in history

    # What the log holds is what the workflow says: ready for decision, and stopped.
    assert await lifecycle.types(delivery.case_id) == before
    summary = await case.query(CaseWorkflow.status)
    assert (summary.status, summary.outcome, summary.needs_operations) == (CaseStatus.READY_FOR_DECISION, None, True)
    assert summary.version == len(before)
    assert summary.phase.startswith("Needs operations: the event log refused the events after version")
    assert await needs_operations_attribute(lifecycle.client, case.id)
    assert (await current_details(case)).startswith("NEEDS OPERATIONS: ")
    assert lifecycle.post.for_case(delivery.case_id) == []  # the citizen was not told of a decision not recorded
    await replays(case)
    await case.terminate("test done")


async def test_a_task_whose_submission_the_log_refuses_stops_and_still_hands_its_case_back(
    lifecycle: Lifecycle, pool: asyncpg.Pool
) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    delivery = await lifecycle.delivery()
    task = lifecycle.task(delivery.task_id)

    async def delivered_in_log() -> bool:
        return "OplysningTaskDelivered" in await lifecycle.types(delivery.case_id)

    await eventually(delivered_in_log, "the delivery in the log")
    before = await lifecycle.types(delivery.case_id)

    await refuse_events(pool, delivery.case_id, "OplysningPartReceived")
    part = SubmitPartRequest(kommune_kode="329", submission_id="sub-1", document_ids=("doc-a",), final=True)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await task.execute_update(OplysningTaskWorkflow.submit_part, part)
    assert refusal(info.value).type == "needs_operations"
    summary = await task.query(OplysningTaskWorkflow.status)
    assert (summary.status, summary.needs_operations, summary.submissions) == (TaskStatus.DELIVERED, True, ())
    assert await needs_operations_attribute(lifecycle.client, task.id)
    assert (await current_details(task)).startswith("NEEDS OPERATIONS: ")
    assert await lifecycle.types(delivery.case_id) == before

    # The citizen withdraws: the stopped task hands back the stream as the log has it, and the case closes.
    withdrawn = await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-1"))
    assert withdrawn.recorded == ("OplysningCancelled", "ApplicationWithdrawn")
    result = await lifecycle.finish(case, "needs_operations_task")
    assert (result.status, result.outcome) == (CaseStatus.WITHDRAWN, None)
    types = await lifecycle.types(delivery.case_id)
    assert types[: len(before)] == before
    assert types[len(before) :] == [
        "OplysningCancelled",
        "ApplicationWithdrawn",
        "CitizenNotified",
        "KommuneNotified",
        "CaseClosed",
    ]
    assert "OplysningPartReceived" not in types
    await replays(task)
    await replays(case, patched=False)
