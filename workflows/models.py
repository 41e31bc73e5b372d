"""What goes in and out of the case and task workflows: inputs, update requests and answers, query summaries, and
the activity contracts (names and payload models) the workflows call.

Everything here is plain pydantic + domain, so the workflow sandbox, the activities, the API and the tests share one
definition. Payloads are encrypted by the codec, but summaries and results are still written as if they were not:
they carry ids, codes, statuses and instants only, never personal data (free text lives in request fields that go
straight into `personal` event fields).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.application import Application, CaseType
from domain.boundary import FiniteFloat, FreeText, Key, KommuneKode, Label, LongFreeText, Message
from domain.calendar import Duration
from domain.commands import MAX_DOCUMENTS, MAX_LIST
from domain.errors import DomainError
from domain.events import Channel, Event, Outcome, Party, RequestReason, RuleSummary, Verdict
from domain.kommuner import is_kommune, normalize_kode
from domain.sla import DEFAULT_POLICY_ID
from domain.sla import policy as sla_policy
from domain.state import CaseState, CaseStatus, TaskState, TaskStatus

# Activity names: the workflows call activities by these names, so another implementation (the real kommune
# channel, a real Digital Post client) is registered under the same name and nothing in the workflows changes.
# `deliver_task` carries every message to a kommune: the task itself, reminders and notices.
APPEND_EVENTS = "append_events"
# The append activity's error type when the database refuses the events as data: retrying cannot help.
EVENT_DATA_REFUSED = "EventDataRefused"
PRESCREEN_APPLICATION = "prescreen_application"
DELIVER_TASK = "deliver_task"
NOTIFY_CITIZEN = "notify_citizen"

CASE_WORKFLOW = "CaseWorkflow"
TASK_WORKFLOW = "OplysningTaskWorkflow"

# Signal and update names are the method names on the workflow classes; these are the ones other code sends.
HAND_BACK_SIGNAL = "hand_back"
TASK_PROGRESS_SIGNAL = "task_progress"

Id = Key  # an opaque id chosen by the caller (idempotency key); never personal data


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _kommune(value: str) -> str:
    kode = normalize_kode(value)
    if not is_kommune(kode):
        raise ValueError("must be one of the 98 kommune codes")
    return kode


def fingerprint(request: BaseModel) -> str:
    """Identifies a request's content, so a reused idempotency key with other content is refused, not answered."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def reused_key_message(key: str) -> str:
    """The refusal of `key` ("update:key id") reused for a request with other content."""
    name, _, key_id = key.partition(":")
    if name == "return_task":
        return "another request already asked to return the task"
    return f"idempotency key {key_id!r} was already used for another request"


def case_workflow_id(case_id: str) -> str:
    return f"case-{case_id}"


def task_workflow_id(task_id: str) -> str:
    return f"task-{task_id}"


# ---------------------------------------------------------------------------------------------------------------
# Answers shared by both workflows


class Refusal(Frozen):
    """Why a state-changing call was refused. `code` is the DomainError code: conflict, not_found, forbidden,
    invalid (the API maps them to 409/404/403/422)."""

    code: str
    message: str


class Answer(Frozen):
    """The stored first answer to one idempotency key: a duplicate call gets exactly this again."""

    fingerprint: str
    result: dict[str, Any] | None = None  # the result model, dumped (JSON mode)
    refusal: Refusal | None = None


# ---------------------------------------------------------------------------------------------------------------
# Update arguments
#
# One model per action at each boundary that needs its own: the HTTP body (api/kommune_schemas.py, api/ops.py), the
# update argument here, the domain command (domain/commands.py: the argument plus the task id the workflow adds) and
# the event it records. An argument is kept apart from its HTTP body only where the two truly differ, as each
# docstring says; both JSON shapes are fixed (clients send the one, running workflows and saved histories carry the
# other). Where they do not differ the body would be the argument itself. The API builds an argument from
# its body in one place (`api.calls.UpdateRoute`).


# ---------------------------------------------------------------------------------------------------------------
# OplysningTaskWorkflow: id "task-<task_id>"


class SubmitPartRequest(Frozen):
    """A kommune's submission: documents by reference (stored outside Temporal). `final` completes the task.

    Not the HTTP body (`SubmissionRequest`): that one carries the documents' content, which never enters Temporal;
    this one the ids they were stored under, the caller's kommune (from its API key) and the key as
    `submission_id`."""

    kommune_kode: str
    submission_id: Id
    document_ids: tuple[Key, ...] = Field(default=(), max_length=MAX_DOCUMENTS)
    final: bool = False

    _k = field_validator("kommune_kode")(_kommune)


