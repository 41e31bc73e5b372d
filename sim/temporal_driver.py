"""The simulator in Temporal time: arrivals, kommuner and caseworkers as workflows next to the real ones.

- `ArrivalsWorkflow` ("SimArrivals"): one simulated week of applications, Poisson at the configured rate (seeded per
  week), each started as a real CaseWorkflow through the `start_sim_case` activity (the driver moves the clock).
- `KommuneSimWorkflow` ("SimKommune"): one per delivered task (started by the simulator's kommune channel when the
  task workflow delivers). It plans the kommune's response with the ONE behaviour model (`sim.behaviour`), carries it
  out with `workflow.sleep` between actions, and calls the task workflow's updates through the `sim_call` activity
  (a workflow cannot send an update to another one). Seniorpension's side of the same task is played here too:
  answering the kommune's questions, deciding extension requests beyond the policy, and once the task is complete,
  the caseworker's decision after a drawn delay.

Everything draws from `rng_for(seed, ..., task_id)` in a fixed order, so a run is reproducible given the seed: the
same arrivals, the same plans, the same decisions. Business time is `workflow.now()` + the run's offset, as in the
case workflows.

This module is re-imported by the workflow sandbox: it holds only workflow code and payload models.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.calendar import Duration, Unit
    from domain.events import Party
    from sim.behaviour import (
        AskQuestionAction,
        KommuneProfile,
        PlannedAction,
        RequestExtensionAction,
        ReturnTaskAction,
        SimTask,
        SubmitPartAction,
        plan_kommune_response,
        rng_for,
    )
    from workflows.models import (
        AnswerRequest,
        DecisionRequest,
        ExtensionDecision,
        ExtensionRequest,
        KommuneMessage,
        QuestionRequest,
        ReturnRequest,
        SubmitPartRequest,
        case_workflow_id,
        task_workflow_id,
    )

ARRIVALS_WORKFLOW = "SimArrivals"
KOMMUNE_WORKFLOW = "SimKommune"
START_SIM_CASE = "start_sim_case"
SIM_CALL = "sim_call"

WEEK = timedelta(days=7)
CALL_TIMEOUT = timedelta(seconds=60)
# A call that fails technically (the server is busy) is retried; a refusal is an answer, never an error.
CALL_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5))

# Seniorpension's side (no source data on these; plausible figures, documented in the report's notes).
P_GRANTED = 0.65
P_SUPPLEMENTARY = 0.05
P_GRANT_EXTENSION = 0.8
CASEWORKER_MEDIAN_DAYS = 7.0
CASEWORKER_SIGMA = 0.6
DECIDE_RETRY_EVERY = timedelta(hours=1)
DECIDE_ATTEMPTS = 48
SUPPLEMENTARY_DOCUMENTS = ("supplerende helbredsoplysninger",)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- arrivals --------------------------------------------------------------------------------------------------


class ArrivalWeek(_Frozen):
    seed: int
    week: int = Field(ge=0)
    week_start: datetime = Field(description="Business instant the week starts at")
    rate_per_week: float = Field(gt=0)
    first_n: int = Field(ge=1, description="Number of this week's first application (numbers run over the weeks)")
    offset_seconds: float


class StartSimCase(_Frozen):
    seed: int
    n: int
    arrived_at: datetime = Field(description="Business instant of the arrival")
    offset_seconds: float


class StartedSimCase(_Frozen):
    case_id: str
    archetype: str
    started: bool = Field(description="False if the case already existed (an activity retry)")


class ArrivalWeekResult(_Frozen):
    week: int
    arrivals: int
    next_n: int
    max_late_seconds: float = Field(
        default=0.0, description="How far behind its planned instant an arrival started (the clock ran ahead)"
    )


def sim_case_id(seed: int, n: int) -> str:
    """Deterministic per (seed, n): a rerun creates the same cases (and a retried start finds its own)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sagsflow-sim:{seed}:{n}"))


