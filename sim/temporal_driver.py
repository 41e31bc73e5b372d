"""The simulator in Temporal time: arrivals, kommune systems and Seniorpension's caseworkers as coroutines on a
virtual business clock, next to the real workflows on the time-skipping test server.

Why not workflows of their own: the simulator's side of a case used to be a workflow per task calling updates
through an activity. That was a third of the history events and of the worker's CPU, for code that is not the
system under test. Here the simulator acts as the API does: one update call per kommune or caseworker action.

How the clock works (`VirtualClock`): a coroutine awaits `clock.at(instant)`. The driver moves the test server to
the earliest awaited instant (`env.sleep`; the server fires every workflow timer on the way), wakes every coroutine
due, and waits until each of them waits on the clock again (or has ended) before it moves on. While workflow or
activity work is in flight the server does not skip time, its clock runs at the speed of the wall clock, so every
event's `occurred_at` is the instant the model meant plus the seconds the work took. After a step that can bring new
parties (a case started, a task returned, a decision that may ask for more), the driver first lets the server run
everything the step set off (`QUIESCE`), so a new task's kommune has made its plan before the next instant is chosen.

- Arrivals: Poisson at the configured rate, each started as a real CaseWorkflow at its instant.
- Kommune systems: the task workflows deliver through the real `deliver_task` activity to this simulation's channel
  (`SimulatedWorld.deliver`); a new task gets the kommune's plan from the ONE behaviour model (`sim.behaviour`).
  Its actions run at half past the hour, as a system's job runs do: an hour's actions then run side by side instead
  of one random instant after another.
- Seniorpension: answers the kommune's questions, decides extension requests beyond the policy, and once the task
  is complete, makes the caseworker's decision after a drawn delay.

Everything draws from `rng_for(seed, ...)` in a fixed order, so the same seed gives the same run: a task's plan and
Seniorpension's draws follow from its case and its place among the case's tasks, never from the task id (the
workflow draws that at random per run).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.calendar import Duration, Unit, local_date
from domain.events import Channel, Party
from runtime.logs import get_logger
from sim.behaviour import (
    AskQuestionAction,
    KommuneProfile,
    PlannedAction,
    Regime,
    RequestExtensionAction,
    ReturnTaskAction,
    SimTask,
    SubmitPartAction,
    intake_factor,
    plan_kommune_response,
    profile_on,
    rng_for,
)
from sim.load import ApplicationFactory
from workflows.client import start_case
from workflows.common import BUSY
from workflows.models import (
    AnswerRequest,
    CaseInput,
    CaseUpdateResult,
    DecisionRequest,
    DeliveryReceipt,
    ExtensionDecision,
    ExtensionRequest,
    KommuneMessage,
    QuestionRequest,
    ReturnRequest,
    SubmitPartRequest,
    TaskUpdateResult,
    case_workflow_id,
    task_workflow_id,
)

log = get_logger(__name__)

WEEK = timedelta(days=7)
# How long the follow-up work of a step may take, in wall-clock time, before the driver picks the next instant: the
# server's clock runs at wall-clock speed while that work is in flight and skips the rest of the sleep at once when
# it is done. (A 1 ms sleep here returned before most new tasks were delivered, so a task whose kommune acted before
# the next instant the driver knew of acted up to days late.)
QUIESCE = timedelta(seconds=60)
STALL_WARNING_SECONDS = 60.0
RESYNC_EVERY = timedelta(days=7)
# Kommune systems act on the half hour, every hour. Not on the whole hour: the workflows' own timers (reminders,
# escalations) fire on whole hours, and an update landing in the same workflow task as a timer made the
# time-skipping server refuse the task's completion ("invalid history builder state for action"), which stalled
# the run for good.
GRID = timedelta(hours=1)
_EPOCH = datetime.fromisoformat("2000-01-01T00:30:00+00:00")

# Seniorpension's side (no source data on these; plausible figures, documented in the report's notes).
P_GRANTED = 0.65
P_SUPPLEMENTARY = 0.05
P_GRANT_EXTENSION = 0.8
CASEWORKER_MEDIAN_DAYS = 7.0
CASEWORKER_SIGMA = 0.6
DECIDE_RETRY_EVERY = timedelta(hours=1)
DECIDE_ATTEMPTS = 48
SUPPLEMENTARY_DOCUMENTS = ("supplerende helbredsoplysninger",)


def document_id(task_id: str, label: str) -> str:
    """A document id the API accepts (letters, digits, `._:-`) for a requested document's label, which is free text
    ("supplerende helbredsoplysninger"): a supplementary round's answer was refused, and ended the simulation."""
    return f"{task_id}:{re.sub(r'[^A-Za-z0-9._-]+', '-', label).strip('-') or 'dokument'}"