class ExtensionRequest(Frozen):
    """Not the HTTP body (`ExtensionRequestBody`): the kommune comes from the caller's API key, and the key is
    `request_id`."""

    kommune_kode: str
    request_id: Id
    extend_by: Duration
    reason: FreeText | None = None  # personal: free text

    _k = field_validator("kommune_kode")(_kommune)


class ExtensionDecision(Frozen):
    """Operations decide an extension beyond what the policy grants by itself.

    Not the HTTP body (`ExtensionDecisionBody`): the person deciding comes from their token."""

    request_id: Id
    grant: bool
    by: str | None = Field(default=None, description="The person who acts (from their token, never the body)")


class QuestionRequest(Frozen):
    """Not the HTTP body (`QuestionBody`, the same for kommune and caseworker): who asks comes from the route and
    the caller's API key, and the key is `question_id`."""

    question_id: Id
    asked_by: Party
    kommune_kode: str | None = Field(default=None, description="Set when a kommune asks; checked against the task")
    text: Message  # personal: free text
    by: str | None = Field(default=None, description="The person who acts (from their token, never the body)")

    @field_validator("kommune_kode")
    @classmethod
    def _k(cls, value: str | None) -> str | None:
        return None if value is None else _kommune(value)


class AnswerRequest(Frozen):
    """Not the HTTP body (`AnswerBody`): a kommune's answer carries its kommune, from the caller's API key."""

    question_id: Id
    kommune_kode: str | None = Field(default=None, description="Set when a kommune answers")
    text: Message  # personal: free text
    by: str | None = Field(default=None, description="The person who acts (from their token, never the body)")

    @field_validator("kommune_kode")
    @classmethod
    def _k(cls, value: str | None) -> str | None:
        return None if value is None else _kommune(value)


class ReturnRequest(Frozen):
    """'Not our citizen': the case is re-routed to `correct_kommune_kode` with a new task.

    Not the HTTP body (`ReturnBody`): the kommune comes from the caller's API key, and the key is `request_id`."""

    kommune_kode: str
    correct_kommune_kode: KommuneKode
    reason: FreeText | None = None  # personal: free text
    # The caller's idempotency key. A task is returned at most once, so the task id keys the answer; the caller's
    # key is part of the request, so a retry gets the first answer and a second return under another key a conflict.
    request_id: Id | None = None

    _k = field_validator("kommune_kode")(_kommune)
    # correct_kommune_kode is checked by domain.decide (clear message, code "invalid"), not here.


class HandBack(Frozen):
    """Case → task signal: stop and return the stream (withdrawal or move); the case records the cancellation."""

    reason: Literal["withdrawn", "transferred"]


# What a kommune reads about a task the case took back (HandBack.reason in the kommune's words).
CancelledBecause = Literal["withdrawn", "moved"]
CANCELLED_BECAUSE: dict[str, CancelledBecause] = {"withdrawn": "withdrawn", "transferred": "moved"}


class TaskSummary(Frozen):
    """A task as the kommune and operations may see it: no personal data."""

    case_id: str
    task_id: str
    kommune_kode: str
    reason: RequestReason
    policy_id: str
    status: TaskStatus
    requested_at: datetime
    original_deadline_at: datetime
    deadline_at: datetime
    next_reminder_at: datetime | None
    reminders_sent: int
    escalations: int
    overdue: bool
    channel: Channel | None
    delivery_failed: bool
    pending_extension: str | None
    extensions: tuple[str, ...]
    refused_extensions: tuple[str, ...]
    open_questions: tuple[str, ...]
    answered_questions: tuple[str, ...]
    kommune_questions: tuple[str, ...] = Field(
        default=(), description="Of the questions, those the kommune asked: the caseworker answers them, it the rest"
    )
    submissions: tuple[str, ...]
    documents: tuple[str, ...]
    closing: bool = Field(default=False, description="The case took the task back (withdrawal or move)")
    cancelled_because: CancelledBecause | None = Field(
        default=None,
        description="Set when the case took the task back: the citizen withdrew, or moved to another kommune. "
        "The task is then `cancelled`: it has no next reminder and no open questions, and accepts nothing more",
    )
    needs_operations: bool = Field(
        default=False, description="Stopped: the event log refused its events; it takes no calls until operations act"
    )
    version: int = Field(description="Case stream version after this state")

    @classmethod
    def of(
        cls,
        state: CaseState,
        task: TaskState,
        *,
        hand_back: HandBack | None = None,
        needs_operations: bool = False,
    ) -> TaskSummary:
        # The case records the cancellation once it has the stream back, so the task's own state still reads open:
        # from the hand-back on, the kommune must read what it is (a cancelled task), not what was last recorded.
        cancelled = hand_back is not None and task.is_open
        next_reminder = task.reminder_ats[task.reminders_sent] if task.reminders_sent < len(task.reminder_ats) else None
        return cls(
            case_id=state.case_id,
            task_id=task.task_id,
            kommune_kode=task.kommune_kode,
            reason=task.reason,
            policy_id=task.policy_id,
            status=TaskStatus.CANCELLED if cancelled else task.status,
            requested_at=task.requested_at,
            original_deadline_at=task.original_deadline_at,
            deadline_at=task.deadline_at,
            next_reminder_at=next_reminder if task.is_open and not cancelled else None,
            reminders_sent=task.reminders_sent,
            escalations=task.escalations,
            overdue=task.overdue and not cancelled,
            channel=task.channel,
            delivery_failed=task.delivery_failed,
            pending_extension=task.pending_extension.request_id if task.pending_extension and not cancelled else None,
            extensions=task.extensions,
            refused_extensions=task.refused_extensions,
            open_questions=() if cancelled else task.open_questions,
            answered_questions=task.answered_questions,
            kommune_questions=task.kommune_questions or (),
            submissions=task.submissions,
            documents=task.documents,
            closing=hand_back is not None,
            cancelled_because=CANCELLED_BECAUSE[hand_back.reason] if cancelled and hand_back else None,
            needs_operations=needs_operations,
            version=state.version,
        )

    def brief(self) -> TaskBrief:
        return TaskBrief(
            task_id=self.task_id,
            kommune_kode=self.kommune_kode,
            reason=self.reason,
            status=self.status,
            deadline_at=self.deadline_at,
            overdue=self.overdue,
        )


