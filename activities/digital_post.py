"""Letters to the citizen through Digital Post, behind an interface.

`DigitalPost` is the adapter interface; `DigitalPostActivities` turns one into the `notify_citizen` activity the case
workflow calls by name with a `CitizenLetter` (ids only: the adapter looks up the recipient by `subject_id` and the
letter's content from the event log) and gets a `DigitalPostReceipt`.

There is no Digital Post connection yet. The one adapter today, `LogOnlyLetters` (`SAGSFLOW_LETTERS=log`, the
default), logs that a letter is due and sends nothing; `letters_from_settings` is where a real adapter will be
chosen. A real one must deduplicate by message id (as Digital Post does with a message's id), so a retried activity
never sends twice. Tests record letters with `tests.doubles.FakeDigitalPost`.
"""

from __future__ import annotations

from typing import Protocol, assert_never

from temporalio import activity

from runtime.config import Settings
from workflows.models import NOTIFY_CITIZEN, CitizenLetter, DigitalPostReceipt


class DigitalPost(Protocol):
    async def send(self, letter: CitizenLetter) -> DigitalPostReceipt: ...


class DigitalPostActivities:
    def __init__(self, post: DigitalPost) -> None:
        self.post = post

    @activity.defn(name=NOTIFY_CITIZEN)
    async def notify_citizen(self, letter: CitizenLetter) -> DigitalPostReceipt:
        return await self.post.send(letter)


class LogOnlyLetters:
    """No Digital Post connection yet: logs that a letter is due (its message id, case and kind; never the
    recipient's subject id or the outcome) and answers with the receipt the workflow expects. Nothing reaches the
    citizen."""

    async def send(self, letter: CitizenLetter) -> DigitalPostReceipt:
        extra = {"message_id": letter.message_id, "case_id": letter.case_id, "kind": letter.kind}
        activity.logger.info("citizen letter not sent: no Digital Post connection yet", extra=extra)
        return DigitalPostReceipt(message_id=letter.message_id)


def letters_from_settings(settings: Settings) -> DigitalPost:
    """The letter adapter `SAGSFLOW_LETTERS` names."""
    if settings.letters == "log":
        return LogOnlyLetters()
    assert_never(settings.letters)
