"""Commands and `decide`: what may happen to a case, and the events it produces.

`decide(command, state, now=..., new_id=...)` is pure. It raises `DomainError` with a reason when the state does not
allow the command; otherwise every event it returns folds through `evolve`. The workflow calls it from update
validators (with a throw-away id factory) to refuse bad calls before they enter history, and again in the handler
with `workflow.uuid4` to get deterministic event ids.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.application import Application
from domain.boundary import FiniteFloat, FreeText, Key, KommuneKode, Label, LongFreeText, Message, check_model
from domain.calendar import Duration
from domain.errors import DomainError
from domain.events import (
    ApplicationReceived,
    ApplicationWithdrawn,
    CancelReason,
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
    RuleSummary,
    TransferReason,
    Verdict,
)
from domain.kommuner import is_kommune, normalize_kode
from domain.sla import policy as sla_policy
from domain.state import CaseState, CaseStatus, TaskState

# How many requested documents or reason codes a command carries, and documents a submission: the API's limits.
MAX_LIST = 50
MAX_DOCUMENTS = 20


class Command(BaseModel):
    """What a caller asks of a case. Fields a caller fills in have the boundary types (`domain.boundary`), so a
    command that exists is one the event log can hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ReceiveApplication(Command):
    kind: Literal["receive_application"] = "receive_application"
    case_id: str
    subject_id: Key
    application: Application
    business_clock_offset_seconds: FiniteFloat = 0.0


class RecordPreScreening(Command):
    kind: Literal["record_prescreening"] = "record_prescreening"
    verdict: Verdict
    rules: tuple[RuleSummary, ...] = ()
    details: dict[str, Any] | None = None


class RequestOplysning(Command):
    kind: Literal["request_oplysning"] = "request_oplysning"
    task_id: str
    reason: RequestReason
    policy_id: str
    requested_documents: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)
    # The caseworker who asked for supplementary information; None when the case itself asks (a new case, a move).
    by: str | None = None


class MarkDelivered(Command):
    kind: Literal["mark_delivered"] = "mark_delivered"
    task_id: str
    channel: Channel


class RecordDeliveryFailure(Command):
    kind: Literal["record_delivery_failure"] = "record_delivery_failure"
    task_id: str
    reason: str = Field(max_length=500)


class SendReminder(Command):
    kind: Literal["send_reminder"] = "send_reminder"
    task_id: str


class MarkOverdue(Command):
    kind: Literal["mark_overdue"] = "mark_overdue"
    task_id: str


class RequestExtension(Command):
    kind: Literal["request_extension"] = "request_extension"
    task_id: str
    kommune_kode: str
    request_id: Key
    extend_by: Duration
    reason: FreeText | None = None


class DecideExtension(Command):
    kind: Literal["decide_extension"] = "decide_extension"
    task_id: str
    request_id: Key
    grant: bool
    # The person who acts (`staff:<subject>`); None in histories from before staff identities, and for a kommune.
    by: str | None = None


class SubmitPart(Command):
    kind: Literal["submit_part"] = "submit_part"
    task_id: str
    kommune_kode: str
    submission_id: Key
    document_ids: tuple[Key, ...] = Field(default=(), max_length=MAX_DOCUMENTS)
    final: bool = False


class AskQuestion(Command):
    kind: Literal["ask_question"] = "ask_question"
    task_id: str
    question_id: Key
    asked_by: Party
    kommune_kode: str | None = None  # set when a kommune asks: checked against the task
    text: Message
    # The person who acts (`staff:<subject>`); None in histories from before staff identities, and for a kommune.
    by: str | None = None


class AnswerQuestion(Command):
    kind: Literal["answer_question"] = "answer_question"
    task_id: str
    question_id: Key
    kommune_kode: str | None = None  # set when a kommune answers
    text: Message
    # The person who acts (`staff:<subject>`); None in histories from before staff identities, and for a kommune.
    by: str | None = None