class TaskUpdateResult(Frozen):
    """What every task update returns: the events it recorded and the task afterwards."""

    recorded: tuple[str, ...] = Field(description="Event types recorded by this call, in order")
    extension: Literal["granted", "pending", "refused"] | None = None
    task: TaskSummary


class TaskProgress(Frozen):
    """Task → case signal when the SLA picture changes (deadline moved, overdue), for the case's search attributes
    and status query. It records nothing: the task owns the stream while it is open."""

    task_id: str
    deadline_at: datetime
    overdue: bool
    escalations: int


class TaskInput(Frozen):
    """Start (or continue-as-new) of a task. `state` is the case folded up to and including the task's
    OplysningRequested: its `version` is the expected stream version the task appends at."""

    case_id: str
    task_id: str
    state: CaseState
    requested_documents: tuple[str, ...] = ()
    continue_as_new_after: int | None = Field(
        default=None, description="Test hook: continue-as-new once history has this many events"
    )
    # Carried over continue-as-new:
    answers: dict[str, Answer] = {}
    hand_back: HandBack | None = None


class TaskResult(Frozen):
    outcome: Literal["completed", "returned", "handed_back"]
    state: CaseState = Field(description="The case as the task leaves it; version = stream version")
    answers: dict[str, Answer] = Field(default={}, description="For duplicates that arrive after the task closed")


# ---------------------------------------------------------------------------------------------------------------
# CaseWorkflow: id "case-<case_id>"


class CaseInput(Frozen):
    case_id: str = Field(description="Our own uuid for the case; never a CPR number")
    subject_id: Key = Field(description="Pseudonymous id of the data subject")
    application: Application
    policy_id: str = DEFAULT_POLICY_ID
    business_clock_offset_seconds: FiniteFloat = Field(
        default=0.0, description="Business time = workflow time + this; 0 in production, set by simulations"
    )
    continue_as_new_after: int | None = Field(
        default=None, description="Test hook: continue-as-new once history has this many events"
    )
    carry: CaseCarry | None = None

    @field_validator("case_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(UUID(value))
        except ValueError:
            raise ValueError("case_id must be a uuid") from None

    @field_validator("policy_id")
    @classmethod
    def _policy(cls, value: str) -> str:
        try:
            sla_policy(value)
        except DomainError as exc:
            raise ValueError(str(exc)) from None
        return value


class CaseCarry(Frozen):
    """State a case carries over continue-as-new (taken only when no task is open and no update is in flight)."""

    state: CaseState
    answers: dict[str, Answer] = {}


class DecisionRequest(Frozen):
    """The caseworker's decision, or a request for supplementary information (a new task to the kommune).

    Not the HTTP body (`DecisionBody`): `decided_by` is the caller (its key id), and the key is `request_id`."""

    request_id: Id
    outcome: Literal["granted", "rejected", "supplementary"]
    decided_by: Key = Field(description="Caseworker id")
    reason_codes: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)
    reasons: LongFreeText | None = None  # personal: the written reasons
    requested_documents: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)


