"""CaseWorkflow: one application from receipt to closing, id "case-<case_id>" (our own uuid, never a CPR number).

    received → pre-screened → (formal rejection → explained decision → citizen notified → closed)
                            → OplysningTaskWorkflow child for the case's kommune → ready for decision
                            → caseworker: granted / rejected → citizen and kommune notified → closed
                                          or supplementary → a new task → ready for decision again
    at any point before the decision: withdrawal (open task cancelled, kommune told, citizen told, closed)
                                      or a move (open task cancelled, old kommune told, a new task to the new one)
    a task the kommune returns ("not our citizen") re-routes the case to the right kommune with a new task.

Who writes the event stream: see workflows/task.py. In short, the case writes while no task is open; while a task
is open the task workflow is the only writer; the case takes the stream back (signal `hand_back`, then the task's
result carries the folded state and version) before it records a withdrawal or move.

Case-level calls (`decide`, `withdraw`, `transfer`) are updates. The validator asks `domain.decide` on the current
state and refuses what is not allowed before it enters history. An accepted call is queued as an intent and carried
out by the workflow's main loop, which is the only place the case records events: so the case's own steps and the
calls never interleave. The same request id twice gets the first answer again (answers are kept, and returned in
the result for duplicates that come after the case closed).
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from domain.calendar import local_date
from domain.commands import (
    CloseCase,
    MakeDecision,
    NotifyCitizen,
    NotifyKommune,
    ReceiveApplication,
    RecordPreScreening,
    RejectFormally,
    RequestOplysning,
    TransferCase,
    Withdraw,
)
from domain.errors import DomainError
from domain.events import Outcome, RequestReason, Verdict
from domain.state import CaseState, CaseStatus

# Shared with the host instead of re-imported for every workflow run (pydantic model classes are costly to
# build): both modules are deterministic and hold no mutable state.
with workflow.unsafe.imports_passed_through():
    from workflows.common import (
        EXTERNAL_RETRY,
        EXTERNAL_TIMEOUT,
        FAILURE_TYPES,
        LOCAL_TIMEOUT,
        NEEDS_OPERATIONS,
        TASK_OWN_SEARCH_ATTRIBUTES,
        EventSourcedWorkflow,
        NeedsOperations,
        deadline_day,
        local_day,
        refuse,
        search_attribute_values,
        task_search_attribute_values,
        typed_search_attributes,
    )
    from workflows.models import (
        CASE_WORKFLOW,
        DELIVER_TASK,
        HAND_BACK_SIGNAL,
        NOTIFY_CITIZEN,
        PRESCREEN_APPLICATION,
        TASK_WORKFLOW,
        CaseCarry,
        CaseInput,
        CaseResult,
        CaseSummary,
        CaseUpdateResult,
        CitizenLetter,
        DecisionRequest,
        DeliveryReceipt,
        DigitalPostReceipt,
        HandBack,
        KommuneMessage,
        PrescreenRequest,
        PrescreenResult,
        Refusal,
        TaskBrief,
        TaskInput,
        TaskProgress,
        TaskResult,
        TransferRequest,
        WithdrawRequest,
        fingerprint,
        task_workflow_id,
    )

CaseRequest = DecisionRequest | WithdrawRequest | TransferRequest


@dataclass
class _Intent:
    key: str
    request: CaseRequest


@workflow.defn(name=CASE_WORKFLOW, failure_exception_types=FAILURE_TYPES)
class CaseWorkflow(EventSourcedWorkflow):
    @workflow.init
    def __init__(self, inp: CaseInput) -> None:
        carry = inp.carry
        self._init_stream(carry.state if carry else CaseState(), carry.answers if carry else {})
        self._offset = timedelta(seconds=inp.business_clock_offset_seconds)
        self._inp = inp
        self._intents: deque[_Intent] = deque()
        self._queued: dict[str, str] = {}  # idempotency key → request fingerprint, while queued or in progress
        self._notices: list[KommuneMessage] = []
        self._next: tuple[RequestReason, tuple[str, ...]] | None = None
        self._last_documents: tuple[str, ...] = ()
        self._child: ChildWorkflowHandle[Any, TaskResult] | None = None
        self._task_sla: TaskProgress | None = None
        self._sla_changed = False

    @workflow.run
    async def run(self, inp: CaseInput) -> CaseResult:
        if inp.carry is None:
            await self._receive(inp)
        while self.state.closed_at is None:
            if self.needs_operations:
                await self._wait_for_operations()
            try:
                await self._step(inp)
            except NeedsOperations:
                continue  # stopped for operations: the loop's first check takes over
        await self.flush()
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return CaseResult(
            case_id=self.state.case_id,
            status=self.state.status,
            outcome=self.state.outcome,
            version=self.state.version,
            answers=self.answers,
        )

    async def _step(self, inp: CaseInput) -> None:
        if self._child is not None:
            await self._await_task()
        elif self._intents:
            await self._carry_out(self._intents.popleft())
        elif self.state.outcome is not None or self.state.withdrawn:
            await self._close()
        elif self._notices:
            await self._send_notice(self._notices.pop(0))
        elif self._next is not None:
            reason, documents = self._next
            self._next = None
            await self._open_task(reason, documents)
        else:
            await self._idle(inp)

    async def _wait_for_operations(self) -> None:
        """Stopped: every call gets the refusal (validators refuse new ones), until operations reset or terminate
        the workflow. It never returns."""
        while True:
            while self._intents:
                intent = self._intents.popleft()
                refusal = Refusal(code=NEEDS_OPERATIONS, message=self._held_message())
                self.remember(intent.key, intent.request, refusal=refusal)
                self._queued.pop(intent.key, None)
            await workflow.wait_condition(lambda: bool(self._intents))

    async def _receive(self, inp: CaseInput) -> None:
        self.apply(
            ReceiveApplication(
                case_id=inp.case_id,
                subject_id=inp.subject_id,
                application=inp.application,
                business_clock_offset_seconds=inp.business_clock_offset_seconds,
            )
        )
        # An activity, not a call in workflow code: the result is fixed in history, so a later change to the rules
        # never changes the path of a case already screened (replay stays deterministic).
        screening = await workflow.execute_local_activity(
            PRESCREEN_APPLICATION,
            PrescreenRequest(case_id=inp.case_id, application=inp.application, on=local_date(self.now())),
            result_type=PrescreenResult,
            start_to_close_timeout=LOCAL_TIMEOUT,
            summary="pre-screening",
        )
        self.apply(RecordPreScreening(verdict=screening.verdict, rules=screening.rules, details=screening.details))
        if screening.verdict is Verdict.FORMAL_REJECTION:
            self.apply(RejectFormally(reason_codes=screening.reason_codes))
        else:
            self._next = (RequestReason.INITIAL, ())

    async def _idle(self, inp: CaseInput) -> None:
        """Nothing to do until a caseworker (or the citizen) calls."""
        await self.flush()
        self._publish()
        if self.continue_as_new_due(inp.continue_as_new_after):
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() or bool(self._intents))
            if not self._intents and workflow.all_handlers_finished():
                workflow.continue_as_new(
                    inp.model_copy(update={"carry": CaseCarry(state=self.state, answers=self.answers)})
                )
        await workflow.wait_condition(
            lambda: bool(self._intents) or self.continue_as_new_due(inp.continue_as_new_after)
        )

    # -- tasks ---------------------------------------------------------------------------------------------------

    async def _open_task(self, reason: RequestReason, documents: tuple[str, ...], by: str | None = None) -> str:
        task_id = str(workflow.uuid4())
        self.apply(
            RequestOplysning(
                task_id=task_id, reason=reason, policy_id=self._inp.policy_id, requested_documents=documents, by=by
            )
        )
        self._last_documents = documents
        await self.flush()  # the stream goes to the task at exactly this version
        task = self.state.tasks[task_id]
        # The task's own attributes from its first moment (older cases gave it theirs; the task corrects that).
        if workflow.patched(TASK_OWN_SEARCH_ATTRIBUTES):
            attributes = task_search_attribute_values(self.state, task)
        else:
            attributes = search_attribute_values(self.state)
        self._child = await workflow.start_child_workflow(
            TASK_WORKFLOW,  # by name: the task's module stays out of this workflow's sandbox (cheaper runs)
            TaskInput(
                case_id=self.state.case_id,
                task_id=task_id,
                state=self.state,
                requested_documents=documents,
                continue_as_new_after=self._inp.continue_as_new_after,
            ),
            id=task_workflow_id(task_id),
            result_type=TaskResult,
            search_attributes=typed_search_attributes(attributes),
            static_summary=f"Oplysning task ({reason.value}) for kommune {task.kommune_kode}",
            # The case takes a task back by hand-over, never by closing: if the case itself is terminated, the
            # task is asked to cancel rather than cut off.
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        self._task_sla = TaskProgress(task_id=task_id, deadline_at=task.deadline_at, overdue=False, escalations=0)
        self._publish()
        return task_id

    async def _await_task(self) -> None:
        child = self._child
        assert child is not None
        await workflow.wait_condition(lambda: child.done() or bool(self._intents) or self._sla_changed)
        if not child.done() and not self._intents:
            self._sla_changed = False
            self._publish()
            return
        if not child.done():
            # A withdrawal or move needs the stream: ask the task to hand it back, then wait for its result.
            first = self._intents[0].request
            why = "withdrawn" if isinstance(first, WithdrawRequest) else "transferred"
            # If it closed on its own meanwhile, the signal fails and its result is on the way anyway.
            with contextlib.suppress(FailureError):
                await workflow.get_external_workflow_handle(child.id).signal(HAND_BACK_SIGNAL, HandBack(reason=why))
        result = await child
        if self._outbox:
            raise AssertionError("the case must not record while a task owns the stream")
        self._child = None
        self._task_sla = None
        self._sla_changed = False
        self.state = result.state
        self._persisted_version = result.state.version
        if result.outcome == "returned":
            self._next = (RequestReason.REROUTED, self._last_documents)

    @workflow.signal(name="task_progress")
    def task_progress(self, progress: TaskProgress) -> None:
        if self._task_sla is not None and progress.task_id == self._task_sla.task_id:
            self._task_sla = progress
            self._sla_changed = True

    # -- notices and closing -------------------------------------------------------------------------------------

    async def _send_notice(self, notice: KommuneMessage) -> None:
        assert notice.notice is not None
        try:
            await workflow.execute_activity(
                DELIVER_TASK,
                notice,
                result_type=DeliveryReceipt,
                start_to_close_timeout=EXTERNAL_TIMEOUT,
                retry_policy=EXTERNAL_RETRY,
                summary=f"{notice.notice} notice to kommune {notice.kommune_kode}",
            )
        except ActivityError:
            # Recorded only when it went out; operations see the failed activity in the history.
            workflow.logger.warning("kommune notice gave up", extra={"notice": notice.notice})
            return
        self.apply(NotifyKommune(kommune_kode=notice.kommune_kode, notice=notice.notice, task_id=notice.task_id))

    async def _close(self) -> None:
        state = self.state
        if not state.citizen_notified:
            await self.flush()  # the Digital Post adapter reads the decision from the log
            kind = "withdrawal_confirmed" if state.withdrawn else "decision"
            receipt = await workflow.execute_activity(
                NOTIFY_CITIZEN,
                CitizenLetter(
                    message_id=f"{state.case_id}:{kind}",
                    case_id=state.case_id,
                    subject_id=state.subject_id or "",
                    kind=kind,
                    outcome=state.outcome,
                ),
                result_type=DigitalPostReceipt,
                start_to_close_timeout=EXTERNAL_TIMEOUT,
                retry_policy=EXTERNAL_RETRY,
                summary=f"Digital Post: {kind}",
            )
            self.apply(NotifyCitizen(message_id=receipt.message_id))
        # The citizen first: a kommune system that is down for a day must not delay the citizen's letter.
        while self._notices:
            await self._send_notice(self._notices.pop(0))
        decided_by_caseworker = self.state.outcome in (Outcome.GRANTED, Outcome.REJECTED)
        last = max(self.state.tasks.values(), key=lambda t: t.requested_at, default=None)
        if decided_by_caseworker and "decision" not in self.state.kommune_notified and last and self.state.kommune_kode:
            await self._send_notice(
                KommuneMessage(
                    task_id=last.task_id,
                    case_id=self.state.case_id,
                    kommune_kode=self.state.kommune_kode,
                    kind="notice",
                    notice="decision",
                )
            )
        self.apply(CloseCase())
        await self.flush()

    # -- case-level calls ---------------------------------------------------------------------------------------

    def _validate(self, name: str, key_id: str, request: CaseRequest) -> None:
        self.refuse_if_busy()
        key = f"{name}:{key_id}"
        if self.known_answer(key, request):
            return
        if key in self._queued:
            if self._queued[key] != fingerprint(request):
                refuse("conflict", f"idempotency key {key_id!r} was already used for another request")
            return
        match request:
            case DecisionRequest(outcome="supplementary"):
                if not self._can_request_supplementary():
                    refuse("conflict", f"cannot request supplementary information: the case is {self._status()}")
                self.check(
                    RequestOplysning(
                        task_id="validation",
                        reason=RequestReason.SUPPLEMENTARY,
                        policy_id=self._inp.policy_id,
                        requested_documents=request.requested_documents,
                    )
                )
            case DecisionRequest():
                self.check(self._decision(request))
            case WithdrawRequest():
                self.check(Withdraw(reason=request.reason, by=request.by))
            case TransferRequest():
                self.check(TransferCase(to_kommune_kode=request.to_kommune_kode, by=request.by))

    def _can_request_supplementary(self) -> bool:
        return self.state.status is CaseStatus.READY_FOR_DECISION and self._child is None and self._next is None

    @staticmethod
    def _decision(request: DecisionRequest) -> MakeDecision:
        return MakeDecision(
            outcome=Outcome.GRANTED if request.outcome == "granted" else Outcome.REJECTED,
            decided_by=request.decided_by,
            reason_codes=request.reason_codes,
            reasons=request.reasons,
        )

    async def _submit(self, name: str, key_id: str, request: CaseRequest) -> CaseUpdateResult:
        key = f"{name}:{key_id}"
        if key not in self.answers and key not in self._queued:
            self._queued[key] = fingerprint(request)
            self._intents.append(_Intent(key, request))
        await workflow.wait_condition(lambda: key in self.answers)
        return self.replay_answer(key, CaseUpdateResult)

    async def _carry_out(self, intent: _Intent) -> None:
        request = intent.request
        try:
            result = await self._execute(request)
        except DomainError as exc:
            # The state moved between validation and turn (e.g. a second call queued behind the first):
            # nothing was recorded; the caller gets the reason, and the same answer on a retry.
            self.remember(intent.key, request, refusal=Refusal(code=exc.code, message=str(exc)))
        except NeedsOperations as exc:
            # Its events were refused as data: not recorded; the caller is told so, as on a retry.
            self.remember(intent.key, request, refusal=Refusal(code=NEEDS_OPERATIONS, message=exc.message))
        else:
            self.remember(intent.key, request, result)
        finally:
            self._queued.pop(intent.key, None)

    async def _execute(self, request: BaseModel) -> CaseUpdateResult:
        before = self.state
        task_id: str | None = None
        match request:
            case DecisionRequest(outcome="supplementary"):
                if not self._can_request_supplementary():
                    raise DomainError(f"cannot request supplementary information: the case is {self._status()}")
                documents = request.requested_documents
                task_id = await self._open_task(RequestReason.SUPPLEMENTARY, documents, request.decided_by)
                events = ["OplysningRequested"]
            case DecisionRequest():
                events = [e.type for e in self.apply(self._decision(request))]
            case WithdrawRequest():
                events = [e.type for e in self.apply(Withdraw(reason=request.reason, by=request.by))]
                self._next = None
                if before.open_task is not None:
                    self._notices.append(self._task_notice(before, "withdrawn"))
            case TransferRequest():
                events = [
                    e.type for e in self.apply(TransferCase(to_kommune_kode=request.to_kommune_kode, by=request.by))
                ]
                if before.open_task is not None:
                    self._notices.append(self._task_notice(before, "task_closed"))
                    self._next = (RequestReason.TRANSFERRED, self._last_documents)
            case _:
                raise AssertionError(f"unknown request {type(request).__name__}")
        await self.flush()
        return CaseUpdateResult(recorded=tuple(events), task_id=task_id, case=self.summary())

    @staticmethod
    def _task_notice(before: CaseState, notice: Literal["withdrawn", "task_closed"]) -> KommuneMessage:
        task = before.open_task
        assert task is not None
        return KommuneMessage(
            task_id=task.task_id,
            case_id=before.case_id,
            kommune_kode=task.kommune_kode,
            kind="notice",
            notice=notice,
        )

    @workflow.update
    async def decide(self, request: DecisionRequest) -> CaseUpdateResult:
        """The caseworker's decision (granted / rejected, with reasons), or a request for supplementary
        information, which sends the case back to the kommune with a new task."""
        return await self._submit("decide", request.request_id, request)

    @decide.validator
    def _check_decide(self, request: DecisionRequest) -> None:
        self._validate("decide", request.request_id, request)

    @workflow.update
    async def withdraw(self, request: WithdrawRequest) -> CaseUpdateResult:
        return await self._submit("withdraw", request.request_id, request)

    @withdraw.validator
    def _check_withdraw(self, request: WithdrawRequest) -> None:
        self._validate("withdraw", request.request_id, request)

    @workflow.update
    async def transfer(self, request: TransferRequest) -> CaseUpdateResult:
        return await self._submit("transfer", request.request_id, request)

    @transfer.validator
    def _check_transfer(self, request: TransferRequest) -> None:
        self._validate("transfer", request.request_id, request)

    # -- operations' view ----------------------------------------------------------------------------------------

    def _status(self) -> str:
        return self.state.status.value

    def summary(self) -> CaseSummary:
        s = self.state
        briefs = []
        for t in s.tasks.values():
            deadline, overdue = t.deadline_at, t.overdue
            if self._task_sla is not None and self._task_sla.task_id == t.task_id:
                deadline, overdue = self._task_sla.deadline_at, self._task_sla.overdue
            briefs.append(
                TaskBrief(
                    task_id=t.task_id,
                    kommune_kode=t.kommune_kode,
                    reason=t.reason,
                    status=t.status,
                    deadline_at=deadline,
                    overdue=overdue,
                )
            )
        return CaseSummary(
            case_id=s.case_id,
            status=s.status,
            phase=f"Needs operations: {self._held}." if self._held else self._in_words(),
            needs_operations=self.needs_operations,
            case_type=s.case_type,
            kommune_kode=s.kommune_kode,
            verdict=s.verdict,
            outcome=s.outcome,
            open_task_id=s.open_task_id,
            tasks=tuple(briefs),
            received_at=s.received_at,
            decided_at=s.decided_at,
            closed_at=s.closed_at,
            version=s.version,
        )

    def _in_words(self) -> str:
        s = self.state
        if s.closed_at is not None:
            what = {
                CaseStatus.REJECTED_FORMAL: "formally rejected at pre-screening",
                CaseStatus.WITHDRAWN: "withdrawn by the citizen",
            }.get(s.status, f"decided: {s.outcome.value if s.outcome else '?'}")
            return f"Closed on {local_day(s.closed_at)}: {what}."
        if s.outcome is not None or s.withdrawn:
            return "Decided; notifying the citizen and the kommune." if s.outcome else "Withdrawn; closing."
        if self._child is not None and self._task_sla is not None:
            sla = self._task_sla
            overdue = f"; OVERDUE (escalation {sla.escalations})" if sla.overdue else ""
            return (
                f"Waiting for kommune {s.kommune_kode} (task {sla.task_id[:8]}); "
                f"deadline {deadline_day(sla.deadline_at)}{overdue}."
            )
        if s.status is CaseStatus.READY_FOR_DECISION:
            return "Ready for decision by a caseworker."
        if s.status is CaseStatus.RECEIVED:
            return "Received; pre-screening."
        return f"{s.status.value.replace('_', ' ').capitalize()}; sending a task to kommune {s.kommune_kode}."

    def _publish(self) -> None:
        # Called where the case settles (a task out, waiting for a caseworker, closed), not after every step:
        # each change of a search attribute costs the server a visibility write.
        values = search_attribute_values(self.state, policy_id=self._inp.policy_id)
        if self._child is not None and self._task_sla is not None:
            values["SlaDueAt"] = self._task_sla.deadline_at
            values["SlaOverdue"] = self._task_sla.overdue
        self.publish(values, self._in_words())

    @workflow.query
    def status(self) -> CaseSummary:
        return self.summary()
