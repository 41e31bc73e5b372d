"""Search attributes need a real visibility store: the dev server (the time-skipping server keeps them poorly)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
from temporalio.testing import WorkflowEnvironment

from activities.digital_post import FakeDigitalPost
from activities.kommune import FakeKommuneChannel
from domain.state import CaseStatus
from sagsflow import search_attributes as sa
from tests.workflows.conftest import application, eventually, utc
from workers.worker import build_worker
from workflows.case import CaseWorkflow
from workflows.client import start_case
from workflows.models import CaseInput, WithdrawRequest, task_workflow_id


async def test_search_attributes_let_operations_find_cases_by_kommune_and_sla(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> None:
    client = dev_env.client
    kommune = FakeKommuneChannel()
    task_queue = f"dev-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, task_queue=task_queue, kommune=kommune, digital_post=FakeDigitalPost()):
        offset = (utc(2021, 9, 24, 7, 0) - datetime.now(UTC)).total_seconds()  # the applicant's window is 2021
        inp = CaseInput(
            case_id=str(uuid.uuid4()),
            subject_id="s-1",
            application=application(kommune_kode="561"),
            business_clock_offset_seconds=offset,
        )
        case = await start_case(client, inp, task_queue=task_queue)
        delivery = await asyncio.wait_for(kommune.deliveries.get(), timeout=30)
        task = client.get_workflow_handle(task_workflow_id(delivery.task_id))

        async def indexed() -> bool:
            query = (
                'KommuneKode="561" AND CaseStatus="awaiting_kommune" AND SlaOverdue=false AND CaseType="seniorpension"'
            )
            found = {w.id async for w in client.list_workflows(query)}
            return {case.id, task.id} <= found

        await eventually(indexed, "case and task visible to a search by kommune and SLA", within=30)
        for handle in (case, task):
            attrs = (await handle.describe()).typed_search_attributes
            assert attrs.get(sa.SLA_DUE_AT) == delivery.deadline_at
            assert attrs.get(sa.POLICY_VERSION) == "standard-2021.1"
        summary = await case.query(CaseWorkflow.status)
        assert (summary.status, summary.open_task_id) == (CaseStatus.AWAITING_KOMMUNE, delivery.task_id)
        assert summary.phase.startswith("Waiting for kommune 561")

        await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w"))
        await case.result()
        attrs = (await case.describe()).typed_search_attributes
        assert attrs.get(sa.CASE_STATUS) == "withdrawn"
        assert attrs.get(sa.SLA_DUE_AT) is None
