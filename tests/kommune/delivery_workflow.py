"""A minimal workflow that calls `deliver_task` by name, as the case workflows do (kept apart from the test module
so the sandbox re-imports nothing but this)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.models import DELIVER_TASK, DeliveryReceipt, KommuneMessage


@workflow.defn
class DeliverOnce:
    @workflow.run
    async def run(self, inp: KommuneMessage) -> DeliveryReceipt:
        result: DeliveryReceipt = await workflow.execute_activity(
            DELIVER_TASK,
            inp,
            result_type=DeliveryReceipt,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0),
        )
        return result
