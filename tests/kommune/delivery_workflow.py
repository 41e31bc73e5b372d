"""A minimal workflow that calls `deliver_task` by name, as the case workflows do (kept apart from the test module
so the sandbox re-imports nothing but this)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.kommune_delivery import DeliverTaskInput, DeliveryResult


@workflow.defn
class DeliverOnce:
    @workflow.run
    async def run(self, inp: DeliverTaskInput) -> DeliveryResult:
        result: DeliveryResult = await workflow.execute_activity(
            "deliver_task",
            inp,
            result_type=DeliveryResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0),
        )
        return result