_ANSWER = "Ja, helbredsoplysninger fra egen læge skal indhentes; samtykke foreligger."

# A call the server could not take (busy, restarting) is tried again; a refusal is an answer, never an error.
CALL_ATTEMPTS = 5
TRANSIENT = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.DEADLINE_EXCEEDED)

UpdateName = Literal[
    "submit_part", "request_extension", "ask_question", "answer_question", "decide_extension", "return_task", "decide"
]
DecisionOutcome = Literal["granted", "rejected", "supplementary"]


def sim_case_id(seed: int, n: int) -> str:
    """Deterministic per (seed, n): a rerun creates the same cases, and a retried start finds its own."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sagsflow-sim:{seed}:{n}"))


def task_draws(case_id: str, ordinal: int) -> str:
    """The name of a task's random streams: the case's `ordinal`-th task (from 1) delivered to the simulation."""
    return f"{case_id}:{ordinal}"


def on_grid(instant: datetime) -> datetime:
    """The first half past the hour at or after `instant`."""
    return _EPOCH + math.ceil((instant - _EPOCH) / GRID) * GRID


class SimulationError(RuntimeError):
    """A simulated party failed in a way the model does not foresee (not a refusal): the run stops."""


class VirtualClock:
    """Business time for the simulator's coroutines; see the module docstring."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._due: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._busy = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self._followers = False
        self.max_late = timedelta()  # the most any coroutine woke after its instant (see `drive`)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._mark_busy()
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    async def at(self, instant: datetime) -> None:
        """Return once the clock has reached `instant` (at once if it already has)."""
        if instant <= self.now:
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._due, (instant, next(self._order), woken))
        self._mark_idle()
        await woken

    def next_instant(self) -> datetime | None:
        return self._due[0][0] if self._due else None

    def expect_followers(self) -> None:
        """What was just set off may bring new parties once the server has run it (a case started, a task
        returned or sent back for more information ends in a delivery): `drive` lets the server settle before it
        picks the next instant."""
        self._followers = True

    def take_followers(self) -> bool:
        followers, self._followers = self._followers, False
        return followers

    def advance(self, instant: datetime) -> None:
        """Move to `instant` and wake every coroutine due by then, in the order they asked."""
        self.now = max(self.now, instant)
        while self._due and self._due[0][0] <= self.now:
            due, _, woken = heapq.heappop(self._due)
            if not woken.cancelled():
                self.max_late = max(self.max_late, self.now - due)
                self._mark_busy()
                woken.set_result(None)

    async def settle(self) -> None:
        """Wait until every coroutine waits on the clock or has ended; raise the first failure."""
        while True:
            try:
                await asyncio.wait_for(self._quiet.wait(), STALL_WARNING_SECONDS)
                break
            except TimeoutError:
                # Calls are in flight for a long time: say so, so a stuck run is seen (the calls may still end).
                log.warning("simulation waiting on its parties' calls", busy=self._busy, at=self.now.isoformat())
        if self._errors:
            raise SimulationError("a simulated party failed") from self._errors[0]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _mark_busy(self) -> None:
        self._busy += 1
        self._quiet.clear()

    def _mark_idle(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._quiet.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._errors.append(task.exception())  # type: ignore[arg-type]
            self._quiet.set()  # settle() reports it now rather than after everyone else
        self._mark_idle()


class SimCallResult(BaseModel):
    ok: bool
    recorded: tuple[str, ...] = ()
    extension: Literal["granted", "pending", "refused"] | None = None
    refusal_code: str | None = None
    refusal: str | None = None


@dataclass
class DriverStats:
    tasks_received: int = 0
    notices: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Arrivals:
    seed: int
    start: datetime
    weeks: int
    rate_per_week: float
    shard: int = 0
    shards: int = 1
    regimes: tuple[Regime, ...] = ()


class SimulatedWorld:
    """The parties outside Sagsflow: citizens applying, 98 kommune systems, Seniorpension's caseworkers."""

    def __init__(
        self,
        client: Client,
        clock: VirtualClock,
        *,
        task_queue: str,
        profiles: dict[str, KommuneProfile],
        seed: int,
        offset_seconds: float,
        regimes: tuple[Regime, ...] = (),
    ) -> None:
        self.client = client
        self.clock = clock
        self.task_queue = task_queue
        self.profiles = profiles
        self.regimes = regimes
        self.seed = seed
        self.offset_seconds = offset_seconds
        self.factory = ApplicationFactory(seed)
        self.stats = DriverStats()
        self._tasks_seen: set[str] = set()
        self._tasks_per_case: Counter[str] = Counter()

    # -- citizens ------------------------------------------------------------------------------------------------

    async def arrivals(self, plan: Arrivals) -> None:
        """A Poisson process restarted at each week's start (still Poisson: memoryless), so weeks draw
        independently of each other. Application n belongs to shard n mod shards."""
        n = 1
        for week in range(plan.weeks):
            week_start = plan.start + week * WEEK
            rng = rng_for(plan.seed, "arrivals", str(week))
            # Intake regimes thin a process run at the week's highest rate (still Poisson, at each day's rate). A
            # week without regimes draws exactly as before them, so a seed's run does not change.
            first, last = local_date(week_start), local_date(week_start + WEEK - timedelta(seconds=1))
            days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
            peak = max(intake_factor(plan.regimes, day) for day in days)
            keep = rng_for(plan.seed, "arrivals-kept", str(week))
            mean_gap = WEEK.total_seconds() / (plan.rate_per_week * peak)
            at = week_start
            while True:
                at += timedelta(seconds=rng.expovariate(1.0 / mean_gap))
                if at >= week_start + WEEK:
                    break
                factor = intake_factor(plan.regimes, local_date(at))
                if factor != peak and keep.random() >= factor / peak:
                    continue
                n += 1
                if (n - 1) % plan.shards != plan.shard:
                    continue  # another shard's application: every shard draws the same process
                await self.clock.at(at)
                await self._apply(n - 1, at)

    async def _apply(self, n: int, at: datetime) -> None:
        generated = self.factory.generate(n, local_date(at))
        case_id = sim_case_id(self.seed, n)
        inp = CaseInput(
            case_id=case_id,
            subject_id=f"sim-{self.seed}-{n}",
            application=generated.application,
            business_clock_offset_seconds=self.offset_seconds,
        )
        # A rerun on the same log finds its own case already started: nothing to do.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start_case(self.client, inp, task_queue=self.task_queue)
        self.clock.expect_followers()  # its task's delivery

    # -- kommune systems -----------------------------------------------------------------------------------------

    async def deliver(self, message: KommuneMessage) -> DeliveryReceipt:
        """The simulation's kommune channel (the `deliver_task` activity calls it): a new task gets the kommune's
        plan; reminders and notices are only counted (the kommune's plan already runs to its own clock, as in
        `sim.behaviour`). A retried delivery starts nothing twice."""
        if message.kind != "task":
            self.stats.notices[message.notice or message.kind] += 1
        elif message.task_id not in self._tasks_seen:
            self._tasks_seen.add(message.task_id)
            self._tasks_per_case[message.case_id] += 1
            self.stats.tasks_received += 1
            received = max(self.clock.now, activity.info().started_time + timedelta(seconds=self.offset_seconds))
            draws = task_draws(message.case_id, self._tasks_per_case[message.case_id])
            self.clock.spawn(self.play_task(message, received=received, draws=draws))
        return DeliveryReceipt(channel=Channel.INBOX)

    async def play_task(self, message: KommuneMessage, *, received: datetime, draws: str) -> None:
        """One task from the kommune's side (its plan) and Seniorpension's (answers, extension decisions, the
        caseworker's decision once the task is complete). `draws` names the task's random streams."""
        task = SimTask(
            task_id=message.task_id,
            case_id=message.case_id,
            kommune_kode=message.kommune_kode,
            deadline_in=max((message.deadline_at or received) - received, timedelta()),
            requested_documents=message.requested_documents,
        )
        profile = profile_on(self.profiles[message.kommune_kode], self.regimes, local_date(received))
        plan = plan_kommune_response(task, profile, rng_for(self.seed, "plan", draws))
        # Seniorpension's draws, all up front and in a fixed order (see sim.behaviour).
        rng = rng_for(self.seed, "seniorpension", draws)
        answer_after = timedelta(days=rng.uniform(0.5, 3.0))
        extension_after = timedelta(days=rng.uniform(1.0, 3.0))
        grant_extension = rng.random() < P_GRANT_EXTENSION
        caseworker_after = timedelta(
            days=max(0.5, rng.lognormvariate(math.log(CASEWORKER_MEDIAN_DAYS), CASEWORKER_SIGMA))
        )
        u_outcome = rng.random()

        final_at = next((p.after for p in plan if isinstance(p.action, SubmitPartAction) and p.action.final), None)
        steps = [_Step(after=p.after, order=1, kind="kommune", index=i, action=p) for i, p in enumerate(plan)]
        completed = False
        while steps:
            steps.sort(key=lambda s: (s.after, s.order, s.index))
            step = steps.pop(0)
            await self.clock.at(on_grid(received + step.after))
            if step.kind == "answer_question":
                await self._task_call(task, "answer_question", AnswerRequest(question_id=step.ref, text=_ANSWER))
                continue
            if step.kind == "decide_extension":
                decision = ExtensionDecision(request_id=step.ref, grant=step.grant)
                await self._task_call(task, "decide_extension", decision)
                continue
            assert step.action is not None
            key = f"sim:{task.task_id}:{step.index}:{step.action.action.kind}"
            result = await self._kommune(task, step.action, key)
            action = step.action.action
            if isinstance(action, AskQuestionAction) and result.ok:
                # Answered before the kommune's final submission, which is refused while a question is open.
                at = step.after + answer_after
                if final_at is not None:
                    at = max(step.after, min(at, final_at))
                steps.append(_Step(after=at, order=0, kind="answer_question", ref=key))
            elif isinstance(action, RequestExtensionAction) and result.extension == "pending":
                steps.append(
                    _Step(
                        after=step.after + extension_after,
                        order=0,
                        kind="decide_extension",
                        ref=key,
                        grant=grant_extension,
                    )
                )
            elif isinstance(action, SubmitPartAction | ReturnTaskAction) and not result.ok:
                return  # the task no longer takes answers (closed, or the case was withdrawn or moved)
            elif isinstance(action, SubmitPartAction) and "OplysningCompleted" in result.recorded:
                completed = True
                break
            elif isinstance(action, ReturnTaskAction):
                return
        if completed:
            await self.clock.at(on_grid(self.clock.now + caseworker_after))
            await self._decide(task, u_outcome)

    async def _kommune(self, task: SimTask, planned: PlannedAction, key: str) -> SimCallResult:
        action = planned.action
        kode = task.kommune_kode
        if isinstance(action, SubmitPartAction):
            documents = tuple(document_id(task.task_id, doc) for doc in action.documents)
            request: BaseModel = SubmitPartRequest(
                kommune_kode=kode, submission_id=key, document_ids=documents, final=action.final
            )
            return await self._task_call(task, "submit_part", request)
        if isinstance(action, RequestExtensionAction):
            extend_by = Duration(quantity=action.extend_by_days, unit=Unit.DAYS)
            request = ExtensionRequest(kommune_kode=kode, request_id=key, extend_by=extend_by, reason=action.reason)
            return await self._task_call(task, "request_extension", request)
        if isinstance(action, AskQuestionAction):
            request = QuestionRequest(question_id=key, asked_by=Party.KOMMUNE, kommune_kode=kode, text=action.text)
            return await self._task_call(task, "ask_question", request)
        request = ReturnRequest(
            kommune_kode=kode, correct_kommune_kode=action.correct_kommune_kode, reason=action.reason, request_id=key
        )
        return await self._task_call(task, "return_task", request)

    # -- Seniorpension -------------------------------------------------------------------------------------------

    async def _decide(self, task: SimTask, u: float) -> None:
        outcome: DecisionOutcome = (
            "granted" if u < P_GRANTED else "supplementary" if u < P_GRANTED + P_SUPPLEMENTARY else "rejected"
        )
        request = DecisionRequest(
            request_id=f"sim:{task.task_id}",
            outcome=outcome,
            decided_by="sim-caseworker",
            reason_codes=("arbejdsevne",) if outcome == "rejected" else (),
            requested_documents=SUPPLEMENTARY_DOCUMENTS if outcome == "supplementary" else (),
        )
        for _ in range(DECIDE_ATTEMPTS):
            result = await self._call(case_workflow_id(task.case_id), "decide", request)
            # Refused while the case is still taking the finished task's stream back: the worklist tries again.
            if result.ok or "cannot decide: the case is" not in (result.refusal or ""):
                return
            await self.clock.at(on_grid(self.clock.now + DECIDE_RETRY_EVERY))

    # -- calls, as the API makes them -----------------------------------------------------------------------------

    async def _task_call(self, task: SimTask, update: UpdateName, request: BaseModel) -> SimCallResult:
        return await self._call(task_workflow_id(task.task_id), update, request)

    async def _call(self, workflow_id: str, update: UpdateName, request: BaseModel) -> SimCallResult:
        if update in ("return_task", "decide"):
            self.clock.expect_followers()  # a returned task is re-routed, a supplementary request opens a new task
        handle = self.client.get_workflow_handle(workflow_id)
        result_type: type[TaskUpdateResult | CaseUpdateResult] = (
            CaseUpdateResult if update == "decide" else TaskUpdateResult
        )
        for attempt in range(1, CALL_ATTEMPTS + 1):
            try:
                result = await handle.execute_update(update, request, result_type=result_type)
                break
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if not isinstance(cause, ApplicationError):
                    raise
                if cause.type == BUSY and attempt < CALL_ATTEMPTS:
                    await asyncio.sleep(0.02 * attempt)  # see workflows/activation_guard.py
                    continue
                # Refusal messages name rules and fields only (DomainError's contract), never personal data.
                return SimCallResult(ok=False, refusal_code=cause.type or "refused", refusal=cause.message)
            except RPCError as exc:
                if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    return SimCallResult(ok=False, refusal_code="gone", refusal="the workflow has closed")
                if exc.status not in TRANSIENT or attempt == CALL_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2 * attempt)
        if isinstance(result, TaskUpdateResult):
            return SimCallResult(ok=True, recorded=result.recorded, extension=result.extension)
        return SimCallResult(ok=True, recorded=result.recorded)


