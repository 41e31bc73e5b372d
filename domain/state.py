"""Case state and the one transition function, `evolve`.

The workflow, the projections and the point-in-time queries all fold the same events through `evolve`, so a case
looks the same wherever it is read. `evolve` trusts nothing about the events it is given: an event the state does
not allow raises `DomainError` (it would mean a corrupt log), and it never reads `personal` fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.application import CaseType
from domain.calendar import Duration
from domain.errors import DomainError
from domain.events import (
    ApplicationReceived,
    ApplicationWithdrawn,
    CaseClosed,
    CaseTransferred,
    Channel,
    CitizenNotified,
    DecisionMade,
    Event,
    ExtensionRefused,
    ExtensionRequested,
    KommuneNotified,
    KommuneReminderSent,
    OplysningCancelled,
    OplysningCompleted,
    OplysningDeadlineExtended,
    OplysningDeliveryFailed,
    OplysningOverdue,
    OplysningPartReceived,
    OplysningRequested,
    OplysningReturned,
    OplysningTaskDelivered,
    Outcome,
    Party,
    PreScreeningCompleted,
    QuestionAnswered,
    QuestionAsked,
    RequestReason,
    Verdict,
)


class CaseStatus(StrEnum):
    NEW = "new"  # nothing folded yet
    RECEIVED = "received"
    PRESCREENED = "prescreened"
    AWAITING_KOMMUNE = "awaiting_kommune"
    READY_FOR_DECISION = "ready_for_decision"
    DECIDED = "decided"
    CLOSED = "closed"
    REJECTED_FORMAL = "rejected_formal"
    WITHDRAWN = "withdrawn"


class TaskStatus(StrEnum):
    REQUESTED = "requested"
    DELIVERED = "delivered"
    PARTIALLY_RECEIVED = "partially_received"
    COMPLETED = "completed"
    RETURNED = "returned"
    CANCELLED = "cancelled"


OPEN_TASK_STATUSES = frozenset({TaskStatus.REQUESTED, TaskStatus.DELIVERED, TaskStatus.PARTIALLY_RECEIVED})


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PendingExtension(Frozen):
    request_id: str
    extend_by: Duration
    requested_at: datetime


class TaskState(Frozen):
    task_id: str
    kommune_kode: str
    reason: RequestReason
    policy_id: str
    status: TaskStatus = TaskStatus.REQUESTED
    requested_at: datetime
    original_deadline_at: datetime
    deadline_at: datetime
    reminder_ats: tuple[datetime, ...] = ()
    channel: Channel | None = None
    delivery_failed: bool = False
    reminders_sent: int = 0
    escalations: int = 0
    extensions: tuple[str, ...] = ()  # granted request ids
    pending_extension: PendingExtension | None = None
    refused_extensions: tuple[str, ...] = ()
    submissions: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    open_questions: tuple[str, ...] = ()
    answered_questions: tuple[str, ...] = ()
    # Each side answers the other's questions, so who asked must outlive the event that says so. Of the ids above,
    # those the kommune asked; None in a state carried over (continue-as-new) from code that did not keep them.
    kommune_questions: tuple[str, ...] | None = None
    closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES

    @property
    def overdue(self) -> bool:
        return self.escalations > 0 and self.is_open


class CaseState(Frozen):
    case_id: str = ""
    version: int = 0  # events folded: the expected stream version for the next append
    status: CaseStatus = CaseStatus.NEW
    case_type: CaseType | None = None
    kommune_kode: str | None = None
    subject_id: str | None = None
    received_on: date | None = None
    received_at: datetime | None = None
    business_clock_offset_seconds: float = 0.0
    verdict: Verdict | None = None
    tasks: dict[str, TaskState] = {}
    open_task_id: str | None = None
    outcome: Outcome | None = None
    decided_at: datetime | None = None
    withdrawn: bool = False
    citizen_notified: bool = False
    kommune_notified: tuple[str, ...] = ()
    closed_at: datetime | None = None
    last_event_at: datetime | None = None

    @property
    def open_task(self) -> TaskState | None:
        return self.tasks.get(self.open_task_id) if self.open_task_id else None

    def task(self, task_id: str) -> TaskState:
        found = self.tasks.get(task_id)
        if found is None:
            raise DomainError(f"task {task_id!r} does not belong to this case", code="not_found")
        return found


def _refuse(state: CaseState, event: Event, why: str) -> DomainError:
    return DomainError(f"{event.type} cannot apply to case in status {state.status.value}: {why}", code="corrupt")


def _with_task(state: CaseState, task: TaskState, **case_changes: object) -> CaseState:
    return state.model_copy(update={"tasks": {**state.tasks, task.task_id: task}, **case_changes})


def _open_task_of(state: CaseState, event: Event, task_id: str) -> TaskState:
    task = state.tasks.get(task_id)
    if task is None:
        raise _refuse(state, event, f"unknown task {task_id}")
    if not task.is_open:
        raise _refuse(state, event, f"task {task_id} is {task.status.value}")
    return task


def _close_task(state: CaseState, task: TaskState, status: TaskStatus, at: datetime, **changes: object) -> CaseState:
    closed = task.model_copy(update={"status": status, "closed_at": at, "pending_extension": None, **changes})
    open_id = None if state.open_task_id == task.task_id else state.open_task_id
    return _with_task(state, closed, open_task_id=open_id)


def evolve(state: CaseState, event: Event) -> CaseState:
    if state.closed_at is not None:
        raise _refuse(state, event, "the case is closed")
    if state.status is CaseStatus.NEW and not isinstance(event, ApplicationReceived):
        raise _refuse(state, event, "the first event must be ApplicationReceived")
    if state.case_id and event.case_id != state.case_id:
        raise _refuse(state, event, "event belongs to another case")
    at = event.occurred_at
    s: CaseState
    match event:
        case ApplicationReceived():
            if state.status is not CaseStatus.NEW:
                raise _refuse(state, event, "already received")
            s = state.model_copy(
                update={
                    "case_id": event.case_id,
                    "status": CaseStatus.RECEIVED,
                    "case_type": event.case_type,
                    "kommune_kode": event.kommune_kode,
                    "subject_id": event.subject_id,
                    "received_on": event.received_on,
                    "received_at": at,
                    "business_clock_offset_seconds": event.business_clock_offset_seconds,
                }
            )
        case PreScreeningCompleted():
            if state.status is not CaseStatus.RECEIVED:
                raise _refuse(state, event, "pre-screening happens once, right after receipt")
            s = state.model_copy(update={"status": CaseStatus.PRESCREENED, "verdict": event.verdict})
        case OplysningRequested():
            if state.open_task_id is not None:
                raise _refuse(state, event, "a task is already open")
            if state.status not in (
                CaseStatus.PRESCREENED,
                CaseStatus.AWAITING_KOMMUNE,
                CaseStatus.READY_FOR_DECISION,
            ):
                raise _refuse(state, event, "no oplysning can be requested now")
            if event.task_id in state.tasks:
                raise _refuse(state, event, "task id reused")
            task = TaskState(
                task_id=event.task_id,
                kommune_kode=event.kommune_kode,
                reason=event.reason,
                policy_id=event.policy_id,
                requested_at=at,
                original_deadline_at=event.deadline_at,
                deadline_at=event.deadline_at,
                reminder_ats=event.reminder_ats,
                kommune_questions=(),
            )
            s = _with_task(state, task, open_task_id=task.task_id, status=CaseStatus.AWAITING_KOMMUNE)
        case OplysningTaskDelivered():
            task = _open_task_of(state, event, event.task_id)
            task_status = TaskStatus.DELIVERED if task.status is TaskStatus.REQUESTED else task.status
            s = _with_task(
                state,
                task.model_copy(update={"channel": event.channel, "status": task_status, "delivery_failed": False}),
            )
        case OplysningDeliveryFailed():
            task = _open_task_of(state, event, event.task_id)
            s = _with_task(state, task.model_copy(update={"delivery_failed": True}))
        case KommuneReminderSent():
            task = _open_task_of(state, event, event.task_id)
            s = _with_task(state, task.model_copy(update={"reminders_sent": task.reminders_sent + 1}))
        case OplysningOverdue():
            task = _open_task_of(state, event, event.task_id)
            s = _with_task(state, task.model_copy(update={"escalations": task.escalations + 1}))
        case ExtensionRequested():
            task = _open_task_of(state, event, event.task_id)
            if task.pending_extension is not None:
                raise _refuse(state, event, "an extension request is already pending")
            pending = PendingExtension(request_id=event.request_id, extend_by=event.extend_by, requested_at=at)
            s = _with_task(state, task.model_copy(update={"pending_extension": pending}))
        case OplysningDeadlineExtended():
            task = _open_task_of(state, event, event.task_id)
            if task.pending_extension is None or task.pending_extension.request_id != event.request_id:
                raise _refuse(state, event, "no such pending extension request")
            s = _with_task(
                state,
                task.model_copy(
                    update={
                        "deadline_at": event.deadline_at,
                        "reminder_ats": event.reminder_ats,
                        "pending_extension": None,
                        "extensions": (*task.extensions, event.request_id),
                        # A new deadline starts the escalation count afresh: the task is no longer overdue.
                        "escalations": 0,
                        "reminders_sent": 0,
                    }
                ),
            )
        case ExtensionRefused():
            task = _open_task_of(state, event, event.task_id)
            if task.pending_extension is None or task.pending_extension.request_id != event.request_id:
                raise _refuse(state, event, "no such pending extension request")
            s = _with_task(
                state,
                task.model_copy(
                    update={
                        "pending_extension": None,
                        "refused_extensions": (*task.refused_extensions, event.request_id),
                    }
                ),
            )
        case OplysningPartReceived():
            task = _open_task_of(state, event, event.task_id)
            s = _with_task(
                state,
                task.model_copy(
                    update={
                        "status": TaskStatus.PARTIALLY_RECEIVED,
                        "submissions": (*task.submissions, event.submission_id),
                        "documents": (*task.documents, *event.document_ids),
                    }
                ),
            )
        case OplysningCompleted():
            task = _open_task_of(state, event, event.task_id)
            s = _close_task(state, task, TaskStatus.COMPLETED, at)
            s = s.model_copy(update={"status": CaseStatus.READY_FOR_DECISION})
        case OplysningReturned():
            task = _open_task_of(state, event, event.task_id)
            s = _close_task(state, task, TaskStatus.RETURNED, at)
        case OplysningCancelled():
            task = _open_task_of(state, event, event.task_id)
            s = _close_task(state, task, TaskStatus.CANCELLED, at)
        case CaseTransferred():
            if state.open_task_id is not None:
                raise _refuse(state, event, "close the open task before transferring")
            if event.from_kommune_kode != state.kommune_kode:
                raise _refuse(state, event, "transfer from a kommune the case is not in")
            s = state.model_copy(update={"kommune_kode": event.to_kommune_kode})
        case QuestionAsked():
            task = _open_task_of(state, event, event.task_id)
            asked: dict[str, Any] = {"open_questions": (*task.open_questions, event.question_id)}
            if event.asked_by is Party.KOMMUNE and task.kommune_questions is not None:
                asked["kommune_questions"] = (*task.kommune_questions, event.question_id)
            s = _with_task(state, task.model_copy(update=asked))
        case QuestionAnswered():
            task = _open_task_of(state, event, event.task_id)
            if event.question_id not in task.open_questions:
                raise _refuse(state, event, "no such open question")
            s = _with_task(
                state,
                task.model_copy(
                    update={
                        "open_questions": tuple(q for q in task.open_questions if q != event.question_id),
                        "answered_questions": (*task.answered_questions, event.question_id),
                    }
                ),
            )
        case DecisionMade():
            if event.outcome is Outcome.REJECTED_FORMAL:
                if state.status is not CaseStatus.PRESCREENED or state.verdict is not Verdict.FORMAL_REJECTION:
                    raise _refuse(state, event, "a formal rejection follows a pre-screening that found one")
                status = CaseStatus.REJECTED_FORMAL
            else:
                if state.status is not CaseStatus.READY_FOR_DECISION:
                    raise _refuse(state, event, "the case is not ready for decision")
                status = CaseStatus.DECIDED
            s = state.model_copy(update={"status": status, "outcome": event.outcome, "decided_at": at})
        case ApplicationWithdrawn():
            if state.open_task_id is not None:
                raise _refuse(state, event, "cancel the open task first")
            if state.outcome is not None or state.withdrawn:
                raise _refuse(state, event, "the case is already decided or withdrawn")
            s = state.model_copy(update={"status": CaseStatus.WITHDRAWN, "withdrawn": True})
        case CitizenNotified():
            if state.outcome is None and not state.withdrawn:
                raise _refuse(state, event, "nothing to notify yet")
            s = state.model_copy(update={"citizen_notified": True})
        case KommuneNotified():
            s = state.model_copy(update={"kommune_notified": (*state.kommune_notified, event.kind)})
        case CaseClosed():
            if state.outcome is None and not state.withdrawn:
                raise _refuse(state, event, "only a decided or withdrawn case closes")
            # rejected_formal and withdrawn keep their status as the visible outcome; closed_at marks the end.
            status = CaseStatus.CLOSED if state.status is CaseStatus.DECIDED else state.status
            s = state.model_copy(update={"status": status, "closed_at": at})
    return s.model_copy(update={"version": state.version + 1, "last_event_at": at})


def fold(events: Iterable[Event], state: CaseState | None = None) -> CaseState:
    s = state or CaseState()
    for event in events:
        s = evolve(s, event)
    return s
