"""What the case and the task workflow share: recording events, idempotent answers, search attributes.

Recording follows one rule: `decide` on the current state, fold the events into the state at once (so the next
validator already sees them), put them in an outbox, and append the outbox to the event log with the expected
version before anything else can observe the change: before a side-effect activity, before an update answers,
before the workflow waits, and before it completes. Appends run one at a time under a lock, so the expected
version always matches the stream. Appends are regular activities, never local ones (see `flush`). An append the log
refuses (ConcurrencyError) means the workflow's state no longer matches the stream: the workflow fails loudly
instead of guessing.

An append the log refuses as data (`EVENT_DATA_REFUSED`: a value the boundary rule should have kept out) cannot be
retried into the log either, but the stream is intact: the workflow goes back to the state at the stream's version,
refuses the calls whose events were not recorded (their callers get that answer), and stops there for operations
(`NeedsOperations` search attribute, current details, the summaries), instead of retrying for ever behind an answer
that never comes. Operations reset it to before the refused call, or terminate it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar
from uuid import UUID

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from domain.calendar import COPENHAGEN
from domain.commands import Command, decide
from domain.errors import DomainError
from domain.events import Event
from domain.state import CaseState, TaskState, TaskStatus, evolve, fold
from workflows import activation_guard
from workflows import search_attributes as sa
from workflows.models import (
    APPEND_EVENTS,
    EVENT_DATA_REFUSED,
    Answer,
    AppendRequest,
    AppendResult,
    Refusal,
    fingerprint,
    reused_key_message,
)

# Programming and data errors fail the workflow (visible in the UI, alertable) instead of retrying the workflow task
# forever. Non-determinism is deliberately absent: after a bad deploy the cases wait for the fix, none is lost.
FAILURE_TYPES: Sequence[type[BaseException]] = (
    DomainError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    AssertionError,
    ArithmeticError,
)

APPEND_TIMEOUT = timedelta(seconds=30)
APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["ConcurrencyError", "DuplicateEventConflict", EVENT_DATA_REFUSED],
)
# Kommune systems and Digital Post may be down for hours: keep retrying with backoff; a non-retryable error is for
# what will not heal (a 4xx), which operations must see.
EXTERNAL_TIMEOUT = timedelta(seconds=60)
EXTERNAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=10))
LOCAL_TIMEOUT = timedelta(seconds=30)

M = TypeVar("M", bound=BaseModel)

# Before it, an append refused as data failed the workflow like a diverged stream (after retrying for ever, as
# such errors were retryable then); with it, the workflow stops for operations with its stream intact.
NEEDS_OPERATIONS_PATCH = "needs-operations-on-refused-append"
NEEDS_OPERATIONS = "needs_operations"
# An update refused before it entered history because accepting it now could not be replayed (see
# workflows/activation_guard.py); the caller retries with the same idempotency key.
BUSY = "busy"


class NeedsOperations(ApplicationError):
    """The workflow stopped for operations: the events of this call were not recorded. As an ApplicationError it is
    the answer an update handler gives if it lets it through."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=NEEDS_OPERATIONS, non_retryable=True)


def _validation_id() -> UUID:
    return UUID(int=0)


def refusal_error(refusal: Refusal) -> ApplicationError:
    # The message names fields and rules only (DomainError's contract), so it is safe for callers and logs.
    return ApplicationError(refusal.message, type=refusal.code, non_retryable=True)


def refuse(code: str, message: str) -> NoReturn:
    raise refusal_error(Refusal(code=code, message=message))


def local_day(instant: datetime) -> str:
    return instant.astimezone(COPENHAGEN).strftime("%Y-%m-%d")


def deadline_day(deadline_at: datetime) -> str:
    """The last open day of a deadline (the instant itself is the start of the next day)."""
    return local_day(deadline_at - timedelta(microseconds=1))


def local_minute(instant: datetime) -> str:
    return instant.astimezone(COPENHAGEN).strftime("%Y-%m-%d %H:%M")


def search_attribute_values(state: CaseState, *, policy_id: str | None = None) -> dict[str, Any]:
    """The search attributes a case state shows. Codes, statuses and instants only (they are stored in plain text)."""
    values: dict[str, Any] = {sa.CASE_STATUS.name: state.status.value}
    if state.kommune_kode:
        values[sa.KOMMUNE_KODE.name] = state.kommune_kode
    if state.case_type:
        values[sa.CASE_TYPE.name] = state.case_type.value
    task = state.open_task
    last = task or (max(state.tasks.values(), key=lambda t: t.requested_at) if state.tasks else None)
    policy = last.policy_id if last else policy_id
    if policy:
        values[sa.POLICY_VERSION.name] = policy
    values[sa.SLA_DUE_AT.name] = task.deadline_at if task else None
    values[sa.SLA_OVERDUE.name] = bool(task and task.overdue)
    return values