@workflow.defn(name=ARRIVALS_WORKFLOW)
class ArrivalsWorkflow:
    @workflow.run
    async def run(self, inp: ArrivalWeek) -> ArrivalWeekResult:
        offset = timedelta(seconds=inp.offset_seconds)
        end = inp.week_start + WEEK
        # A Poisson process restarted at each week's start is still Poisson (memoryless), and weeks stay independent
        # of each other's draws.
        rng = rng_for(inp.seed, "arrivals", str(inp.week))
        mean_gap = WEEK.total_seconds() / inp.rate_per_week
        at, n = inp.week_start, inp.first_n
        late = timedelta()
        while True:
            at += timedelta(seconds=rng.expovariate(1.0 / mean_gap))
            if at >= end:
                break
            await _sleep_until(at, offset)
            late = max(late, workflow.now() + offset - at)
            await workflow.execute_local_activity(
                START_SIM_CASE,
                StartSimCase(seed=inp.seed, n=n, arrived_at=at, offset_seconds=inp.offset_seconds),
                result_type=StartedSimCase,
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=CALL_RETRY,
            )
            n += 1
        return ArrivalWeekResult(
            week=inp.week, arrivals=n - inp.first_n, next_n=n, max_late_seconds=late.total_seconds()
        )


async def _sleep_until(instant: datetime, offset: timedelta) -> None:
    wait = instant - (workflow.now() + offset)
    if wait > timedelta():
        await workflow.sleep(wait)


# -- one task: the kommune and Seniorpension ---------------------------------------------------------------------

UpdateName = Literal[
    "submit_part", "request_extension", "ask_question", "answer_question", "decide_extension", "return_task", "decide"
]
CallRequest = (
    SubmitPartRequest | ExtensionRequest | QuestionRequest | AnswerRequest | ExtensionDecision | ReturnRequest
) | DecisionRequest


class SimCall(_Frozen):
    workflow_id: str
    update: UpdateName
    request: CallRequest


class SimCallResult(_Frozen):
    ok: bool
    recorded: tuple[str, ...] = ()
    extension: Literal["granted", "pending", "refused"] | None = None
    refusal_code: str | None = Field(default=None, description="'gone' when the workflow had already closed")
    refusal: str | None = None


class KommuneSimInput(_Frozen):
    delivery: KommuneMessage
    profile: KommuneProfile
    seed: int
    offset_seconds: float


class KommuneSimResult(_Frozen):
    task_id: str
    outcome: Literal["completed", "returned", "stopped"]
    actions: dict[str, int] = {}
    decision: Literal["granted", "rejected", "supplementary"] | None = None


class _Step(_Frozen):
    """One thing to do on the task at `after` (model time since the kommune received it)."""

    after: timedelta
    order: int = Field(description="Ties: Seniorpension's answers before the kommune's next action")
    kind: Literal["kommune", "answer_question", "decide_extension"]
    index: int = 0
    action: PlannedAction | None = None
    ref: str = ""
    grant: bool = False