class ReturnTask(Command):
    kind: Literal["return_task"] = "return_task"
    task_id: str
    kommune_kode: str
    correct_kommune_kode: KommuneKode
    reason: FreeText | None = None


class TransferCase(Command):
    """The citizen moved: close the old kommune's task and move the case."""

    kind: Literal["transfer_case"] = "transfer_case"
    to_kommune_kode: KommuneKode
    # The person who acts (`staff:<subject>`); None in histories from before staff identities, and for a kommune.
    by: str | None = None


class MakeDecision(Command):
    kind: Literal["make_decision"] = "make_decision"
    outcome: Literal[Outcome.GRANTED, Outcome.REJECTED]
    decided_by: Key
    reason_codes: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)
    reasons: LongFreeText | None = None


class RejectFormally(Command):
    kind: Literal["reject_formally"] = "reject_formally"
    reason_codes: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)
    reasons: LongFreeText | None = None


class NotifyCitizen(Command):
    kind: Literal["notify_citizen"] = "notify_citizen"
    message_id: str


class NotifyKommune(Command):
    kind: Literal["notify_kommune"] = "notify_kommune"
    kommune_kode: str
    notice: Literal["decision", "withdrawn", "task_closed"]
    task_id: str | None = None


class Withdraw(Command):
    kind: Literal["withdraw"] = "withdraw"
    reason: FreeText | None = None
    # The person who acts (`staff:<subject>`); None in histories from before staff identities, and for a kommune.
    by: str | None = None


class CloseCase(Command):
    kind: Literal["close_case"] = "close_case"


AnyCommand = Annotated[
    ReceiveApplication
    | RecordPreScreening
    | RequestOplysning
    | MarkDelivered
    | RecordDeliveryFailure
    | SendReminder
    | MarkOverdue
    | RequestExtension
    | DecideExtension
    | SubmitPart
    | AskQuestion
    | AnswerQuestion
    | ReturnTask
    | TransferCase
    | MakeDecision
    | RejectFormally
    | NotifyCitizen
    | NotifyKommune
    | Withdraw
    | CloseCase,
    Field(discriminator="kind"),
]

NewId = Callable[[], UUID]


def _refuse(message: str, code: str = "conflict") -> DomainError:
    return DomainError(message, code=code)


def _require_status(state: CaseState, *allowed: CaseStatus, action: str) -> None:
    if state.closed_at is not None:
        raise _refuse(f"cannot {action}: the case is closed")
    if state.status not in allowed:
        raise _refuse(f"cannot {action}: the case is {state.status.value}")


def _open_task(state: CaseState, task_id: str, *, kommune_kode: str | None = None, action: str) -> TaskState:
    task = state.tasks.get(task_id)
    if task is None:
        raise _refuse(f"cannot {action}: task {task_id!r} does not belong to this case", "not_found")
    if kommune_kode is not None and task.kommune_kode != normalize_kode(kommune_kode):
        # The caller must not learn anything about another kommune's task.
        raise _refuse(f"cannot {action}: task {task_id!r} is not addressed to kommune {kommune_kode}", "forbidden")
    if not task.is_open:
        raise _refuse(f"cannot {action}: task {task_id!r} is {task.status.value}")
    return task


def _known_kommune(kode: str, field: str) -> str:
    """The canonical code ("0329" → "329"), so a case never holds two spellings of one kommune."""
    if not is_kommune(kode):
        raise _refuse(f"{field}: unknown kommune code {kode!r}", "invalid")
    return normalize_kode(kode)


