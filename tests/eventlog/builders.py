"""Valid event histories for event-log tests, made by the domain itself (decide + evolve)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from domain.commands import (
    CloseCase,
    MakeDecision,
    MarkDelivered,
    NotifyCitizen,
    ReceiveApplication,
    RecordPreScreening,
    RequestOplysning,
    SubmitPart,
)
from domain.events import Channel, Event, Outcome, RequestReason, Verdict
from tests.domain.factories import Case, application

NS = uuid.UUID("5a9e5f10-0000-4000-8000-000000000000")


class LogCase(Case):
    """A `Case` whose event ids are unique across cases (the factory's are 1, 2, 3... per case)."""

    def __init__(self, case_id: str, now: datetime | None = None, subject_id: str | None = None) -> None:
        super().__init__(case_id, now)
        self.subject_id = subject_id or f"subj-{case_id}"
        self._n = 0

    def new_id(self) -> uuid.UUID:
        self._n += 1
        return uuid.uuid5(NS, f"{self.case_id}/{self._n}")

    def receive(self, **overrides: object) -> list[Event]:
        return self.do(
            ReceiveApplication(case_id=self.case_id, subject_id=self.subject_id, application=application(**overrides))
        )


def delivered_case(case_id: str, start: datetime | None = None, subject_id: str | None = None) -> LogCase:
    """Received, dispatched, and its task `<case_id>-t1` delivered to kommune 329 within minutes."""
    t = start or datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
    case = LogCase(case_id, now=t, subject_id=subject_id)
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH, details={"note": "ok"}), at=t + timedelta(minutes=5))
    case.do(
        RequestOplysning(task_id=f"{case_id}-t1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"),
        at=t + timedelta(minutes=6),
    )
    case.do(MarkDelivered(task_id=f"{case_id}-t1", channel=Channel.PUSH), at=t + timedelta(minutes=7))
    return case


def happy_case(case_id: str, start: datetime | None = None, subject_id: str | None = None) -> LogCase:
    """Received, dispatched, answered, granted, notified and closed over a few weeks."""
    t = start or datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
    case = delivered_case(case_id, t, subject_id)
    case.do(
        SubmitPart(task_id=f"{case_id}-t1", kommune_kode="329", submission_id="s1", document_ids=("d1",), final=True),
        at=t + timedelta(days=20),
    )
    case.do(
        MakeDecision(outcome=Outcome.GRANTED, decided_by="cw-1", reasons="Lang og tro tjeneste"),
        at=t + timedelta(days=30),
    )
    case.do(NotifyCitizen(message_id="m1"), at=t + timedelta(days=30, minutes=1))
    case.do(CloseCase(), at=t + timedelta(days=31))
    return case
