"""The kommune channel as the workflows see it: one activity, `deliver_task`, that carries a task, a reminder or a
notice (decision, withdrawn, task closed) to one kommune's system.

The real implementation is `activities.kommune_delivery.KommuneDelivery.deliver_task` (signed push or inbox, rate
limits); `workers.worker` registers it. Here: the interface for test doubles (`KommuneChannel` + `KommuneActivities`,
registered under the same activity name with the same payload models, workflows/models.py: KommuneMessage →
DeliveryReceipt) and `FakeKommuneChannel`, which records what it was asked to send and lets a test or a benchmark
play the kommune.

Contract (the real activity's): a failure that may heal (5xx, timeout) raises and Temporal retries with backoff;
one that will not (a 4xx) raises `ApplicationError(non_retryable=True, type="DeliveryRejected")` with a technical
message only, which the task workflow records as OplysningDeliveryFailed for operations.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.events import Channel
from workflows.models import DELIVER_TASK, DeliveryReceipt, KommuneMessage


class KommuneChannel(Protocol):
    async def deliver(self, message: KommuneMessage) -> DeliveryReceipt: ...


class KommuneActivities:
    def __init__(self, channel: KommuneChannel) -> None:
        self.channel = channel

    @activity.defn(name=DELIVER_TASK)
    async def deliver_task(self, message: KommuneMessage) -> DeliveryReceipt:
        return await self.channel.deliver(message)


def message_key(message: KommuneMessage) -> str:
    """The receiver's deduplication key (as the real channel's Idempotency-Key)."""
    seq = message.seq if message.seq is not None else 1 if message.kind == "task" else message.notice
    return f"{message.task_id}:{message.kind}:{seq}"


class FakeKommuneChannel:
    """Accepts everything on the given channel and records it, deduplicated by key as a real receiver would;
    `deliveries` is a queue of tasks a driver can await to answer as the kommune. `refuse_kommuner` makes messages
    to those kommuner fail for good (a 4xx that will not heal)."""

    def __init__(self, channel: Channel = Channel.INBOX, refuse_kommuner: frozenset[str] = frozenset()) -> None:
        self.channel = channel
        self.refuse_kommuner = refuse_kommuner
        self.messages: dict[str, KommuneMessage] = {}
        self.deliveries: asyncio.Queue[KommuneMessage] = asyncio.Queue()

    async def deliver(self, message: KommuneMessage) -> DeliveryReceipt:
        if message.kommune_kode in self.refuse_kommuner:
            raise ApplicationError(
                f"kommune {message.kommune_kode}: push rejected with HTTP 410",
                type="DeliveryRejected",
                non_retryable=True,
            )
        key = message_key(message)
        if key not in self.messages:
            self.messages[key] = message
            if message.kind == "task":
                self.deliveries.put_nowait(message)
        return DeliveryReceipt(channel=self.channel)

    def tasks(self) -> list[KommuneMessage]:
        return [m for m in self.messages.values() if m.kind == "task"]

    def notices(self, *, task_id: str | None = None, case_id: str | None = None) -> list[str]:
        """Reminders and notices sent, in order, as 'reminder' or the notice's name."""
        return [
            m.notice or m.kind
            for m in self.messages.values()
            if m.kind != "task"
            and (task_id is None or m.task_id == task_id)
            and (case_id is None or m.case_id == case_id)
        ]


class LoggingKommuneChannel:
    """For workers without the kommune integration (tests of other parts): every task counts as put in the inbox."""

    async def deliver(self, message: KommuneMessage) -> DeliveryReceipt:
        extra = {"task_id": message.task_id, "kommune": message.kommune_kode, "kind": message.kind}
        activity.logger.info("kommune message (logging channel only)", extra=extra)
        return DeliveryReceipt(channel=Channel.INBOX)
