"""OplysningTaskWorkflow: one request for information to one kommune, id "task-<task_id>".

Ownership of the case's event stream (one stream per case, keyed by case_id):
    The stream has exactly one writer at any time, and it is handed over together with the expected version.
    The CaseWorkflow records OplysningRequested and starts this workflow with the folded case state (whose `version`
    is the expected version). From then until this workflow returns, it is the ONLY writer of the stream: delivery,
    reminders, escalations, extensions, questions, submissions, completion or return. The CaseWorkflow writes
    nothing meanwhile. This workflow returns the folded state (with the new version) as its result, and the case
    resumes writing from there.
    When the case must write while the task is open (withdrawal, move), it signals `hand_back`: from then on this
    workflow refuses new kommune calls, lets calls already accepted finish and flush, and returns the state; the
    case then records the cancellation together with its own events, as `domain.decide` produces them.
    There is no moment when both could write, so appends never race; a ConcurrencyError would mean a bug, and it
    fails the workflow rather than being retried.

The kommune's calls are Temporal updates whose validators ask `domain.decide` on the current state (with a dummy id
factory; nothing changes), so an illegal call is refused before it enters history. Each call carries an idempotency
key (submission id, request id, question id); the same key again gets the first answer again, with no second effect.
A duplicate that arrives after the task has closed finds its answer in the workflow's result (`TaskResult.answers`).

The SLA clock: the workflow waits for the next of: the next reminder, the next escalation (at the deadline, then
per the policy's `escalation_after`), completion, return, hand-back. An extension moves the deadline (and the
reminders), and the loop recomputes what is next.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, Literal, NoReturn

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from domain.commands import (
    AnswerQuestion,
    AskQuestion,
    Command,
    DecideExtension,
    MarkDelivered,
    MarkOverdue,
    RecordDeliveryFailure,
    RequestExtension,
    ReturnTask,
    SendReminder,
    SubmitPart,
)
from domain.errors import DomainError
from domain.events import (
    Event,
    ExtensionRefused,
    KommuneReminderSent,
    OplysningDeadlineExtended,
    OplysningReturned,
)
from domain.kommuner import normalize_kode
from domain.sla import SlaPolicy
from domain.sla import policy as sla_policy
from domain.state import TaskState, TaskStatus

# Shared with the host instead of re-imported for every workflow run (pydantic model classes are costly to
# build): both modules are deterministic and hold no mutable state.
with workflow.unsafe.imports_passed_through():
    from workflows.common import (
        EXTERNAL_RETRY,
        EXTERNAL_TIMEOUT,
        FAILURE_TYPES,
        NEEDS_OPERATIONS,
        TASK_FINAL_SEARCH_ATTRIBUTES,
        TASK_OWN_SEARCH_ATTRIBUTES,
        TASK_RECHECK_AFTER_PROGRESS,
        EventSourcedWorkflow,
        NeedsOperations,
        deadline_day,
        local_minute,
        refusal_error,
        refuse,
        search_attribute_values,
        task_search_attribute_values,
    )
    from workflows.models import (
        DELIVER_TASK,
        TASK_PROGRESS_SIGNAL,
        TASK_WORKFLOW,
        AnswerRequest,
        DeliveryReceipt,
        ExtensionDecision,
        ExtensionRequest,
        HandBack,
        KommuneMessage,
        QuestionRequest,
        Refusal,
        ReturnRequest,
        SubmitPartRequest,
        TaskInput,
        TaskProgress,
        TaskResult,
        TaskSummary,
        TaskUpdateResult,
        fingerprint,
        reused_key_message,
    )

Due = tuple[Literal["reminder", "overdue"], datetime]


@workflow.defn(name=TASK_WORKFLOW, failure_exception_types=FAILURE_TYPES)
class OplysningTaskWorkflow(EventSourcedWorkflow):
    @workflow.init
    def __init__(self, inp: TaskInput) -> None:
        # Runs before any update is validated, so even a call in the very first workflow task sees the open task.
        self._init_stream(inp.state, inp.answers)
        self.task_id = inp.task_id
        self._hand_back: HandBack | None = inp.hand_back
        self._can_after = inp.continue_as_new_after
        self._in_flight: dict[str, str] = {}
        self._effects: list[asyncio.Task[None]] = []  # deliveries and reminders, with their recording
        self._calls: list[asyncio.Task[DeliveryReceipt]] = []  # the kommune calls within them (cancellable)
        self._progress_due = False
        self._requested_documents = inp.requested_documents
        self._own_attributes = False  # set first thing in `run` (a patch check)

    # -- the SLA loop ------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: TaskInput) -> TaskResult:
        # Asked once, first: a run started by older code keeps its case's attributes to the end (replay stays
        # deterministic); a new run (or a continue-as-new) shows the task's own.
        self._own_attributes = workflow.patched(TASK_OWN_SEARCH_ATTRIBUTES)
        if inp.task_id not in self.state.tasks or inp.state.case_id != inp.case_id:
            raise ApplicationError("task input does not match the case state", type="invalid", non_retryable=True)
        task = self.task
        if task.is_open and task.channel is None and not task.delivery_failed and self._hand_back is None:
            self._spawn(self._deliver())
        while self.task.is_open and self._hand_back is None:
            self._raise_if_fatal()
            if self.needs_operations:
                # Stopped for operations; a hand-back (withdrawal, move) still returns the stream as the log has it.
                await workflow.wait_condition(lambda: self._hand_back is not None)
                break
            if self._progress_due:
                await self._send_progress()
                if workflow.patched(TASK_RECHECK_AFTER_PROGRESS):
                    continue
            due = self._next_due()
            if self.now() >= due[1]:
                with contextlib.suppress(NeedsOperations):
                    await self._fire(due)
                continue
            if self._can_now():
                self._publish()
                workflow.continue_as_new(
                    inp.model_copy(update={"state": self.state, "answers": self.answers, "hand_back": None})
                )
            self._publish()
            # On timeout the loop fires what is due, after re-checking the business time.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    functools.partial(self._woken, due),
                    timeout=self.until(due[1]),
                    timeout_summary=f"next {due[0]}",
                )
        return await self._finish()

    @property
    def task(self) -> TaskState:
        return self.state.tasks[self.task_id]

    @property
    def policy(self) -> SlaPolicy:
        return sla_policy(self.task.policy_id)

    def _woken(self, due: Due) -> bool:
        return (
            self._next_due() != due
            or not self.task.is_open
            or self._hand_back is not None
            or self._fatal is not None
            or self._progress_due
            or self._can_now()
        )

    def _can_now(self) -> bool:
        """Continue-as-new is due and nothing is in flight that the new run would not know about (a running
        delivery or notice, an update handler, events not yet appended)."""
        return (
            self.continue_as_new_due(self._can_after)
            and all(t.done() for t in self._effects)
            and workflow.all_handlers_finished()
            and not self._outbox
            and not self._progress_due
        )

    def _next_due(self) -> Due:
        task = self.task
        overdue_at = self.policy.escalation_after(task.deadline_at, task.escalations + 1)
        if task.reminders_sent < len(task.reminder_ats):
            reminder_at = task.reminder_ats[task.reminders_sent]
            if reminder_at <= overdue_at:
                return ("reminder", reminder_at)
        return ("overdue", overdue_at)

    async def _fire(self, due: Due) -> None:
        kind, _ = due
        command: Command = (
            SendReminder(task_id=self.task_id) if kind == "reminder" else MarkOverdue(task_id=self.task_id)
        )
        (event,) = self.apply(command)
        await self.flush()
        if isinstance(event, KommuneReminderSent):
            self._spawn(self._remind(self.state.version))
        else:
            # Escalation is for operations (search attributes, the case's status, the UI), not a kommune message.
            self._progress_due = True

    async def flush(self) -> None:
        await super().flush()
        # The task's status changes in calls and deliveries that do not wake the SLA loop (which publishes only
        # before it waits): publish with the change, so `TaskStatus="delivered"` finds a task as soon as it is.
        # Unchanged values cost nothing (only what changed is upserted).
        if self._own_attributes:
            self._publish()

    def _raise_if_fatal(self) -> None:
        if self._fatal:
            raise ApplicationError(self._fatal, type="EventStreamDiverged", non_retryable=True)

    async def _finish(self) -> TaskResult:
        # The task is closed: a delivery or reminder still under way is moot. Only the kommune calls are cancelled,
        # never an effect halfway through recording, so every effect ends with its events appended or not applied.
        for call in self._calls:
            if not call.done():
                call.cancel()
        for effect in self._effects:
            await effect
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._outbox)
        self._raise_if_fatal()
        if not self.needs_operations:
            await self.flush()
        self._publish(final=True)
        status = self.task.status
        outcome: Literal["completed", "returned", "handed_back"] = (
            "completed"
            if status is TaskStatus.COMPLETED
            else "returned"
            if status is TaskStatus.RETURNED
            else "handed_back"
        )
        return TaskResult(outcome=outcome, state=self.state, answers=self.answers)

    # -- side effects (in the background, so a slow kommune system never holds the clock or a hand-back) --------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._effects = [t for t in self._effects if not t.done()]
        self._effects.append(asyncio.create_task(_unless_stopped(coro)))

    async def _send(self, message: KommuneMessage, summary: str) -> DeliveryReceipt | None:
        """One message to the kommune; None when the task closed meanwhile and `_finish` cancelled the call."""
        self._calls = [c for c in self._calls if not c.done()]
        call: asyncio.Task[DeliveryReceipt] = asyncio.create_task(
            workflow.execute_activity(
                DELIVER_TASK,
                message,
                result_type=DeliveryReceipt,
                start_to_close_timeout=EXTERNAL_TIMEOUT,
                retry_policy=EXTERNAL_RETRY,
                summary=summary,
            )
        )
        self._calls.append(call)
        try:
            return await call
        except asyncio.CancelledError:
            if call.cancelled():
                return None
            raise

    async def _deliver(self) -> None:
        task = self.task
        message = KommuneMessage(
            task_id=task.task_id,
            case_id=self.state.case_id,
            kommune_kode=task.kommune_kode,
            kind="task",
            deadline_at=task.deadline_at,
            requested_documents=self._requested_documents,
        )
        try:
            receipt = await self._send(message, f"deliver task to kommune {task.kommune_kode}")
        except ActivityError as exc:
            if not self.task.is_open or self._hand_back is not None:
                return
            cause = exc.cause
            kind = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
            # The delivery activity's contract: a non-retryable message is technical only (kommune, HTTP status).
            detail = cause.message if isinstance(cause, ApplicationError) else ""
            reason = f"{kind}: {detail}" if detail else kind
            self.apply(RecordDeliveryFailure(task_id=self.task_id, reason=reason[:500]))
            await self.flush()
            workflow.logger.warning("task delivery failed for good; operations must act", extra={"kind": kind})
            return
        if receipt is not None and self.task.is_open and self._hand_back is None:
            self.apply(MarkDelivered(task_id=self.task_id, channel=receipt.channel))
            await self.flush()

    async def _remind(self, version: int) -> None:
        task = self.task
        message = KommuneMessage(
            task_id=self.task_id,
            case_id=self.state.case_id,
            kommune_kode=task.kommune_kode,
            kind="reminder",
            deadline_at=task.deadline_at,
            seq=version,
        )
        try:
            await self._send(message, f"reminder to kommune {task.kommune_kode}")
        except ActivityError:
            workflow.logger.warning("reminder delivery gave up", extra={"task_id": self.task_id})

    async def _send_progress(self) -> None:
        self._progress_due = False
        parent = workflow.info().parent
        if parent is None:
            return
        task = self.task
        # The case only mirrors this for operations (the task's own attributes are authoritative): a failed signal
        # (the case closing) is no loss.
        with contextlib.suppress(FailureError):
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                TASK_PROGRESS_SIGNAL,
                TaskProgress(
                    task_id=self.task_id,
                    deadline_at=task.deadline_at,
                    overdue=task.overdue,
                    escalations=task.escalations,
                ),
            )

    # -- operations' view --------------------------------------------------------------------------------------

    _what = "task"

    def summary(self) -> TaskSummary:
        return TaskSummary.of(self.state, self.task, hand_back=self._hand_back, needs_operations=self.needs_operations)

    def _publish(self, *, final: bool = False) -> None:
        if self._own_attributes or (final and workflow.patched(TASK_FINAL_SEARCH_ATTRIBUTES)):
            values = task_search_attribute_values(self.state, self.task, handed_back=self._hand_back is not None)
        else:
            values = search_attribute_values(self.state)
        self.publish(values, self._in_words())

    def _in_words(self) -> str:
        task = self.task
        if task.status is TaskStatus.COMPLETED:
            return f"Task completed by kommune {task.kommune_kode}; the case is ready for decision."
        if task.status is TaskStatus.RETURNED:
            return (
                f"Returned by kommune {task.kommune_kode} (not its citizen); "
                f"re-routed to kommune {self.state.kommune_kode}."
            )
        if task.is_open and self._hand_back is not None:
            why = "the citizen withdrew" if self._hand_back.reason == "withdrawn" else "the citizen moved"
            return f"Cancelled for kommune {task.kommune_kode}: {why}; the case took the task back."
        if not task.is_open:
            return f"Task for kommune {task.kommune_kode} {task.status.value}."
        parts = [f"Waiting for kommune {task.kommune_kode}; deadline {deadline_day(task.deadline_at)}"]
        if task.delivery_failed:
            parts.append("DELIVERY FAILED: operations must act")
        elif task.channel is None:
            parts.append("delivering")
        if task.overdue:
            parts.append(f"OVERDUE (escalation {task.escalations})")
        if task.reminders_sent:
            parts.append(f"{task.reminders_sent} reminder(s) sent")
        if task.submissions:
            parts.append(f"{len(task.submissions)} part(s) received")
        if task.pending_extension:
            parts.append("extension request waiting for operations")
        if task.open_questions:
            parts.append(f"{len(task.open_questions)} open question(s)")
        kind, at = self._next_due()
        parts.append(f"next: {kind} {local_minute(at)}")
        return "; ".join(parts) + "."

    @workflow.query
    def status(self) -> TaskSummary:
        return self.summary()

    # -- the case takes the stream back -------------------------------------------------------------------------

    @workflow.signal(name="hand_back")
    def hand_back(self, request: HandBack) -> None:
        if self._hand_back is None:
            self._hand_back = request

    # -- kommune and operations calls ---------------------------------------------------------------------------

    def _validate(self, name: str, key_id: str, request: BaseModel, command: Command) -> None:
        self.refuse_if_busy()
        caller_kommune = getattr(request, "kommune_kode", None)
        if caller_kommune is not None and normalize_kode(caller_kommune) != self.task.kommune_kode:
            # Before any other answer (even a remembered one): to another kommune this task does not exist.
            refuse("forbidden", f"task {self.task_id!r} is not addressed to kommune {caller_kommune}")
        key = f"{name}:{key_id}"
        if self.known_answer(key, request):
            return
        if key in self._in_flight:
            if self._in_flight[key] != fingerprint(request):
                refuse("conflict", reused_key_message(key))
            return
        if self._hand_back is not None:
            refuse("conflict", f"task {self.task_id!r} is being closed: the case was {self._hand_back.reason}")
        if self._fatal:
            refuse("unavailable", "the task is stopped (see the workflow failure)")
        self.check(command)

    async def _handle(self, name: str, key_id: str, request: BaseModel, command: Command) -> TaskUpdateResult:
        key = f"{name}:{key_id}"
        if key in self.answers:
            return self.replay_answer(key, TaskUpdateResult)
        if key in self._in_flight:
            await workflow.wait_condition(lambda: key in self.answers or self._fatal is not None)
            if key not in self.answers:
                self._raise_if_fatal()
            return self.replay_answer(key, TaskUpdateResult)
        self._in_flight[key] = fingerprint(request)
        try:
            try:
                events = self.apply(command)
            except DomainError as exc:
                # Only on replay of a call that the validator let through on a state that has since changed.
                refusal = Refusal(code=exc.code, message=str(exc))
                self.remember(key, request, refusal=refusal)
                raise refusal_error(refusal) from None
            except NeedsOperations as exc:
                self._refuse_stopped(key, request, exc)
            if any(isinstance(e, OplysningDeadlineExtended | OplysningReturned) for e in events):
                self._progress_due = True
            try:
                await self.flush()
            except NeedsOperations as exc:
                # Its events were refused as data (or went with a batch that was): not recorded.
                self._refuse_stopped(key, request, exc)
            result = TaskUpdateResult(
                recorded=tuple(e.type for e in events), extension=_extension(events), task=self.summary()
            )
            self.remember(key, request, result)
            return result
        finally:
            self._in_flight.pop(key, None)

    def _refuse_stopped(self, key: str, request: BaseModel, exc: NeedsOperations) -> NoReturn:
        refusal = Refusal(code=NEEDS_OPERATIONS, message=exc.message)
        self.remember(key, request, refusal=refusal)
        raise refusal_error(refusal) from None

    def _submit(self, r: SubmitPartRequest) -> SubmitPart:
        return SubmitPart(
            task_id=self.task_id,
            kommune_kode=r.kommune_kode,
            submission_id=r.submission_id,
            document_ids=r.document_ids,
            final=r.final,
        )

    @workflow.update
    async def submit_part(self, request: SubmitPartRequest) -> TaskUpdateResult:
        return await self._handle("submit_part", request.submission_id, request, self._submit(request))

    @submit_part.validator
    def _check_submit_part(self, request: SubmitPartRequest) -> None:
        self._validate("submit_part", request.submission_id, request, self._submit(request))

    def _extension(self, r: ExtensionRequest) -> RequestExtension:
        return RequestExtension(
            task_id=self.task_id,
            kommune_kode=r.kommune_kode,
            request_id=r.request_id,
            extend_by=r.extend_by,
            reason=r.reason,
        )

    @workflow.update
    async def request_extension(self, request: ExtensionRequest) -> TaskUpdateResult:
        return await self._handle("request_extension", request.request_id, request, self._extension(request))

    @request_extension.validator
    def _check_request_extension(self, request: ExtensionRequest) -> None:
        self._validate("request_extension", request.request_id, request, self._extension(request))

    def _extension_decision(self, r: ExtensionDecision) -> DecideExtension:
        return DecideExtension(task_id=self.task_id, request_id=r.request_id, grant=r.grant, by=r.by)

    @workflow.update
    async def decide_extension(self, request: ExtensionDecision) -> TaskUpdateResult:
        return await self._handle("decide_extension", request.request_id, request, self._extension_decision(request))

    @decide_extension.validator
    def _check_decide_extension(self, request: ExtensionDecision) -> None:
        self._validate("decide_extension", request.request_id, request, self._extension_decision(request))

    def _question(self, r: QuestionRequest) -> AskQuestion:
        return AskQuestion(
            task_id=self.task_id,
            question_id=r.question_id,
            asked_by=r.asked_by,
            kommune_kode=r.kommune_kode,
            text=r.text,
            by=r.by,
        )

    @workflow.update
    async def ask_question(self, request: QuestionRequest) -> TaskUpdateResult:
        return await self._handle("ask_question", request.question_id, request, self._question(request))

    @ask_question.validator
    def _check_ask_question(self, request: QuestionRequest) -> None:
        self._validate("ask_question", request.question_id, request, self._question(request))

    def _answer(self, r: AnswerRequest) -> AnswerQuestion:
        return AnswerQuestion(
            task_id=self.task_id, question_id=r.question_id, kommune_kode=r.kommune_kode, text=r.text, by=r.by
        )

    @workflow.update
    async def answer_question(self, request: AnswerRequest) -> TaskUpdateResult:
        return await self._handle("answer_question", request.question_id, request, self._answer(request))

    @answer_question.validator
    def _check_answer_question(self, request: AnswerRequest) -> None:
        self._validate("answer_question", request.question_id, request, self._answer(request))

    def _return(self, r: ReturnRequest) -> ReturnTask:
        return ReturnTask(
            task_id=self.task_id,
            kommune_kode=r.kommune_kode,
            correct_kommune_kode=r.correct_kommune_kode,
            reason=r.reason,
        )

    @workflow.update
    async def return_task(self, request: ReturnRequest) -> TaskUpdateResult:
        # A task is returned at most once, so the task id is the idempotency key.
        return await self._handle("return_task", self.task_id, request, self._return(request))

    @return_task.validator
    def _check_return_task(self, request: ReturnRequest) -> None:
        self._validate("return_task", self.task_id, request, self._return(request))


async def _unless_stopped(effect: Coroutine[Any, Any, None]) -> None:
    """A delivery or reminder whose recording finds the workflow stopped for operations ends there: it is not
    recorded, like every other event after the refused append."""
    with contextlib.suppress(NeedsOperations):
        await effect


def _extension(events: list[Event]) -> Literal["granted", "pending", "refused"] | None:
    types = {type(e) for e in events}
    if OplysningDeadlineExtended in types:
        return "granted"
    if ExtensionRefused in types:
        return "refused"
    if any(e.type == "ExtensionRequested" for e in events):
        return "pending"
    return None