def decide(command: Command, state: CaseState, *, now: datetime, new_id: NewId) -> list[Event]:
    """Events the command produces in this state, or `DomainError` saying why not."""
    # Nothing outside the boundary rule may be decided on: the update validators ask here, so such a call is
    # refused before it enters history (a command built without validation included).
    check_model(command)
    case_id = state.case_id
    base: dict[str, Any] = {"case_id": case_id, "occurred_at": now}

    def ev(cls: type[Any], **fields: Any) -> Any:
        return cls(event_id=new_id(), **base, **fields)

    match command:
        case ReceiveApplication():
            if state.status is not CaseStatus.NEW:
                raise _refuse("the application is already received")
            app = command.application
            base["case_id"] = command.case_id
            return [
                ev(
                    ApplicationReceived,
                    case_type=app.case_type,
                    kommune_kode=app.kommune_kode,
                    received_on=app.received_on,
                    subject_id=command.subject_id,
                    business_clock_offset_seconds=command.business_clock_offset_seconds,
                    personal=app,
                )
            ]
        case RecordPreScreening():
            _require_status(state, CaseStatus.RECEIVED, action="record pre-screening")
            return [
                ev(
                    PreScreeningCompleted,
                    verdict=command.verdict,
                    rules=command.rules,
                    personal=command.details,
                )
            ]
        case RequestOplysning():
            _require_status(
                state,
                CaseStatus.PRESCREENED,
                CaseStatus.AWAITING_KOMMUNE,
                CaseStatus.READY_FOR_DECISION,
                action="request oplysning",
            )
            if state.status is CaseStatus.PRESCREENED and state.verdict is Verdict.FORMAL_REJECTION:
                raise _refuse("cannot request oplysning: pre-screening found a formal rejection")
            if state.open_task_id is not None:
                raise _refuse(f"cannot request oplysning: task {state.open_task_id!r} is still open")
            if command.task_id in state.tasks:
                raise _refuse(f"task id {command.task_id!r} is already used")
            pol = sla_policy(command.policy_id)
            deadline = pol.deadline(now)
            assert state.kommune_kode is not None
            return [
                ev(
                    OplysningRequested,
                    task_id=command.task_id,
                    kommune_kode=state.kommune_kode,
                    reason=command.reason,
                    policy_id=pol.policy_id,
                    deadline_at=deadline,
                    reminder_ats=pol.reminders(now, deadline),
                    requested_documents=command.requested_documents,
                    by=command.by,
                )
            ]
        case MarkDelivered():
            _open_task(state, command.task_id, action="mark delivered")
            return [ev(OplysningTaskDelivered, task_id=command.task_id, channel=command.channel)]
        case RecordDeliveryFailure():
            _open_task(state, command.task_id, action="record a delivery failure")
            return [ev(OplysningDeliveryFailed, task_id=command.task_id, reason=command.reason)]
        case SendReminder():
            task = _open_task(state, command.task_id, action="send a reminder")
            return [
                ev(
                    KommuneReminderSent,
                    task_id=task.task_id,
                    reminder_no=task.reminders_sent + 1,
                    deadline_at=task.deadline_at,
                )
            ]
        case MarkOverdue():
            task = _open_task(state, command.task_id, action="mark overdue")
            if now < task.deadline_at:
                raise _refuse("cannot mark overdue before the deadline")
            return [
                ev(
                    OplysningOverdue,
                    task_id=task.task_id,
                    escalation_no=task.escalations + 1,
                    deadline_at=task.deadline_at,
                )
            ]
        case RequestExtension():
            task = _open_task(state, command.task_id, kommune_kode=command.kommune_kode, action="request an extension")
            if task.pending_extension is not None:
                raise _refuse("an extension request is already waiting for operations")
            if command.request_id in task.extensions or command.request_id in task.refused_extensions:
                raise _refuse(f"extension request {command.request_id!r} was already decided")
            if command.extend_by.quantity < 1:
                raise _refuse("extend_by.quantity: must be at least 1", "invalid")
            pol = sla_policy(task.policy_id)
            new_deadline = pol.extend(task.deadline_at, command.extend_by)
            events: list[Event] = [
                ev(
                    ExtensionRequested,
                    task_id=task.task_id,
                    request_id=command.request_id,
                    extend_by=command.extend_by,
                    personal=command.reason,
                )
            ]
            if new_deadline <= pol.max_deadline(task.original_deadline_at):
                events.append(
                    ev(
                        OplysningDeadlineExtended,
                        task_id=task.task_id,
                        request_id=command.request_id,
                        deadline_at=new_deadline,
                        reminder_ats=pol.reminders(now, new_deadline),
                        granted_by="policy",
                    )
                )
            return events
        case DecideExtension():
            task = _open_task(state, command.task_id, action="decide an extension")
            pending = task.pending_extension
            if pending is None or pending.request_id != command.request_id:
                raise _refuse(
                    f"no pending extension request {command.request_id!r} on task {task.task_id!r}",
                    "not_found",
                )
            if not command.grant:
                return [ev(ExtensionRefused, task_id=task.task_id, request_id=pending.request_id, by=command.by)]
            pol = sla_policy(task.policy_id)
            new_deadline = pol.extend(task.deadline_at, pending.extend_by)
            return [
                ev(
                    OplysningDeadlineExtended,
                    task_id=task.task_id,
                    request_id=pending.request_id,
                    deadline_at=new_deadline,
                    reminder_ats=pol.reminders(now, new_deadline),
                    granted_by="operations",
                    by=command.by,
                )
            ]
        case SubmitPart():
            task = _open_task(state, command.task_id, kommune_kode=command.kommune_kode, action="submit")
            if command.submission_id in task.submissions:
                raise _refuse(f"submission {command.submission_id!r} is already received")
            if not command.document_ids and not command.final:
                raise _refuse("document_ids: a partial submission needs at least one document", "invalid")
            events = [
                ev(
                    OplysningPartReceived,
                    task_id=task.task_id,
                    submission_id=command.submission_id,
                    document_ids=command.document_ids,
                    final=command.final,
                )
            ]
            if command.final:
                if task.open_questions:
                    raise _refuse("cannot complete the task while questions are unanswered")
                events.append(ev(OplysningCompleted, task_id=task.task_id))
            return events
        case AskQuestion():
            task = _open_task(state, command.task_id, kommune_kode=command.kommune_kode, action="ask a question")
            if (command.asked_by is Party.KOMMUNE) != (command.kommune_kode is not None):
                raise _refuse("kommune_kode: set exactly when the kommune asks", "invalid")
            if command.question_id in task.open_questions or command.question_id in task.answered_questions:
                raise _refuse(f"question id {command.question_id!r} is already used")
            return [
                ev(
                    QuestionAsked,
                    task_id=task.task_id,
                    question_id=command.question_id,
                    asked_by=command.asked_by,
                    personal=command.text,
                    by=command.by,
                )
            ]
        case AnswerQuestion():
            task = _open_task(state, command.task_id, kommune_kode=command.kommune_kode, action="answer a question")
            if command.question_id not in task.open_questions:
                raise _refuse(f"question {command.question_id!r} is not open on this task", "not_found")
            # Unknown askers cannot be checked: a task state from code that did not keep them (a running task's
            # input or carry-over) replays its old answers, and takes new ones, as that code did.
            checked = task.kommune_questions is not None
            asked_by_kommune = command.question_id in (task.kommune_questions or ())
            if checked and asked_by_kommune == (command.kommune_kode is not None):
                asker, answerer = ("kommune", "caseworker") if asked_by_kommune else ("caseworker", "kommune")
                raise _refuse(f"question {command.question_id!r} was asked by the {asker}: the {answerer} answers it")
            return [
                ev(
                    QuestionAnswered,
                    task_id=task.task_id,
                    question_id=command.question_id,
                    personal=command.text,
                    by=command.by,
                )
            ]
        case ReturnTask():
            task = _open_task(state, command.task_id, kommune_kode=command.kommune_kode, action="return the task")
            correct = _known_kommune(command.correct_kommune_kode, "correct_kommune_kode")
            if correct == task.kommune_kode:
                raise _refuse("correct_kommune_kode: must be another kommune than the one returning", "invalid")
            return [
                ev(
                    OplysningReturned,
                    task_id=task.task_id,
                    kommune_kode=task.kommune_kode,
                    correct_kommune_kode=correct,
                    personal=command.reason,
                ),
                ev(
                    CaseTransferred,
                    from_kommune_kode=task.kommune_kode,
                    to_kommune_kode=correct,
                    reason=TransferReason.RETURNED,
                ),
            ]
        case TransferCase():
            _require_status(
                state,
                CaseStatus.RECEIVED,
                CaseStatus.PRESCREENED,
                CaseStatus.AWAITING_KOMMUNE,
                CaseStatus.READY_FOR_DECISION,
                action="transfer the case",
            )
            to_kommune = _known_kommune(command.to_kommune_kode, "to_kommune_kode")
            if to_kommune == state.kommune_kode:
                raise _refuse("to_kommune_kode: the case is already in that kommune", "invalid")
            assert state.kommune_kode is not None
            events = []
            if state.open_task_id is not None:
                events.append(ev(OplysningCancelled, task_id=state.open_task_id, reason=CancelReason.TRANSFERRED))
            events.append(
                ev(
                    CaseTransferred,
                    from_kommune_kode=state.kommune_kode,
                    to_kommune_kode=to_kommune,
                    reason=TransferReason.MOVED,
                    by=command.by,
                )
            )
            return events
        case MakeDecision():
            _require_status(state, CaseStatus.READY_FOR_DECISION, action="decide")
            return [
                ev(
                    DecisionMade,
                    outcome=command.outcome,
                    reason_codes=command.reason_codes,
                    decided_by=command.decided_by,
                    personal=command.reasons,
                )
            ]
        case RejectFormally():
            _require_status(state, CaseStatus.PRESCREENED, action="reject formally")
            if state.verdict is not Verdict.FORMAL_REJECTION:
                raise _refuse("cannot reject formally: pre-screening did not find a formal rejection")
            return [
                ev(
                    DecisionMade,
                    outcome=Outcome.REJECTED_FORMAL,
                    reason_codes=command.reason_codes,
                    decided_by="prescreening",
                    personal=command.reasons,
                )
            ]
        case NotifyCitizen():
            if state.closed_at is not None:
                raise _refuse("cannot notify: the case is closed")
            if state.outcome is None and not state.withdrawn:
                raise _refuse("cannot notify the citizen before a decision or withdrawal")
            kind = "withdrawal_confirmed" if state.withdrawn else "decision"
            return [ev(CitizenNotified, message_id=command.message_id, kind=kind)]
        case NotifyKommune():
            if state.closed_at is not None:
                raise _refuse("cannot notify: the case is closed")
            if state.status is CaseStatus.NEW:
                raise _refuse("cannot notify a kommune before the application is received")
            return [
                ev(
                    KommuneNotified,
                    kommune_kode=command.kommune_kode,
                    kind=command.notice,
                    task_id=command.task_id,
                )
            ]
        case Withdraw():
            _require_status(
                state,
                CaseStatus.RECEIVED,
                CaseStatus.PRESCREENED,
                CaseStatus.AWAITING_KOMMUNE,
                CaseStatus.READY_FOR_DECISION,
                action="withdraw",
            )
            events = []
            if state.open_task_id is not None:
                events.append(ev(OplysningCancelled, task_id=state.open_task_id, reason=CancelReason.WITHDRAWN))
            events.append(ev(ApplicationWithdrawn, personal=command.reason, by=command.by))
            return events
        case CloseCase():
            if state.closed_at is not None:
                raise _refuse("the case is already closed")
            if state.outcome is None and not state.withdrawn:
                raise _refuse("cannot close a case that is neither decided nor withdrawn")
            return [ev(CaseClosed)]
    raise _refuse(f"unknown command {type(command).__name__}", "invalid")
