"""The event catalogue (DESIGN.md §2). Past tense; one stream per case.

Fields named `personal` hold personal data (CPR, names, free text that may carry health information). The event
log encrypts them with the data subject's key, and they read back as None once that key is deleted
(crypto-shredding): nothing in `evolve`, projections or reports may depend on them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from domain.application import Application, CaseType
from domain.calendar import Duration


class Verdict(StrEnum):
    DISPATCH = "dispatch"  # formal conditions look met: send to the kommune
    FORMAL_REJECTION = "formal_rejection"
    NEEDS_ASSESSMENT = "needs_assessment"  # dispatch too, but a caseworker must weigh concrete factors


class RequestReason(StrEnum):
    INITIAL = "initial"
    SUPPLEMENTARY = "supplementary"
    REROUTED = "rerouted"  # previous kommune returned the task
    TRANSFERRED = "transferred"  # the citizen moved


class CancelReason(StrEnum):
    WITHDRAWN = "withdrawn"
    TRANSFERRED = "transferred"


class TransferReason(StrEnum):
    MOVED = "moved"
    RETURNED = "returned"


class Outcome(StrEnum):
    GRANTED = "granted"
    REJECTED = "rejected"
    REJECTED_FORMAL = "rejected_formal"


class Channel(StrEnum):
    PUSH = "push"
    INBOX = "inbox"


class Party(StrEnum):
    KOMMUNE = "kommune"
    CASEWORKER = "caseworker"


class RuleSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    rule: str
    outcome: Literal["met", "not_met", "needs_assessment"]


class BaseEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    SCHEMA_VERSION: ClassVar[int] = 1
    ENVELOPE: ClassVar[frozenset[str]] = frozenset({"event_id", "case_id", "type", "occurred_at"})

    event_id: UUID
    case_id: str
    occurred_at: datetime

    def data(self) -> dict[str, Any]:
        """The body stored in the event log's `data` column (JSON-ready)."""
        return self.model_dump(mode="json", exclude=set(self.ENVELOPE))


class ApplicationReceived(BaseEvent):
    type: Literal["ApplicationReceived"] = "ApplicationReceived"
    case_type: CaseType
    kommune_kode: str
    received_on: date
    subject_id: str = Field(description="Pseudonymous id of the data subject (keys their personal-data key)")
    business_clock_offset_seconds: float = 0.0
    personal: Application | None = None


class PreScreeningCompleted(BaseEvent):
    type: Literal["PreScreeningCompleted"] = "PreScreeningCompleted"
    verdict: Verdict
    rules: tuple[RuleSummary, ...] = ()
    personal: dict[str, Any] | None = None  # rule reasons and factors


# Events from before staff identities have no actor; so have a kommune's (its kommune code says who).
ACTED_BY = "The person who acted (staff:<subject>); unset in events from before staff identities"


class OplysningRequested(BaseEvent):
    type: Literal["OplysningRequested"] = "OplysningRequested"
    task_id: str
    kommune_kode: str
    reason: RequestReason
    policy_id: str
    deadline_at: datetime
    reminder_ats: tuple[datetime, ...] = ()
    requested_documents: tuple[str, ...] = ()
    by: str | None = Field(default=None, description=ACTED_BY)


class OplysningTaskDelivered(BaseEvent):
    type: Literal["OplysningTaskDelivered"] = "OplysningTaskDelivered"
    task_id: str
    channel: Channel


class OplysningDeliveryFailed(BaseEvent):
    """Delivery gave up (a 4xx that will not heal): operations must act. Reason is technical, never personal."""

    type: Literal["OplysningDeliveryFailed"] = "OplysningDeliveryFailed"
    task_id: str
    reason: str


class KommuneReminderSent(BaseEvent):
    type: Literal["KommuneReminderSent"] = "KommuneReminderSent"
    task_id: str
    reminder_no: int
    deadline_at: datetime


class ExtensionRequested(BaseEvent):
    type: Literal["ExtensionRequested"] = "ExtensionRequested"
    task_id: str
    request_id: str
    extend_by: Duration
    personal: str | None = None  # the kommune's reason


class OplysningDeadlineExtended(BaseEvent):
    type: Literal["OplysningDeadlineExtended"] = "OplysningDeadlineExtended"
    task_id: str
    request_id: str
    deadline_at: datetime
    reminder_ats: tuple[datetime, ...] = ()
    granted_by: Literal["policy", "operations"]
    by: str | None = Field(
        default=None, description="The person who acted (staff:<subject>); unset before staff identities"
    )