# Patch ids (workflow.patched). Running cases live for months, so what a workflow upserts only changes behind these.
# A task workflow (and a case, when it starts one) carries the task's own attributes, not its case's status.
TASK_OWN_SEARCH_ATTRIBUTES = "task-own-search-attributes"
# A task started by older code still ends with its final status and no SLA values (asked only at its end, so a
# task running when this was deployed takes it too).
TASK_FINAL_SEARCH_ATTRIBUTES = "task-final-search-attributes"
# The SLA loop looks again at the task after telling the case of an escalation: the kommune's final answer or the
# case's hand-back can land while that signal is under way, and an escalation fired then failed the task workflow
# ("cannot mark overdue: task ... is completed"), seen in the demo for tasks answered long after their deadline.
TASK_RECHECK_AFTER_PROGRESS = "task-recheck-after-progress"


def task_search_attribute_values(state: CaseState, task: TaskState, *, handed_back: bool = False) -> dict[str, Any]:
    """The search attributes of a task workflow: its own status, and SLA values only while it is open. A task the
    case took back reads `cancelled` (the case records the cancellation once it has the stream back)."""
    cancelled = handed_back and task.is_open
    is_open = task.is_open and not cancelled
    return {
        # Unset, not just absent: tasks started by older code were given their case's status.
        sa.CASE_STATUS.name: None,
        sa.TASK_STATUS.name: (TaskStatus.CANCELLED if cancelled else task.status).value,
        sa.KOMMUNE_KODE.name: task.kommune_kode,
        sa.CASE_TYPE.name: state.case_type.value if state.case_type else None,
        sa.POLICY_VERSION.name: task.policy_id,
        sa.SLA_DUE_AT.name: task.deadline_at if is_open else None,
        sa.SLA_OVERDUE.name: task.overdue and is_open,
    }


_KEYS = {key.name: key for key in sa.ALL}


def typed_search_attributes(values: dict[str, Any]) -> TypedSearchAttributes:
    pairs = [SearchAttributePair(_KEYS[name], v) for name, v in values.items() if v is not None]
    return TypedSearchAttributes(pairs)


def domain_decide(command: Command, state: CaseState, *, now: datetime, new_id: Callable[[], UUID]) -> list[Event]:
    """`domain.decide`, let out of the sandbox's restrictions: the calendar's holiday tables read their translation
    files through gettext/locale the first time a year is used. That is deterministic (same files, same answer),
    but the sandbox cannot know it."""
    with workflow.unsafe.sandbox_unrestricted():
        return decide(command, state, now=now, new_id=new_id)


