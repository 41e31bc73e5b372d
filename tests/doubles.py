"""Test doubles for the worker's adapters: a kommune channel and a Digital Post that record what they were asked to
send, so a test or a benchmark can play the kommune and read the citizen's letters.

Both stand in by the adapters' interfaces (activities/kommune.py: `KommuneChannel`; activities/digital_post.py:
`DigitalPost`), registered under the real activity names with the real payload models.
"""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ApplicationError

from domain.events import Channel
from workflows.models import CitizenLetter, DeliveryReceipt, DigitalPostReceipt, KommuneMessage


def message_key(message: KommuneMessage) -> str:
    """The receiver's deduplication key (as the real channel's `webhook-id`)."""
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


class FakeDigitalPost:
    """Records letters, deduplicated by message id as Digital Post does with a message's id, so a retried activity
    never sends twice."""

    def __init__(self) -> None:
        self.letters: dict[str, CitizenLetter] = {}

    async def send(self, letter: CitizenLetter) -> DigitalPostReceipt:
        self.letters.setdefault(letter.message_id, letter)
        return DigitalPostReceipt(message_id=letter.message_id)

    def for_case(self, case_id: str) -> list[CitizenLetter]:
        return [letter for letter in self.letters.values() if letter.case_id == case_id]