@dataclass(frozen=True)
class _Step:
    """One thing to do on the task at `after` (model time since the kommune received it)."""

    after: timedelta
    order: int  # ties: Seniorpension's answers before the kommune's next action
    kind: Literal["kommune", "answer_question", "decide_extension"]
    index: int = 0
    action: PlannedAction | None = None
    ref: str = ""
    grant: bool = False


async def drive(
    env: WorkflowEnvironment,
    clock: VirtualClock,
    *,
    offset: timedelta,
    end: datetime,
    progress: Callable[[datetime], None] | None = None,
) -> None:
    """Move the test server's clock from instant to instant until `end`; see the module docstring."""

    # Where the server's clock is, kept here rather than asked for at every step (a call to the server costs about
    # as much as a workflow task). The server's clock also runs in real time while work is in flight, so this falls
    # behind by the run's wall time: asking again every simulated week keeps that under a second.
    known = synced = await env.get_current_time() + offset

    async def sleep_until(instant: datetime) -> None:
        nonlocal known, synced
        if instant - synced >= RESYNC_EVERY:
            actual = await env.get_current_time() + offset
            clock.max_late = max(clock.max_late, actual - known)  # the drift: every action since was this late
            known = synced = actual
        gap = instant - known
        if gap > timedelta():
            await env.sleep(gap)
            known = instant

    followers = False
    while True:
        followers = clock.take_followers() or followers
        if followers:
            # Let everything the last instant set off run, including the deliveries that give the kommuner new tasks
            # to plan: only then is the next instant known. Never past an instant already known: a sleep cut short
            # is made up after that instant. (Other steps skip this: the next sleep runs their follow-up work.)
            known_next = clock.next_instant()
            quiet = QUIESCE if known_next is None else min(QUIESCE, known_next - known)
            if quiet > timedelta():
                await env.sleep(quiet)
                known += quiet
            followers = quiet < QUIESCE
        await clock.settle()
        instant = clock.next_instant()
        if instant is None or instant >= end:
            break
        await sleep_until(instant)
        clock.advance(instant)
        await clock.settle()
        if progress:
            progress(instant)
    # The workflows' own timers up to the end (reminders, escalations) still fire; nothing after it.
    await sleep_until(end)
    clock.advance(end)
    if progress:
        progress(end)
