"""The real kommune channel behind the workflows' `deliver_task` / `notify_kommune` activities.

The workflows speak `TaskDelivery` and `KommuneNotice` (workflows/models.py); the push/inbox delivery
(activities/kommune_delivery.py) speaks `DeliverTaskInput`. This adapter maps one onto the other, so retries,
signatures, rate limits and the inbox stay in one place.
"""

from __future__ import annotations

from activities.kommune_delivery import DeliverTaskInput, KommuneDelivery
from domain.events import Channel
from workflows.models import DeliveryReceipt, KommuneNotice, TaskDelivery


class PushInboxChannel:
    def __init__(self, delivery: KommuneDelivery) -> None:
        self.delivery = delivery

    async def deliver(self, task: TaskDelivery) -> DeliveryReceipt:
        result = await self.delivery.deliver_task(
            DeliverTaskInput(
                task_id=task.task_id,
                case_id=task.case_id,
                kommune_kode=task.kommune_kode,
                kind="task",
                deadline_at=task.deadline_at,
                requested_documents=task.requested_documents,
                seq=1,
            )
        )
        return DeliveryReceipt(channel=Channel(result.channel))

    async def notice(self, notice: KommuneNotice) -> None:
        # The workflow's message id ("<id>:<kind>:<seq>") is stable over retries; its tail keeps repeated notices
        # (weekly overdue escalations, reminders) apart in the kommune's Idempotency-Key.
        tail = notice.message_id.rsplit(":", 1)[-1]
        await self.delivery.deliver_task(
            DeliverTaskInput(
                task_id=notice.task_id or f"case-{notice.case_id}",
                case_id=notice.case_id,
                kommune_kode=notice.kommune_kode,
                kind="reminder" if notice.kind == "reminder" else "notice",
                deadline_at=notice.deadline_at,
                notice=notice.kind if notice.kind == "reminder" else f"{notice.kind}-{tail}",
                seq=int(tail) if notice.kind == "reminder" and tail.isdigit() else None,
            )
        )
