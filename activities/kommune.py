"""The kommune channel as the workflows see it: one activity, `deliver_task`, that carries a task, a reminder or a
notice (decision, withdrawn, task closed) to one kommune's system.

The real implementation is `activities.kommune_delivery.KommuneDelivery.deliver_task` (signed push or inbox, rate
limits); `workers.worker` registers it. Here: the interface for stand-ins (`KommuneChannel` + `KommuneActivities`,
registered under the same activity name with the same payload models, workflows/models.py: KommuneMessage →
DeliveryReceipt): the simulator's kommuner (sim.temporal_driver.SimulatedWorld) and the tests' and benchmarks'
`tests.doubles.FakeKommuneChannel`, which records what it was asked to send and lets them play the kommune.

Contract (the real activity's): a failure that may heal (5xx, timeout) raises and Temporal retries with backoff;
one that will not (a 4xx) raises `ApplicationError(non_retryable=True, type="DeliveryRejected")` with a technical
message only, which the task workflow records as OplysningDeliveryFailed for operations.
"""

from __future__ import annotations

from typing import Protocol

from temporalio import activity

from workflows.models import DELIVER_TASK, DeliveryReceipt, KommuneMessage


class KommuneChannel(Protocol):
    async def deliver(self, message: KommuneMessage) -> DeliveryReceipt: ...


class KommuneActivities:
    def __init__(self, channel: KommuneChannel) -> None:
        self.channel = channel

    @activity.defn(name=DELIVER_TASK)
    async def deliver_task(self, message: KommuneMessage) -> DeliveryReceipt:
        return await self.channel.deliver(message)
