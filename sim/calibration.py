"""A year of the case queue in pure Python, to check the behaviour model against the seed's figures.

The KL circular (March 2021): about 300 applications a week, and more than half of the open cases wait for
information from the kommuner. `simulate_queue` feeds Poisson arrivals spread by population through pre-screening,
the kommune (using `plan_kommune_response` itself, returns re-routed to the named kommune) and a caseworker's
decision, and reports the backlog week by week. It is a model of the model: no Temporal, no database; the real
thing is exercised by the simulation workflows of the reports.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from sim.behaviour import (
    KommuneProfile,
    ReturnTaskAction,
    SimTask,
    completion_after,
    plan_kommune_response,
    rng_for,
)
from sim.population import PopulationSampler

DEADLINE = timedelta(days=91)  # 3 months, as in the standard policy (calendar rolling ignored here)
MAX_REROUTES = 3


class QueueParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    rate_per_week: float = Field(default=300, gt=0)
    weeks: int = Field(default=52, ge=1)
    seed: int = 1
    p_formal_rejection: float = Field(default=0.07, ge=0, le=1)
    prescreen_days: float = Field(default=2.0, ge=0, description="Intake to the task reaching the kommune")
    formal_rejection_days: float = Field(default=7.0, ge=0, description="Intake to an explained formal rejection")
    decision_median_days: float = Field(default=21.0, gt=0, description="Kommune's answer to the decision")
    decision_sigma: float = Field(default=0.6, ge=0)


class BacklogPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: int
    received: int
    open_cases: int
    waiting_on_kommune: int
    ready_for_decision: int

    @property
    def share_waiting_on_kommune(self) -> float:
        return self.waiting_on_kommune / self.open_cases if self.open_cases else 0.0


class QueueResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    points: list[BacklogPoint]
    tasks: int
    late_tasks: int
    returned_tasks: int
    median_kommune_days: float

    @property
    def final(self) -> BacklogPoint:
        return self.points[-1]


class _Case:
    __slots__ = ("decided", "dispatched", "kommune_done", "received")

    def __init__(self, received: float, dispatched: float | None, kommune_done: float | None, decided: float) -> None:
        self.received = received
        self.dispatched = dispatched
        self.kommune_done = kommune_done
        self.decided = decided


def simulate_queue(params: QueueParams, profiles: Mapping[str, KommuneProfile]) -> QueueResult:
    sampler = PopulationSampler()
    arrivals = rng_for(params.seed, "arrivals")
    horizon = params.weeks * 7.0
    mean_gap = 7.0 / params.rate_per_week
    cases: list[_Case] = []
    kommune_days: list[float] = []
    tasks = late = returned = 0
    t = 0.0
    n = 0
    while True:
        t += arrivals.expovariate(1.0 / mean_gap)
        if t >= horizon:
            break
        n += 1
        rng = rng_for(params.seed, "case", str(n))
        kode = sampler.sample(rng)
        if rng.random() < params.p_formal_rejection:
            cases.append(_Case(t, None, None, t + params.formal_rejection_days))
            continue
        dispatched = t + params.prescreen_days
        at = dispatched
        for attempt in range(MAX_REROUTES + 1):
            task = SimTask(task_id=f"sim-{n}-{attempt}", case_id=f"sim-{n}", kommune_kode=kode, deadline_in=DEADLINE)
            plan = plan_kommune_response(task, profiles[kode], rng_for(params.seed, task.task_id))
            tasks += 1
            done = completion_after(plan)
            if done is not None or attempt == MAX_REROUTES:
                took = (done or plan[-1].after) / timedelta(days=1)
                late += took > DEADLINE / timedelta(days=1)
                at += took
                break
            returned += 1
            ret = plan[0]
            assert isinstance(ret.action, ReturnTaskAction)
            at += ret.after / timedelta(days=1)
            kode = ret.action.correct_kommune_kode
        kommune_days.append(at - dispatched)
        decision = rng.lognormvariate(math.log(params.decision_median_days), params.decision_sigma)
        cases.append(_Case(t, dispatched, at, at + decision))

    points = []
    for week in range(1, params.weeks + 1):
        day = week * 7
        received = open_ = waiting = ready = 0
        for c in cases:
            if c.received > day:
                continue
            received += 1
            if c.decided <= day:
                continue
            open_ += 1
            if c.dispatched is not None and c.kommune_done is not None:
                if c.dispatched <= day < c.kommune_done:
                    waiting += 1
                elif c.kommune_done <= day:
                    ready += 1
        points.append(
            BacklogPoint(
                day=day, received=received, open_cases=open_, waiting_on_kommune=waiting, ready_for_decision=ready
            )
        )
    return QueueResult(
        points=points,
        tasks=tasks,
        late_tasks=late,
        returned_tasks=returned,
        median_kommune_days=statistics.median(kommune_days) if kommune_days else 0.0,
    )