@workflow.defn(name=KOMMUNE_WORKFLOW)
class KommuneSimWorkflow:
    def __init__(self) -> None:
        self.actions: dict[str, int] = {}

    @workflow.run
    async def run(self, inp: KommuneSimInput) -> KommuneSimResult:
        d = inp.delivery
        offset = timedelta(seconds=inp.offset_seconds)
        received = workflow.now()
        task = SimTask(
            task_id=d.task_id,
            case_id=d.case_id,
            kommune_kode=d.kommune_kode,
            deadline_in=max((d.deadline_at or received + offset) - (received + offset), timedelta()),
            requested_documents=d.requested_documents,
        )
        plan = plan_kommune_response(task, inp.profile, rng_for(inp.seed, "plan", d.task_id))
        # Seniorpension's draws, all up front and in a fixed order (see sim.behaviour).
        rng = rng_for(inp.seed, "seniorpension", d.task_id)
        answer_after = timedelta(days=rng.uniform(0.5, 3.0))
        extension_after = timedelta(days=rng.uniform(1.0, 3.0))
        grant_extension = rng.random() < P_GRANT_EXTENSION
        caseworker_after = timedelta(
            days=max(0.5, rng.lognormvariate(math.log(CASEWORKER_MEDIAN_DAYS), CASEWORKER_SIGMA))
        )
        u_outcome = rng.random()

        final_at = next((p.after for p in plan if isinstance(p.action, SubmitPartAction) and p.action.final), None)
        steps = [_Step(after=p.after, order=1, kind="kommune", index=i, action=p) for i, p in enumerate(plan)]
        outcome: Literal["completed", "returned", "stopped"] = "stopped"
        while steps:
            steps.sort(key=lambda s: (s.after, s.order, s.index))
            step = steps.pop(0)
            await _sleep_until(received + step.after, timedelta())
            if step.kind == "answer_question":
                await self._call(d.task_id, "answer_question", AnswerRequest(question_id=step.ref, text=_ANSWER))
                continue
            if step.kind == "decide_extension":
                await self._call(
                    d.task_id, "decide_extension", ExtensionDecision(request_id=step.ref, grant=step.grant)
                )
                continue
            assert step.action is not None
            key = f"sim:{d.task_id}:{step.index}:{step.action.action.kind}"
            result = await self._kommune(d, step.action, key)
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
                break  # the task no longer takes answers (closed, or the case was withdrawn or moved)
            elif isinstance(action, SubmitPartAction) and "OplysningCompleted" in result.recorded:
                outcome = "completed"
                break
            elif isinstance(action, ReturnTaskAction):
                outcome = "returned"
                break
        decision = None
        if outcome == "completed":
            await workflow.sleep(caseworker_after)
            decision = await self._decide(d, u_outcome)
        return KommuneSimResult(task_id=d.task_id, outcome=outcome, actions=self.actions, decision=decision)

    async def _kommune(self, d: KommuneMessage, planned: PlannedAction, key: str) -> SimCallResult:
        action = planned.action
        kode = d.kommune_kode
        if isinstance(action, SubmitPartAction):
            return await self._call(
                d.task_id,
                "submit_part",
                SubmitPartRequest(
                    kommune_kode=kode,
                    submission_id=key,
                    document_ids=tuple(f"{d.task_id}:{doc}" for doc in action.documents),
                    final=action.final,
                ),
            )
        if isinstance(action, RequestExtensionAction):
            return await self._call(
                d.task_id,
                "request_extension",
                ExtensionRequest(
                    kommune_kode=kode,
                    request_id=key,
                    extend_by=Duration(quantity=action.extend_by_days, unit=Unit.DAYS),
                    reason=action.reason,
                ),
            )
        if isinstance(action, AskQuestionAction):
            return await self._call(
                d.task_id,
                "ask_question",
                QuestionRequest(question_id=key, asked_by=Party.KOMMUNE, kommune_kode=kode, text=action.text),
            )
        return await self._call(
            d.task_id,
            "return_task",
            ReturnRequest(kommune_kode=kode, correct_kommune_kode=action.correct_kommune_kode, reason=action.reason),
        )

    async def _decide(self, d: KommuneMessage, u: float) -> Literal["granted", "rejected", "supplementary"]:
        outcome: Literal["granted", "rejected", "supplementary"] = (
            "granted" if u < P_GRANTED else "supplementary" if u < P_GRANTED + P_SUPPLEMENTARY else "rejected"
        )
        request = DecisionRequest(
            request_id=f"sim:{d.task_id}",
            outcome=outcome,
            decided_by="sim-caseworker",
            reason_codes=("arbejdsevne",) if outcome == "rejected" else (),
            requested_documents=SUPPLEMENTARY_DOCUMENTS if outcome == "supplementary" else (),
        )
        for _ in range(DECIDE_ATTEMPTS):
            result = await self._call_workflow(case_workflow_id(d.case_id), "decide", request)
            # Refused while the case is still taking the finished task's stream back: the worklist tries again.
            if result.ok or "cannot decide: the case is" not in (result.refusal or ""):
                break
            await workflow.sleep(DECIDE_RETRY_EVERY)
        return outcome

    async def _call(self, task_id: str, update: UpdateName, request: CallRequest) -> SimCallResult:
        return await self._call_workflow(task_workflow_id(task_id), update, request)

    async def _call_workflow(self, workflow_id: str, update: UpdateName, request: CallRequest) -> SimCallResult:
        # A regular activity, not a local one: a local activity keeps this workflow's task open while the update
        # waits for the other workflow, which stalled both until the workflow task heartbeat (seen at 8 s).
        result: SimCallResult = await workflow.execute_activity(
            SIM_CALL,
            SimCall(workflow_id=workflow_id, update=update, request=request),
            result_type=SimCallResult,
            start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=CALL_RETRY,
        )
        label = f"{update}:{'ok' if result.ok else result.refusal_code}"
        self.actions[label] = self.actions.get(label, 0) + 1
        return result


_ANSWER = "Ja, helbredsoplysninger fra egen læge skal indhentes; samtykke foreligger."
