"""Search attributes need a real visibility store: the dev server (the time-skipping server keeps them poorly).

The queries here are the ones the operations guide gives, as written there; each is run against real case and task
workflows in every state it must tell apart (open, overdue, completed, taken back, closed).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from domain.state import CaseStatus
from tests.doubles import FakeDigitalPost, FakeKommuneChannel
from tests.workflows.conftest import TaskHandle, application, eventually, utc
from workers.worker import build_worker
from workflows import search_attributes as sa
from workflows.case import CaseWorkflow
from workflows.client import CaseHandle, start_case
from workflows.models import CaseInput, KommuneMessage, SubmitPartRequest, WithdrawRequest, task_workflow_id
from workflows.task import OplysningTaskWorkflow

# The operations guide's queries, exactly as documented.
READY_FOR_DECISION = 'CaseStatus="ready_for_decision"'
OVERDUE_TASKS_147 = 'WorkflowType="OplysningTaskWorkflow" AND KommuneKode="147" AND SlaOverdue=true'
TASKS_DELIVERED = 'TaskStatus="delivered"'
OPEN_CASES_147 = 'WorkflowType="CaseWorkflow" AND KommuneKode="147" AND ExecutionStatus="Running"'


def cases_due_before(instant: datetime) -> str:
    return f'WorkflowType="CaseWorkflow" AND SlaDueAt < "{instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}"'


def business_offset() -> float:
    return (utc(2021, 9, 24, 7, 0) - datetime.now(UTC)).total_seconds()  # the applicant's window is 2021


async def test_search_attributes_let_operations_find_cases_by_kommune_and_sla(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> None:
    client = dev_env.client
    kommune = FakeKommuneChannel()
    task_queue = f"dev-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, task_queue=task_queue, kommune=kommune, digital_post=FakeDigitalPost()):
        inp = CaseInput(
            case_id=str(uuid.uuid4()),
            subject_id="s-1",
            application=application(kommune_kode="561"),
            business_clock_offset_seconds=business_offset(),
        )
        case = await start_case(client, inp, task_queue=task_queue)
        delivery = await asyncio.wait_for(kommune.deliveries.get(), timeout=30)
        task = client.get_workflow_handle(task_workflow_id(delivery.task_id))

        async def indexed() -> bool:
            cases = (
                'KommuneKode="561" AND CaseStatus="awaiting_kommune" AND SlaOverdue=false AND CaseType="seniorpension"'
            )
            tasks = 'KommuneKode="561" AND TaskStatus="delivered" AND SlaOverdue=false AND CaseType="seniorpension"'
            found_cases = {w.id async for w in client.list_workflows(cases)}
            found_tasks = {w.id async for w in client.list_workflows(tasks)}
            return case.id in found_cases and task.id not in found_cases and task.id in found_tasks

        await eventually(indexed, "the case by its status, the task by its own", within=30)
        for handle in (case, task):
            attrs = (await handle.describe()).typed_search_attributes
            assert attrs.get(sa.SLA_DUE_AT) == delivery.deadline_at
            assert attrs.get(sa.POLICY_VERSION) == "standard-2021.1"
        assert (await task.describe()).typed_search_attributes.get(sa.CASE_STATUS) is None
        summary = await case.query(CaseWorkflow.status)
        assert (summary.status, summary.open_task_id) == (CaseStatus.AWAITING_KOMMUNE, delivery.task_id)
        assert summary.phase.startswith("Waiting for kommune 561")

        await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w"))
        await case.result()
        attrs = (await case.describe()).typed_search_attributes
        assert attrs.get(sa.CASE_STATUS) == "withdrawn"
        assert attrs.get(sa.SLA_DUE_AT) is None


class Cases:
    """Cases in kommune 147 driven to the states the queries must tell apart."""

    def __init__(self, client: Client, kommune: FakeKommuneChannel, task_queue: str) -> None:
        self.client = client
        self.kommune = kommune
        self.task_queue = task_queue
        self.deliveries: dict[str, KommuneMessage] = {}  # case id → its task's delivery

    async def start(self, policy_id: str = "standard-2021.1") -> CaseHandle:
        inp = CaseInput(
            case_id=str(uuid.uuid4()),
            subject_id=f"s-{uuid.uuid4().hex[:6]}",
            application=application(kommune_kode="147"),
            policy_id=policy_id,
            business_clock_offset_seconds=business_offset(),
        )
        return await start_case(self.client, inp, task_queue=self.task_queue)

    async def delivered(self, case: CaseHandle) -> TaskHandle:
        case_id = case.id.removeprefix("case-")
        while case_id not in self.deliveries:
            message = await asyncio.wait_for(self.kommune.deliveries.get(), timeout=30)
            self.deliveries[message.case_id] = message
        return self.client.get_workflow_handle_for(
            OplysningTaskWorkflow.run, task_workflow_id(self.deliveries[case_id].task_id)
        )


async def found(client: Client, query: str) -> set[str]:
    return {w.id async for w in client.list_workflows(query)}


@pytest.mark.slow
async def test_the_operations_queries_find_exactly_what_they_say(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> None:
    client = dev_env.client
    kommune = FakeKommuneChannel()
    task_queue = f"dev-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, task_queue=task_queue, kommune=kommune, digital_post=FakeDigitalPost()):
        world = Cases(client, kommune, task_queue)
        # The demo policy's deadline is 90 seconds: this one goes overdue while the others are driven.
        overdue = await world.start(policy_id="demo-1")
        waiting, ready, withdrawn = [await world.start() for _ in range(3)]
        overdue_task = await world.delivered(overdue)
        waiting_task = await world.delivered(waiting)
        ready_task = await world.delivered(ready)
        withdrawn_task = await world.delivered(withdrawn)
        await ready_task.execute_update(
            OplysningTaskWorkflow.submit_part,
            SubmitPartRequest(kommune_kode="147", submission_id="s-1", document_ids=("d-1",), final=True),
        )
        await withdrawn.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-1"))
        await withdrawn.result()
        assert (await withdrawn_task.result()).outcome == "handed_back"
        cases = {overdue.id, waiting.id, ready.id, withdrawn.id}
        tasks = {overdue_task.id, waiting_task.id, ready_task.id, withdrawn_task.id}
        mine = cases | tasks

        async def ready_for_decision() -> bool:
            listed = {w.id: w.workflow_type async for w in client.list_workflows(READY_FOR_DECISION)}
            # Cases only, from every test that ran on this server: no task workflow carries a case status.
            assert set(listed.values()) <= {"CaseWorkflow"}, listed
            return set(listed) & mine == {ready.id}

        await eventually(ready_for_decision, READY_FOR_DECISION, within=30)

        async def delivered() -> bool:
            listed = {w.id: w.workflow_type async for w in client.list_workflows(TASKS_DELIVERED)}
            assert set(listed.values()) <= {"OplysningTaskWorkflow"}, listed
            # The completed and the taken-back task are delivered no longer.
            return set(listed) & mine == {overdue_task.id, waiting_task.id}

        await eventually(delivered, TASKS_DELIVERED, within=30)

        async def open_cases() -> bool:
            return await found(client, OPEN_CASES_147) & mine == {overdue.id, waiting.id, ready.id}

        await eventually(open_cases, OPEN_CASES_147, within=30)

        waiting_due = world.deliveries[waiting.id.removeprefix("case-")].deadline_at
        assert waiting_due is not None
        due_soon = cases_due_before(waiting_due + timedelta(seconds=1))
        due_sooner = cases_due_before(waiting_due - timedelta(seconds=1))

        async def due() -> bool:
            # The withdrawn case had the same deadline; closed, it has none. The overdue one is due far earlier.
            return (await found(client, due_soon) & mine, await found(client, due_sooner) & mine) == (
                {overdue.id, waiting.id},
                {overdue.id},
            )

        await eventually(due, due_soon, within=30)

        # What closed ends with: its final status, not overdue, no deadline.
        ends = {
            ready_task.id: ("TaskStatus", "completed"),
            withdrawn_task.id: ("TaskStatus", "cancelled"),
            withdrawn.id: ("CaseStatus", "withdrawn"),
        }
        for workflow_id, (name, value) in ends.items():
            description = await client.get_workflow_handle(workflow_id).describe()
            assert description.status is WorkflowExecutionStatus.COMPLETED
            ended = {pair.key.name: pair.value for pair in description.typed_search_attributes}
            assert (ended.get(name), ended.get("SlaOverdue"), ended.get("SlaDueAt")) == (value, False, None), ended
            assert ("CaseStatus" in ended) == (name == "CaseStatus")

        async def overdue_tasks() -> bool:
            listed = {w.id: w.workflow_type async for w in client.list_workflows(OVERDUE_TASKS_147)}
            assert set(listed.values()) <= {"OplysningTaskWorkflow"}, listed
            return set(listed) & mine == {overdue_task.id}

        # The demo deadline (90 s after the request) has to pass in real time on the dev server.
        await eventually(overdue_tasks, OVERDUE_TASKS_147, within=240)
        late = (await overdue_task.describe()).typed_search_attributes
        assert (late.get(sa.TASK_STATUS), late.get(sa.SLA_OVERDUE)) == ("delivered", True)

        # Closing a task never leaves it matching an open status.
        for case in (overdue, waiting, ready):
            await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-end"))
            await case.result()

        async def nothing_open() -> bool:
            open_tasks = 'TaskStatus="requested" OR TaskStatus="delivered" OR TaskStatus="partially_received"'
            return not (
                await found(client, open_tasks) & mine
                or await found(client, "SlaOverdue=true") & mine
                or await found(client, cases_due_before(datetime(2100, 1, 1, tzinfo=UTC))) & mine
            )

        await eventually(nothing_open, "no closed case or task matches an open status", within=30)