class EventSourcedWorkflow:
    """Base of both workflows: the folded case state, the outbox, and idempotent answers."""

    state: CaseState
    answers: dict[str, Answer]

    def _init_stream(self, state: CaseState, answers: dict[str, Answer]) -> None:
        self.state = state
        self.answers = dict(answers)
        self._persisted_version = state.version
        self._outbox: list[Event] = []
        self._append_lock = asyncio.Lock()
        self._fatal: str | None = None
        self._held: str | None = None  # why the workflow stopped for operations
        self._base = state  # the state at the stream's version, while the outbox holds events
        self._offset = timedelta(seconds=state.business_clock_offset_seconds)
        self._published: dict[str, Any] | None = None
        self._details = ""

    # -- time --------------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Business time: what events record as occurred_at and what SLA instants are compared with."""
        return workflow.now() + self._offset

    def until(self, instant: datetime) -> timedelta:
        """Workflow time until a business instant (at least 1 ms: a zero timer is not a wait)."""
        return max(instant - self.now(), timedelta(milliseconds=1))

    # -- deciding and recording --------------------------------------------------------------------------------

    def refuse_if_busy(self) -> None:
        """For validators, first thing: refuse (as `busy`) an update that the SDK would replay in another order."""
        if activation_guard.emitted_earlier(self):
            refuse(BUSY, "the workflow is busy with other work; retry with the same idempotency key")

    def check(self, command: Command, state: CaseState | None = None) -> None:
        """For validators: would `command` be allowed now? Raises the refusal; changes nothing."""
        if self._held:
            refuse(NEEDS_OPERATIONS, self._held_message())
        try:
            domain_decide(command, state or self.state, now=self.now(), new_id=_validation_id)
        except DomainError as exc:
            raise refusal_error(Refusal(code=exc.code, message=str(exc))) from None

    def apply(self, command: Command) -> list[Event]:
        """Decide and fold at once (no await): the events are in the outbox until the next flush."""
        if self._fatal:
            refuse("unavailable", "the case is stopped: its event stream no longer matches (see workflow failure)")
        if self._held:
            raise NeedsOperations(self._held_message())
        events = domain_decide(command, self.state, now=self.now(), new_id=workflow.uuid4)
        if not self._outbox:
            self._base = self.state
        state = self.state
        for event in events:
            state = evolve(state, event)
        self.state = state
        self._outbox.extend(events)
        return events

    async def flush(self) -> None:
        async with self._append_lock:
            if self._fatal:
                raise ApplicationError(self._fatal, type="EventStreamDiverged", non_retryable=True)
            if self._held:
                raise NeedsOperations(self._held_message())
            if not self._outbox:
                return
            batch = tuple(self._outbox)
            try:
                # A regular activity, not a local one: its input (the events) is fixed in history before it runs. A
                # local activity runs inside the workflow task; if that task is lost after the write (worker crash,
                # task timeout under load), the retried task decides again at a new workflow.now(): the same event
                # ids with other occurred_at, which the event log rightly refuses as a conflict.
                await workflow.execute_activity(
                    APPEND_EVENTS,
                    AppendRequest(case_id=self.state.case_id, expected_version=self._persisted_version, events=batch),
                    result_type=AppendResult,
                    start_to_close_timeout=APPEND_TIMEOUT,
                    retry_policy=APPEND_RETRY,
                    summary=f"append {len(batch)} event(s) at version {self._persisted_version}",
                )
            except FailureError as exc:
                cause = exc.cause if isinstance(exc, ActivityError) else exc
                kind = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
                if kind == EVENT_DATA_REFUSED and workflow.patched(NEEDS_OPERATIONS_PATCH):
                    self._hold(f"the event log refused the events after version {self._persisted_version} as data")
                    raise NeedsOperations(self._held_message()) from exc
                self._fatal = f"the event log refused an append at version {self._persisted_version}: {kind}"
                raise ApplicationError(self._fatal, type="EventStreamDiverged", non_retryable=True) from exc
            self._persisted_version += len(batch)
            del self._outbox[: len(batch)]
            if self._outbox:
                # Events applied while this batch was on its way: the stream's state is the batch's, not theirs.
                self._base = fold(batch, self._base)

    def _hold(self, why: str) -> None:
        """Stop for operations: back to the stream's state (what the log and projections say), nothing pending."""
        self._held = why
        self.state = self._base
        self._outbox.clear()
        workflow.logger.error("stopped for operations: an append was refused as data", extra={"why": why})
        self._publish()

    def _held_message(self) -> str:
        return f"not recorded: {self._held}; the {self._what} waits for operations"

    @property
    def needs_operations(self) -> bool:
        return self._held is not None

    _what = "case"

    def _publish(self) -> None:
        raise NotImplementedError

    async def record(self, command: Command) -> list[Event]:
        events = self.apply(command)
        await self.flush()
        return events

    # -- idempotent answers ------------------------------------------------------------------------------------

    def known_answer(self, key: str, request: BaseModel) -> bool:
        """For validators: True if `key` was answered (or is being answered) for this very request; a reused key with
        other content is refused."""
        answer = self.answers.get(key)
        if answer is None:
            return False
        if answer.fingerprint != fingerprint(request):
            refuse("conflict", reused_key_message(key))
        return True

    def remember(
        self, key: str, request: BaseModel, result: BaseModel | None = None, refusal: Refusal | None = None
    ) -> None:
        self.answers[key] = Answer(
            fingerprint=fingerprint(request),
            result=result.model_dump(mode="json") if result is not None else None,
            refusal=refusal,
        )

    def replay_answer(self, key: str, result_type: type[M]) -> M:
        answer = self.answers[key]
        if answer.refusal is not None:
            raise refusal_error(answer.refusal)
        assert answer.result is not None
        return result_type.model_validate(answer.result)

    # -- what operations see -----------------------------------------------------------------------------------

    def publish(self, values: dict[str, Any], details: str) -> None:
        """Upsert the search attributes that changed, and say in words where things stand."""
        if self._held:
            values = {**values, sa.NEEDS_OPERATIONS.name: True}
            details = f"NEEDS OPERATIONS: {self._held}; nothing after that was recorded. {details}"
        if self._published is None:
            current = workflow.info().typed_search_attributes
            self._published = {pair.key.name: pair.value for pair in current}
        updates: list[SearchAttributeUpdate[Any]] = []
        for name, value in values.items():
            if self._published.get(name) == value:
                continue
            key = _KEYS[name]
            updates.append(key.value_unset() if value is None else key.value_set(value))
            self._published[name] = value
        if updates:
            workflow.upsert_search_attributes(updates)
        if details != self._details:
            workflow.set_current_details(details)
            self._details = details

    def continue_as_new_due(self, threshold: int | None) -> bool:
        info = workflow.info()
        if threshold is not None and info.get_current_history_length() >= threshold:
            return True
        # The time-skipping test server never suggests it; the threshold above is how tests get here.
        return info.is_continue_as_new_suggested()
