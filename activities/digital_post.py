"""Letters to the citizen through Digital Post, behind an interface.

`DigitalPost` is the adapter interface; `DigitalPostActivities` turns one into the `notify_citizen` activity the case
workflow calls by name with a `CitizenLetter` (ids only: the adapter looks up the recipient by `subject_id` and the
letter's content from the event log) and gets a `DigitalPostReceipt`. `FakeDigitalPost` records letters, deduplicated
by message id as Digital Post does with a message's id, so a retried activity never sends twice.
"""

from __future__ import annotations

from typing import Protocol

from temporalio import activity

from workflows.models import NOTIFY_CITIZEN, CitizenLetter, DigitalPostReceipt


class DigitalPost(Protocol):
    async def send(self, letter: CitizenLetter) -> DigitalPostReceipt: ...


class DigitalPostActivities:
    def __init__(self, post: DigitalPost) -> None:
        self.post = post

    @activity.defn(name=NOTIFY_CITIZEN)
    async def notify_citizen(self, letter: CitizenLetter) -> DigitalPostReceipt:
        return await self.post.send(letter)


class FakeDigitalPost:
    def __init__(self) -> None:
        self.letters: dict[str, CitizenLetter] = {}

    async def send(self, letter: CitizenLetter) -> DigitalPostReceipt:
        self.letters.setdefault(letter.message_id, letter)
        return DigitalPostReceipt(message_id=letter.message_id)

    def for_case(self, case_id: str) -> list[CitizenLetter]:
        return [letter for letter in self.letters.values() if letter.case_id == case_id]