class ExtensionRefused(BaseEvent):
    type: Literal["ExtensionRefused"] = "ExtensionRefused"
    task_id: str
    request_id: str
    by: str | None = Field(
        default=None, description="The person who acted (staff:<subject>); unset before staff identities"
    )


class OplysningOverdue(BaseEvent):
    type: Literal["OplysningOverdue"] = "OplysningOverdue"
    task_id: str
    escalation_no: int
    deadline_at: datetime


class OplysningPartReceived(BaseEvent):
    type: Literal["OplysningPartReceived"] = "OplysningPartReceived"
    task_id: str
    submission_id: str
    document_ids: tuple[str, ...] = ()
    final: bool = False


class OplysningCompleted(BaseEvent):
    type: Literal["OplysningCompleted"] = "OplysningCompleted"
    task_id: str


class OplysningReturned(BaseEvent):
    type: Literal["OplysningReturned"] = "OplysningReturned"
    task_id: str
    kommune_kode: str
    correct_kommune_kode: str
    personal: str | None = None  # the kommune's explanation


class OplysningCancelled(BaseEvent):
    type: Literal["OplysningCancelled"] = "OplysningCancelled"
    task_id: str
    reason: CancelReason


class CaseTransferred(BaseEvent):
    type: Literal["CaseTransferred"] = "CaseTransferred"
    from_kommune_kode: str
    to_kommune_kode: str
    reason: TransferReason
    by: str | None = Field(
        default=None, description="The person who acted (staff:<subject>); unset before staff identities"
    )


class QuestionAsked(BaseEvent):
    type: Literal["QuestionAsked"] = "QuestionAsked"
    task_id: str
    question_id: str
    asked_by: Party
    personal: str | None = None  # the question's text
    by: str | None = Field(
        default=None, description="The person who acted (staff:<subject>); unset before staff identities"
    )


class QuestionAnswered(BaseEvent):
    type: Literal["QuestionAnswered"] = "QuestionAnswered"
    task_id: str
    question_id: str
    personal: str | None = None  # the answer's text
    by: str | None = Field(
        default=None, description="The person who acted (staff:<subject>); unset before staff identities"
    )


class DecisionMade(BaseEvent):
    type: Literal["DecisionMade"] = "DecisionMade"
    outcome: Outcome
    reason_codes: tuple[str, ...] = ()
    decided_by: str = Field(description="Caseworker id or 'prescreening'")
    personal: str | None = None  # the written reasons


class CitizenNotified(BaseEvent):
    type: Literal["CitizenNotified"] = "CitizenNotified"
    message_id: str
    kind: Literal["decision", "withdrawal_confirmed"]


class KommuneNotified(BaseEvent):
    type: Literal["KommuneNotified"] = "KommuneNotified"
    kommune_kode: str
    kind: Literal["decision", "withdrawn", "task_closed"]
    task_id: str | None = None


class ApplicationWithdrawn(BaseEvent):
    type: Literal["ApplicationWithdrawn"] = "ApplicationWithdrawn"
    personal: str | None = None  # the citizen's reason, if given
    by: str | None = Field(
        default=None, description="The person who acted (staff:<subject>); unset before staff identities"
    )


class CaseClosed(BaseEvent):
    type: Literal["CaseClosed"] = "CaseClosed"


Event = Annotated[
    ApplicationReceived
    | PreScreeningCompleted
    | OplysningRequested
    | OplysningTaskDelivered
    | OplysningDeliveryFailed
    | KommuneReminderSent
    | ExtensionRequested
    | OplysningDeadlineExtended
    | ExtensionRefused
    | OplysningOverdue
    | OplysningPartReceived
    | OplysningCompleted
    | OplysningReturned
    | OplysningCancelled
    | CaseTransferred
    | QuestionAsked
    | QuestionAnswered
    | DecisionMade
    | CitizenNotified
    | KommuneNotified
    | ApplicationWithdrawn
    | CaseClosed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES: dict[str, type[BaseEvent]] = {cls.model_fields["type"].default: cls for cls in BaseEvent.__subclasses__()}

# Upcasters turn a stored body of (type, version) into the body of version + 1. Register every schema change here;
# the event log applies the chain when it reads an old event.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(event_type: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    version = schema_version
    while version < cls.SCHEMA_VERSION:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version}")
        data = step(data)
        version += 1
    return data


def event_from_record(
    *,
    event_id: UUID,
    case_id: str,
    event_type: str,
    schema_version: int,
    occurred_at: datetime,
    data: dict[str, Any],
) -> Event:
    body = upcast(event_type, schema_version, dict(data))
    return EVENT_ADAPTER.validate_python(
        {**body, "event_id": event_id, "case_id": case_id, "type": event_type, "occurred_at": occurred_at}
    )