class WithdrawRequest(Frozen):
    """Not the HTTP body (`WithdrawBody`): the HTTP API calls every caller's key `idempotency_key`, the workflow
    argument `request_id`, and both shapes are fixed."""

    request_id: Id
    reason: FreeText | None = None  # personal
    by: str | None = Field(default=None, description="The person who acts (from their token, never the body)")


class TransferRequest(Frozen):
    """The citizen moved: the open task (if any) is cancelled with a notice and a new one goes to the new kommune.

    Not the HTTP body (`TransferBody`): the key is `request_id` here, `idempotency_key` there."""

    request_id: Id
    to_kommune_kode: KommuneKode
    # to_kommune_kode is checked by domain.decide (clear message, code "invalid").
    by: str | None = Field(default=None, description="The person who acts (from their token, never the body)")


class TaskBrief(Frozen):
    task_id: str
    kommune_kode: str
    reason: RequestReason
    status: TaskStatus
    deadline_at: datetime
    overdue: bool


class CaseSummary(Frozen):
    """The case for operations: statuses, codes, ids and instants only (no CPR, names or free text)."""

    case_id: str
    status: CaseStatus
    phase: str = Field(description="Where the case stands, in words")
    needs_operations: bool = Field(
        default=False, description="Stopped: the event log refused its events; it takes no calls until operations act"
    )
    case_type: CaseType | None
    kommune_kode: str | None
    verdict: Verdict | None
    outcome: Outcome | None
    open_task_id: str | None
    tasks: tuple[TaskBrief, ...]
    received_at: datetime | None
    decided_at: datetime | None
    closed_at: datetime | None
    version: int

    def with_task(self, task: TaskSummary) -> CaseSummary:
        """This summary with `task` as its task workflow reports it. While a task is open the task workflow owns the
        stream, so the case's own state knows the task only as it was requested (see workflows/task.py); a signal
        per change would cost the case a workflow task each, so readers ask the task instead. A report older than
        what the case knows is ignored."""
        if task.case_id != self.case_id or task.version < self.version:
            return self
        tasks = tuple(task.brief() if brief.task_id == task.task_id else brief for brief in self.tasks)
        return self.model_copy(update={"tasks": tasks})


class CaseUpdateResult(Frozen):
    recorded: tuple[str, ...] = Field(description="Event types recorded by this call, in order")
    task_id: str | None = Field(default=None, description="The new task, when the call opened one")
    case: CaseSummary


class CaseResult(Frozen):
    case_id: str
    status: CaseStatus
    outcome: Outcome | None
    version: int
    answers: dict[str, Answer] = Field(default={}, description="For duplicates that arrive after the case closed")


# ---------------------------------------------------------------------------------------------------------------
# Activity contracts


class AppendRequest(Frozen):
    case_id: str
    expected_version: int = Field(ge=0)
    events: tuple[Event, ...]


class AppendResult(Frozen):
    positions: tuple[int, ...]


class PrescreenRequest(Frozen):
    case_id: str
    application: Application
    on: date = Field(description="The business date the screening is for")


class PrescreenResult(Frozen):
    verdict: Verdict
    rules: tuple[RuleSummary, ...] = ()
    reason_codes: tuple[str, ...] = Field(default=(), description="Rules not met, for a formal rejection")
    details: dict[str, Any] | None = None  # personal: reasons and factors


class KommuneMessage(Frozen):
    """What the `deliver_task` activity takes: a task, a reminder or a notice for one kommune's system, by its
    channel (push or inbox); the real activity (activities/kommune_delivery.py) takes it as it is. Ids, codes and
    instants only: the kommune fetches the citizen's identity over its authenticated API."""

    task_id: str
    case_id: str
    kommune_kode: str
    kind: Literal["task", "reminder", "notice"]
    deadline_at: datetime | None = None
    requested_documents: tuple[str, ...] = ()
    notice: Literal["decision", "withdrawn", "task_closed"] | None = None
    # The message's idempotency key is `<task id>:<kind>:<seq>`, the same on every retry. A reminder passes the
    # stream version of its KommuneReminderSent (reminder numbers restart after an extension); a task or notice
    # leaves it unset (the key is then `:task:1` or `:notice:<notice>`).
    seq: int | None = Field(default=None, ge=0)


class DeliveryReceipt(Frozen):
    channel: Channel
    status_code: int | None = None


class CitizenLetter(Frozen):
    """A Digital Post letter to the citizen. The adapter looks up the recipient by `subject_id` and the content
    (decision and reasons) from the event log: neither travels in this payload."""

    message_id: str = Field(description="Stable across retries")
    case_id: str
    subject_id: str
    kind: Literal["decision", "withdrawal_confirmed"]
    outcome: Outcome | None = None


class DigitalPostReceipt(Frozen):
    message_id: str


CaseInput.model_rebuild()
