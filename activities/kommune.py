"""The kommune channel as the workflows see it: deliver a task, send a notice (reminder, overdue, decision,
withdrawn, task closed).

`KommuneChannel` is the interface; `KommuneActivities` turns any implementation into the two activities the
workflows call by name (`deliver_task`, `notify_kommune`). The real push/inbox channel (kommune-integration issue)
either implements `KommuneChannel` or registers its own activities under the same names with the same payload
models (workflows/models.py: TaskDelivery → DeliveryReceipt, KommuneNotice → None). `FakeKommuneChannel` is the
test double: it records what it was asked to send and lets a test or a benchmark play the kommune.

Contract for implementations: a failure that may heal (5xx, timeout) raises any exception, and Temporal retries with
backoff; one that will not (a 4xx) raises `ApplicationError(non_retryable=True, type=<short technical code>)`. The
task workflow then records OplysningDeliveryFailed with that type only: never put personal data in errors.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.events import Channel
from workflows.models import DELIVER_TASK, NOTIFY_KOMMUNE, DeliveryReceipt, KommuneNotice, TaskDelivery


class KommuneChannel(Protocol):
    async def deliver(self, task: TaskDelivery) -> DeliveryReceipt: ...

    async def notice(self, notice: KommuneNotice) -> None: ...


class KommuneActivities:
    def __init__(self, channel: KommuneChannel) -> None:
        self.channel = channel

    @activity.defn(name=DELIVER_TASK)
    async def deliver_task(self, task: TaskDelivery) -> DeliveryReceipt:
        return await self.channel.deliver(task)

    @activity.defn(name=NOTIFY_KOMMUNE)
    async def notify_kommune(self, notice: KommuneNotice) -> None:
        await self.channel.notice(notice)


class FakeKommuneChannel:
    """Accepts everything on the given channel; records deliveries and notices (deduplicated by id, as a real
    receiver would by Idempotency-Key); `deliveries` is a queue a driver can await to answer as the kommune.
    `refuse_kommuner` makes deliveries to those kommuner fail for good (a 4xx that will not heal)."""

    def __init__(self, channel: Channel = Channel.INBOX, refuse_kommuner: frozenset[str] = frozenset()) -> None:
        self.channel = channel
        self.refuse_kommuner = refuse_kommuner
        self.delivered: dict[str, TaskDelivery] = {}
        self.notices: dict[str, KommuneNotice] = {}
        self.deliveries: asyncio.Queue[TaskDelivery] = asyncio.Queue()

    async def deliver(self, task: TaskDelivery) -> DeliveryReceipt:
        if task.kommune_kode in self.refuse_kommuner:
            raise ApplicationError("kommune endpoint refused the task (HTTP 410)", type="Http410", non_retryable=True)
        if task.task_id not in self.delivered:
            self.delivered[task.task_id] = task
            self.deliveries.put_nowait(task)
        return DeliveryReceipt(channel=self.channel)

    async def notice(self, notice: KommuneNotice) -> None:
        self.notices.setdefault(notice.message_id, notice)

    def notices_for(self, task_id: str) -> list[KommuneNotice]:
        return [n for n in self.notices.values() if n.task_id == task_id]


class LoggingKommuneChannel:
    """What `sagsflow worker` uses until the kommune integration lands: every task counts as placed in the inbox."""

    async def deliver(self, task: TaskDelivery) -> DeliveryReceipt:
        activity.logger.info(
            "task placed in kommune inbox", extra={"task_id": task.task_id, "kommune": task.kommune_kode}
        )
        return DeliveryReceipt(channel=Channel.INBOX)

    async def notice(self, notice: KommuneNotice) -> None:
        activity.logger.info("kommune notice", extra={"kind": notice.kind, "kommune": notice.kommune_kode})
