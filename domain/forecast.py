"""The forum's view ahead: a Monte Carlo forecast of the backlog at a target date (issue #16).

Pure: the caller folds the event log as of a date into case states (`eventlog.forecast.ForecastStore`), `estimate`
turns them into `Parameters` and a `Snapshot`, and `forecast` simulates the open cases and new intake forward in
steps of a week (the last step ends at the target), many times over, with numpy generators seeded from the seed
(and the chunk of runs): the same seed gives the same forecast. No parameter comes from anywhere but the log (never
from the simulator's configuration).

The figures are the report's (eventlog/figures.py): open cases, cases waiting on a kommune (an oplysning task open),
the waiting share, overdue tasks (open past the deadline in force, as the SLA policy and the calendar set it) and
decisions in the period; each as the median and the 10th and 90th percentile over the runs.

Simplifications, said once: a case decided or withdrawn but not yet closed counts as closed; a formal rejection is
decided the week the case arrives; questions are estimated and shown but not simulated (their effect is in the
time-to-answer distribution they delay); a kommune that will miss a deadline gets one extension of the typical
length; withdrawals and moves are simulated at the constant weekly rates the log shows (none in a log without them).

Uncertainty: besides the draws of each run, each run draws its own intake rate and kommune speeds from how much
those drifted between four-week blocks of the log, so the intervals widen with a history that changes
(bench/forecast.py backtests their coverage on a simulated year with regime changes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from domain.calendar import Duration, Unit, is_closed, local_date, start_of_day
from domain.events import RequestReason, Verdict
from domain.kommuner import FORUM_KOMMUNER, is_kommune
from domain.sla import DEFAULT_POLICY_ID, POLICIES, SlaPolicy
from domain.state import CaseState, CaseStatus, TaskState, TaskStatus

WEEK = timedelta(weeks=1)
# Answer hazards are kept per week of a task's age up to this age; older tasks share the last bucket.
AGE_WEEKS = 27
# How far back behaviour is estimated from: recent enough to follow a change, long enough for small kommuner.
INTAKE_WINDOW = timedelta(weeks=8)
BEHAVIOUR_WINDOW = timedelta(weeks=26)
# A kommune's own answers count as much as this many task-weeks of the national pattern (per age bucket): a
# kommune with little exposure is pulled toward the nation, one with much speaks for itself.
SHRINK_TASK_WEEKS = 10.0
# The Samarbejdsforum meets in March, June, September and December; the 1st of those months is the meeting date.
FORUM_MONTHS = (3, 6, 9, 12)


def next_forum_meeting(after: datetime) -> datetime:
    """The start (Danish time) of the first forum meeting day after `after`."""
    day = local_date(after)
    year, month = day.year, day.month
    while True:
        month += 1
        if month > 12:
            year, month = year + 1, 1
        if month in FORUM_MONTHS:
            return start_of_day(date(year, month, 1))


# ---- parameters and the state to start from ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hazard:
    """Weekly probability that a kommune answers (or returns) a task in its k-th week of age, from the empirical
    hazard: answers in that week of age over the task-weeks at risk there (open tasks count as at risk, censored)."""

    by_age_week: tuple[float, ...]
    exposure_weeks: float = 0.0

    def at(self, age_weeks: int) -> float:
        if not self.by_age_week:
            return 0.0
        return self.by_age_week[min(max(age_weeks, 0), len(self.by_age_week) - 1)]

    def median_weeks(self) -> float | None:
        """Median weeks to answer for a new task under this hazard (None if fewer than half ever answer)."""
        survive = 1.0
        for k in range(AGE_WEEKS * 4):
            h = self.at(k)
            if survive * (1 - h) <= 0.5:
                return k + (survive - 0.5) / (survive * h) if h > 0 else float(k)
            survive *= 1 - h
        return None


@dataclass(frozen=True)
class Parameters:
    """Everything the simulation needs, estimated from the log as of `as_of` (see `estimate`)."""

    as_of: datetime
    intake_per_week: float
    kommune_shares: dict[str, float]  # where new cases arrive (sums to 1, or empty without intake)
    answer: dict[str, Hazard]  # per kommune, shrunk toward `national`
    national: Hazard
    return_share: float  # of the tasks a kommune closes, those it returns as "not our citizen"
    formal_rejection_share: float  # of pre-screened cases
    caseworker_weekly: float  # weekly probability a caseworker acts on a case ready for decision
    supplementary_share: float  # of those actions, a request for supplementary information (else a decision)
    extension_share: float  # of tasks, those whose deadline was extended
    extension_days: float  # the typical extension granted
    questions_per_task: float  # shown, not simulated
    policy_id: str  # the SLA policy new tasks get (the one most recently in force)
    # Of the tasks still open at their original deadline, those whose deadline was extended: a kommune asks when it
    # will be late, so the forecast extends a task that would otherwise turn overdue with this probability.
    late_extension_share: float = 0.0
    withdrawal_weekly: float = 0.0  # weekly probability an open case is withdrawn
    move_weekly: float = 0.0  # weekly probability an open task is cancelled because the citizen moved
    # Intake's seasonality, once the log holds a year: a factor per calendar month (empty: none) and one for days
    # the calendar has closed (weekends and Danish holidays), both relative to a working day of an average month.
    # `intake_per_week` is the recent weeks' rate; `intake_window_weight` is their mean day weight.
    intake_month_factors: tuple[float, ...] = ()
    intake_closed_day_factor: float = 1.0
    intake_window_weight: float = 1.0
    # How far the intake rate and the kommuner's answer speed have drifted between four-week blocks of the log
    # (standard deviation of the log-ratio of consecutive blocks, less what chance alone explains). Each run draws
    # its own intake and speeds from it, so the intervals carry the uncertainty of the rates, not only the draws.
    intake_drift: float = 0.0
    speed_drift: float = 0.0

    def intake_weight(self, day: date) -> float:
        """How many applications `day` brings, relative to a working day of an average month."""
        return Parameters.intake_weight_of(self.intake_month_factors, self.intake_closed_day_factor)(day)

    @staticmethod
    def intake_weight_of(months: tuple[float, ...], closed_factor: float) -> Callable[[date], float]:
        def weight(day: date) -> float:
            factor = months[day.month - 1] if months else 1.0
            return factor * (closed_factor if is_closed(day) else 1.0)

        return weight

    def expected_intake(self, start: datetime, end: datetime) -> float:
        """The expected number of applications between two instants: the recent rate, carried over the season
        and the holidays between them."""
        days = (end - start) / timedelta(days=1)
        if days <= 0:
            return 0.0
        if not self.intake_month_factors and self.intake_closed_day_factor == 1.0:
            return self.intake_per_week * days / 7
        first = local_date(start)
        count = max(1, math.ceil(days))
        mean = sum(self.intake_weight(first + timedelta(days=d)) for d in range(count)) / count
        return self.intake_per_week * days / 7 * mean / self.intake_window_weight

    @property
    def median_days_to_decision(self) -> float | None:
        if self.caseworker_weekly <= 0:
            return None
        return 7 * math.log(2) / -math.log(1 - min(self.caseworker_weekly, 0.999999))

    def as_dict(self) -> dict[str, object]:
        def weeks(h: Hazard) -> float | None:
            m = h.median_weeks()
            return None if m is None else round(m, 2)

        return {
            "as_of": self.as_of.isoformat(),
            "intake_per_week": round(self.intake_per_week, 2),
            "return_share": round(self.return_share, 4),
            "formal_rejection_share": round(self.formal_rejection_share, 4),
            "caseworker_weekly": round(self.caseworker_weekly, 4),
            "median_days_to_decision": _round(self.median_days_to_decision),
            "supplementary_share": round(self.supplementary_share, 4),
            "extension_share": round(self.extension_share, 4),
            "extension_days": round(self.extension_days, 1),
            "questions_per_task": round(self.questions_per_task, 3),
            "policy_id": self.policy_id,
            "late_extension_share": round(self.late_extension_share, 4),
            "withdrawal_weekly": round(self.withdrawal_weekly, 5),
            "move_weekly": round(self.move_weekly, 5),
            "intake_month_factors": list(self.intake_month_factors) or None,
            "intake_closed_day_factor": round(self.intake_closed_day_factor, 3),
            "intake_drift": round(self.intake_drift, 4),
            "speed_drift": round(self.speed_drift, 4),
            "national_median_weeks_to_answer": weeks(self.national),
            "median_weeks_to_answer": {k: weeks(h) for k, h in sorted(self.answer.items())},
        }


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


@dataclass(frozen=True)
class OpenCase:
    """A case open at the snapshot, as the simulation needs it. `task_*` is set while an oplysning task is open;
    `ready_since` while the case waits for a caseworker; neither when the case waits to be pre-screened or sent
    (`formal_rejection` then says what pre-screening found: None before it ran, when the share estimated applies)."""

    kommune_kode: str
    task_kommune: str | None = None
    task_requested_at: datetime | None = None
    task_deadline_at: datetime | None = None
    ready_since: datetime | None = None
    formal_rejection: bool | None = None
    task_extended: bool = False  # the open task's deadline was extended already


@dataclass(frozen=True)
class Snapshot:
    as_of: datetime
    cases: tuple[OpenCase, ...]


def _weeks(delta: timedelta) -> float:
    return delta / WEEK


def _in_effect(states: Iterable[CaseState], as_of: datetime) -> list[CaseState]:
    return [s for s in states if s.received_at is not None and s.received_at <= as_of]


def snapshot(states: Iterable[CaseState], as_of: datetime) -> Snapshot:
    """The open cases in states folded from every event stamped at or before `as_of`."""
    out: list[OpenCase] = []
    for s in _in_effect(states, as_of):
        if s.closed_at is not None or s.status in (
            CaseStatus.DECIDED,
            CaseStatus.REJECTED_FORMAL,
            CaseStatus.WITHDRAWN,
        ):
            continue
        assert s.kommune_kode is not None
        task = s.open_task
        if task is not None:
            out.append(
                OpenCase(
                    s.kommune_kode,
                    task.kommune_kode,
                    task.requested_at,
                    task.deadline_at,
                    task_extended=bool(task.extensions),
                )
            )
        elif s.status is CaseStatus.READY_FOR_DECISION:
            done = [t.closed_at for t in s.tasks.values() if t.status is TaskStatus.COMPLETED and t.closed_at]
            out.append(OpenCase(s.kommune_kode, ready_since=max(done) if done else s.last_event_at))
        elif s.status is CaseStatus.RECEIVED:
            out.append(OpenCase(s.kommune_kode))
        else:  # pre-screened, or between a returned task and the next kommune's
            formal = s.status is CaseStatus.PRESCREENED and s.verdict is Verdict.FORMAL_REJECTION
            out.append(OpenCase(s.kommune_kode, formal_rejection=formal))
    return Snapshot(as_of, tuple(sorted(out, key=lambda c: (c.kommune_kode, c.task_requested_at or as_of))))


# ---- estimating the parameters -----------------------------------------------------------------------------------


@dataclass
class _AgeCounts:
    events: list[float] = field(default_factory=lambda: [0.0] * AGE_WEEKS)
    exposure: list[float] = field(default_factory=lambda: [0.0] * AGE_WEEKS)

    def add(self, requested_at: datetime, ended_at: datetime, answered: bool, window_start: datetime) -> None:
        """One task at risk from `requested_at` to `ended_at`; only the part after `window_start` is counted."""
        age = _weeks(ended_at - requested_at)
        for k in range(min(int(age), AGE_WEEKS * 4) + 1):
            start = requested_at + k * WEEK
            if start >= ended_at:
                break
            bucket = min(k, AGE_WEEKS - 1)
            lo, hi = max(start, window_start), min(start + WEEK, ended_at)
            if hi > lo:
                self.exposure[bucket] += _weeks(hi - lo)
        if answered and ended_at > window_start:
            self.events[min(int(age), AGE_WEEKS - 1)] += 1

    @property
    def total_exposure(self) -> float:
        return sum(self.exposure)


def _national(counts: _AgeCounts) -> Hazard:
    rates: list[float] = []
    pooled = sum(counts.events) / counts.total_exposure if counts.total_exposure else 0.0
    for events, exposure in zip(counts.events, counts.exposure, strict=True):
        # An age no task of the window reached carries the rate of the last age some did (or the pooled one).
        rates.append(events / exposure if exposure > 0 else (rates[-1] if rates else pooled))
    return Hazard(tuple(1 - math.exp(-r) for r in rates), counts.total_exposure)


def _shrunk(counts: _AgeCounts, national: Hazard) -> Hazard:
    probs = []
    for k, (events, exposure) in enumerate(zip(counts.events, counts.exposure, strict=True)):
        national_rate = -math.log(max(1 - national.at(k), 1e-12))
        rate = (events + SHRINK_TASK_WEEKS * national_rate) / (exposure + SHRINK_TASK_WEEKS)
        probs.append(1 - math.exp(-rate))
    return Hazard(tuple(probs), counts.total_exposure)


def _share(part: float, whole: float, default: float = 0.0) -> float:
    return part / whole if whole > 0 else default


def estimate(states: Sequence[CaseState], as_of: datetime) -> Parameters:
    """Parameters from case states folded from every event stamped at or before `as_of` (nothing later: the caller
    guarantees it, `eventlog.forecast.ForecastStore.states_as_of`)."""
    states = _in_effect(states, as_of)
    first = min((s.received_at for s in states if s.received_at), default=as_of)
    window = max(as_of - BEHAVIOUR_WINDOW, first)

    # Intake: cases received in the last weeks the log covers, and where they arrived.
    intake_from = max(as_of - INTAKE_WINDOW, first)
    covered_weeks = max(_weeks(as_of - intake_from), 1 / 7)
    recent = [s for s in states if s.received_at and s.received_at >= intake_from]
    intake_per_week = len(recent) / covered_weeks if states else 0.0
    by_kommune: dict[str, float] = {}
    for s in states:
        if s.received_at and s.received_at > window and s.kommune_kode:
            kode = _receiving_kommune(s)
            by_kommune[kode] = by_kommune.get(kode, 0) + 1
    total = sum(by_kommune.values())
    shares = {k: v / total for k, v in sorted(by_kommune.items())} if total else {}

    # Kommune answers: every task at risk in the window, per kommune and nationally.
    national_counts = _AgeCounts()
    per_kommune: dict[str, _AgeCounts] = {}
    closed = returned = extended = tasks_seen = questions = 0
    extension_days: list[float] = []
    latest_policy: tuple[datetime, str] | None = None
    for s in states:
        for task in s.tasks.values():
            ended = task.closed_at or as_of
            if ended <= window:
                continue
            answered = task.status in (TaskStatus.COMPLETED, TaskStatus.RETURNED)
            for counts in (national_counts, per_kommune.setdefault(task.kommune_kode, _AgeCounts())):
                counts.add(task.requested_at, ended, answered, window)
            tasks_seen += 1
            questions += len(task.open_questions) + len(task.answered_questions)
            if answered:
                closed += 1
                returned += task.status is TaskStatus.RETURNED
            if task.extensions:
                extended += 1
                extension_days.append((task.deadline_at - task.original_deadline_at).total_seconds() / 86400)
            if latest_policy is None or task.requested_at > latest_policy[0]:
                latest_policy = (task.requested_at, task.policy_id)
    national = _national(national_counts)
    answer = {k: _shrunk(c, national) for k, c in sorted(per_kommune.items())}
    late_extension = _late_extension_share(states, window, as_of)
    withdrawal_weekly, move_weekly = _withdrawals_and_moves(states, window, as_of, national_counts.total_exposure)
    months, closed_factor, window_weight = _seasonality(states, first, intake_from, as_of)
    intake_drift, speed_drift = _drifts(states, first, as_of)

    # Caseworkers: time in "ready for decision", ended by a decision or by a request for supplementary information.
    ready_weeks = decisions = supplementary = 0.0
    prescreened = formal = 0
    for s in states:
        if s.verdict is not None and s.received_at and s.received_at > window:
            prescreened += 1
            formal += s.verdict is Verdict.FORMAL_REJECTION
        for start, end, ended_by in _ready_spells(s, as_of):
            lo = max(start, window)
            if end > lo:
                ready_weeks += _weeks(end - lo)
                if ended_by == "decision":
                    decisions += 1
                elif ended_by == "supplementary":
                    supplementary += 1
    acted = decisions + supplementary
    caseworker_weekly = 1 - math.exp(-acted / ready_weeks) if ready_weeks > 0 else 0.0

    return Parameters(
        as_of=as_of,
        intake_per_week=intake_per_week,
        kommune_shares=shares,
        answer=answer,
        national=national,
        return_share=_share(returned, closed),
        formal_rejection_share=_share(formal, prescreened),
        caseworker_weekly=caseworker_weekly,
        supplementary_share=_share(supplementary, acted),
        extension_share=_share(extended, tasks_seen),
        extension_days=sorted(extension_days)[len(extension_days) // 2] if extension_days else 0.0,
        questions_per_task=_share(questions, tasks_seen),
        policy_id=latest_policy[1] if latest_policy and latest_policy[1] in POLICIES else DEFAULT_POLICY_ID,
        late_extension_share=late_extension,
        withdrawal_weekly=withdrawal_weekly,
        move_weekly=move_weekly,
        intake_month_factors=months,
        intake_closed_day_factor=closed_factor,
        intake_window_weight=window_weight,
        intake_drift=intake_drift,
        speed_drift=speed_drift,
    )


def _late_extension_share(states: Sequence[CaseState], window: datetime, as_of: datetime) -> float:
    """Of the tasks whose original deadline fell in the window while they were still open, those extended. A
    kommune asks only when it will be late, so the share of all tasks (extension_share) understates it, and the
    more so the shorter the log (few tasks have reached a deadline yet)."""
    late = extended = 0
    for s in states:
        for task in s.tasks.values():
            deadline = task.original_deadline_at
            if not window < deadline <= as_of:
                continue
            if task.closed_at is None or task.closed_at > deadline or task.extensions:
                late += 1
                extended += bool(task.extensions)
    return _share(extended, late)


def _withdrawals_and_moves(
    states: Sequence[CaseState], window: datetime, as_of: datetime, task_weeks: float
) -> tuple[float, float]:
    """Weekly probabilities that an open case is withdrawn and that an open task is cancelled because its citizen
    moved (a cancelled task of a case not withdrawn), from the window's case-weeks and task-weeks."""
    case_weeks = 0.0
    withdrawn = moved = 0
    for s in states:
        assert s.received_at is not None
        cancelled = [t.closed_at for t in s.tasks.values() if t.status is TaskStatus.CANCELLED and t.closed_at]
        ended = s.decided_at or s.closed_at or as_of
        if s.withdrawn:
            ended = max(cancelled, default=s.closed_at or s.last_event_at or as_of)
            withdrawn += window < ended <= as_of
        else:
            moved += sum(1 for at in cancelled if window < at <= as_of)
        lo = max(s.received_at, window)
        if ended > lo:
            case_weeks += _weeks(ended - lo)
    withdrawal_rate = withdrawn / case_weeks if case_weeks > 0 else 0.0
    move_rate = moved / task_weeks if task_weeks > 0 else 0.0
    return 1 - math.exp(-withdrawal_rate), 1 - math.exp(-move_rate)


DRIFT_BLOCK = timedelta(weeks=4)
DRIFT_BLOCKS = 13  # a year of blocks at most


def _drift(counts: list[float], exposures: list[float]) -> float:
    """The standard deviation of log(rate) from one block to the next, less the Poisson noise of the counts."""
    pairs = [
        (c1 / e1, c2 / e2, 1 / c1 + 1 / c2)
        for c1, e1, c2, e2 in zip(counts, exposures, counts[1:], exposures[1:], strict=False)
        if c1 > 0 and c2 > 0 and e1 > 0 and e2 > 0
    ]
    if len(pairs) < 2:
        return 0.0
    diffs = [math.log(r2 / r1) for r1, r2, _ in pairs]
    mean = sum(diffs) / len(diffs)
    variance = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) + mean**2
    noise = sum(n for _, _, n in pairs) / len(pairs)
    return math.sqrt(max(variance - noise, 0.0))


def _drifts(states: Sequence[CaseState], first: datetime, as_of: datetime) -> tuple[float, float]:
    """Drift of the intake rate and of the national answer rate (answers per task-week at risk) between
    consecutive four-week blocks before `as_of` (see Parameters.intake_drift)."""
    blocks = min(DRIFT_BLOCKS, int((as_of - first) / DRIFT_BLOCK))
    if blocks < 3:
        return 0.0, 0.0
    start = as_of - blocks * DRIFT_BLOCK
    intake = [0.0] * blocks
    answers = [0.0] * blocks
    at_risk = [0.0] * blocks
    for s in states:
        if s.received_at is not None and s.received_at > start:
            intake[min(int((s.received_at - start) / DRIFT_BLOCK), blocks - 1)] += 1
        for task in s.tasks.values():
            ended = task.closed_at or as_of
            if ended <= start:
                continue
            if task.closed_at is not None and task.status in (TaskStatus.COMPLETED, TaskStatus.RETURNED):
                answers[min(int((ended - start) / DRIFT_BLOCK), blocks - 1)] += 1
            lo = max(task.requested_at, start)
            b = int((lo - start) / DRIFT_BLOCK)
            while b < blocks and lo < ended:
                hi = min(start + (b + 1) * DRIFT_BLOCK, ended)
                at_risk[b] += _weeks(hi - lo)
                lo, b = hi, b + 1
    return _drift(intake, [1.0] * blocks), _drift(answers, at_risk)


# Seasonality needs a whole year behind the forecast: each calendar month seen once, and the holidays.
SEASON = timedelta(days=364)


def _seasonality(
    states: Sequence[CaseState], first: datetime, intake_from: datetime, as_of: datetime
) -> tuple[tuple[float, ...], float, float]:
    """Intake's month factors and closed-day factor from the last year (none before the log holds one), and the
    mean day weight of the intake window they imply."""
    if as_of - first < SEASON:
        return (), 1.0, 1.0
    begin = local_date(as_of - SEASON)
    end = local_date(as_of)  # the days before as_of's own (partial) day
    per_day: dict[date, int] = {}
    for s in states:
        if s.received_at is not None:
            day = local_date(s.received_at)
            if begin <= day < end:
                per_day[day] = per_day.get(day, 0) + 1
    days = [begin + timedelta(days=d) for d in range((end - begin).days)]
    closed = [d for d in days if is_closed(d)]
    open_days = [d for d in days if not is_closed(d)]
    if not closed or not open_days:
        return (), 1.0, 1.0
    open_rate = sum(per_day.get(d, 0) for d in open_days) / len(open_days)
    if open_rate <= 0:
        return (), 1.0, 1.0
    closed_factor = sum(per_day.get(d, 0) for d in closed) / len(closed) / open_rate
    # Per month: applications over the working-day equivalents of its days, relative to the year's.
    count = [0.0] * 12
    weight = [0.0] * 12
    for d in days:
        count[d.month - 1] += per_day.get(d, 0)
        weight[d.month - 1] += closed_factor if is_closed(d) else 1.0
    year_rate = sum(count) / sum(weight)
    months = tuple(round((c / w) / year_rate, 4) if w > 0 else 1.0 for c, w in zip(count, weight, strict=True))
    seasonal = Parameters.intake_weight_of(months, closed_factor)
    window = [local_date(intake_from) + timedelta(days=d) for d in range(max(1, (as_of - intake_from).days))]
    window_weight = sum(seasonal(d) for d in window) / len(window)
    return months, closed_factor, window_weight


def _receiving_kommune(s: CaseState) -> str:
    """Where the application arrived: a case returned or moved since then has another kommune now, but new cases
    arrive where applications do (the first task went there)."""
    first = min(s.tasks.values(), key=lambda t: t.requested_at, default=None)
    kode = first.kommune_kode if first is not None else s.kommune_kode
    assert kode is not None
    return kode


def _ready_spells(s: CaseState, as_of: datetime) -> list[tuple[datetime, datetime, str]]:
    """Each time the case waited for a caseworker after a kommune's answer: (from, until, what ended it: "decision",
    "supplementary", or "" while it still waits or was withdrawn)."""
    tasks = sorted(s.tasks.values(), key=lambda t: t.requested_at)
    spells = []
    for i, task in enumerate(tasks):
        if task.status is not TaskStatus.COMPLETED or task.closed_at is None:
            continue
        following: TaskState | None = tasks[i + 1] if i + 1 < len(tasks) else None
        if following is not None:
            ended_by = "supplementary" if following.reason is RequestReason.SUPPLEMENTARY else ""
            spells.append((task.closed_at, following.requested_at, ended_by))
        elif s.decided_at is not None:
            spells.append((task.closed_at, s.decided_at, "decision"))
        else:
            spells.append((task.closed_at, s.last_event_at if s.withdrawn and s.last_event_at else as_of, ""))
    return spells


# ---- what-if ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """A change to the estimated behaviour: intake scaled, kommuner answering faster or slower (speed 1.5 = in two
    thirds of the time), caseworkers deciding with a share of their capacity."""

    intake: float = 1.0
    speed: tuple[tuple[str, float], ...] = ()
    decision_capacity: float = 1.0

    @property
    def label(self) -> str:
        parts = []
        if self.intake != 1.0:
            parts.append(f"intake={self.intake:g}")
        parts += [f"kommune={k}:speed={v:g}" for k, v in self.speed]
        if self.decision_capacity != 1.0:
            parts.append(f"decision-capacity={self.decision_capacity:g}")
        return ", ".join(parts) or "baseline"

    def speed_of(self, kommune_kode: str) -> float:
        return dict(self.speed).get(kommune_kode, 1.0)


BASELINE = WhatIf()


def parse_what_if(texts: Sequence[str]) -> WhatIf:
    """`intake=1.3`, `kommune=329:speed=1.5`, `decision-capacity=0.8`, combined into one scenario."""
    intake, capacity, speed = 1.0, 1.0, dict[str, float]()
    for text in texts:
        key, _, value = text.partition("=")
        try:
            if key == "intake":
                intake = _positive(value)
            elif key == "decision-capacity":
                capacity = _positive(value)
            elif key == "kommune":
                kode, _, rest = value.partition(":")
                name, _, factor = rest.partition("=")
                if not kode.isascii() or not kode.isdigit() or not is_kommune(kode) or name != "speed":
                    raise ValueError
                speed[kode] = _positive(factor)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"{text!r}: expected intake=1.3, kommune=329:speed=1.5 or decision-capacity=0.8") from None
    return WhatIf(intake, tuple(sorted(speed.items())), capacity)


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


# ---- the simulation -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """The median and the 80 % interval (10th and 90th percentile, nearest rank) over the runs."""

    p10: float
    median: float
    p90: float

    def as_dict(self) -> dict[str, float]:
        return {"p10": self.p10, "median": self.median, "p90": self.p90}


def band(values: Sequence[float]) -> Band:
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[max(1, math.ceil(q * n)) - 1]

    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return Band(rank(0.1), round(median, 4), rank(0.9))


FIGURES = ("open_cases", "waiting", "waiting_share", "overdue", "decisions")


@dataclass(frozen=True)
class Figures:
    """One place's forecast at the target (or the end of a week): each figure as a band."""

    open_cases: Band
    waiting: Band
    waiting_share: Band
    overdue: Band
    decisions: Band  # from the forecast's start to this point

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {name: getattr(self, name).as_dict() for name in FIGURES}


@dataclass(frozen=True)
class Forecast:
    as_of: datetime
    to: datetime
    runs: int
    seed: int
    what_if: WhatIf
    total: Figures
    kommuner: dict[str, Figures]
    path: list[tuple[datetime, Figures]]  # at the end of each week (the last ends at `to`)
    start: dict[str, float]  # the figures at `as_of` (no uncertainty)

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.what_if.label,
            "as_of": self.as_of.isoformat(),
            "to": self.to.isoformat(),
            "runs": self.runs,
            "seed": self.seed,
            "start": self.start,
            "total": self.total.as_dict(),
            "kommuner": {k: f.as_dict() for k, f in sorted(self.kommuner.items())},
            "path": [{"at": at.isoformat(), **f.as_dict()} for at, f in self.path],
        }


IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
# Runs are simulated this many at a time (arrays of every case in every run of the chunk); each chunk has its own
# generator seeded from (seed, chunk index).
CHUNK_RUNS = 20


@dataclass
class _Spells:
    """Cases of a chunk's runs in the same phase (waiting on a kommune, or for a caseworker), one element each: the
    run, the case's kommune, the kommune its task waits on, the step at whose end the task was requested (-1: open
    at the snapshot), the first step it may end in, its age in weeks then, its deadline (weeks from the snapshot),
    whether it was extended, the step the case arrived in and the step it is withdrawn in (n_steps: never)."""

    run: IntArray
    kommune: IntArray
    task: IntArray
    requested: IntArray
    first: IntArray
    age: IntArray
    deadline: FloatArray
    extended: BoolArray
    arrived: IntArray
    gone: IntArray

    def __len__(self) -> int:
        return len(self.run)

    def where(self, mask: BoolArray) -> _Spells:
        return _Spells(*(getattr(self, f.name)[mask] for f in fields(self)))

    @staticmethod
    def concat(parts: Sequence[_Spells]) -> _Spells:
        return _Spells(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Spells)))


class _Counts:
    """A chunk's tallies, kept as index arrays and counted once at the end: per run and step the changes of the
    figures at each step's end (+1 where a spell begins to count, -1 where it stops), per run and place the
    figures at the target."""

    def __init__(self, n_runs: int, n_steps: int, n_places: int) -> None:
        self.n_runs, self.width, self.n_places = n_runs, n_steps + 1, n_places
        self.parts: dict[str, list[IntArray]] = {}

    def _add(self, key: str, cells: IntArray) -> None:
        self.parts.setdefault(key, []).append(cells)

    def _span(self, name: str, run: IntArray, begins: IntArray, ends: IntArray) -> None:
        self._add(name + "+", run * self.width + begins)
        self._add(name + "-", run * self.width + ends)

    def waiting(self, run: IntArray, begins: IntArray, ends: IntArray) -> None:
        self._span("waiting", run, begins, ends)

    def overdue(self, run: IntArray, begins: IntArray, ends: IntArray) -> None:
        self._span("overdue", run, begins, ends)

    def finish(self, run: IntArray, arrived: IntArray, gone: IntArray) -> None:
        self._span("open", run, arrived, gone)

    def decide(self, run: IntArray, kommune: IntArray, step: IntArray) -> None:
        self._add("decisions+", run * self.width + step)
        self._add("decisions@", run * self.n_places + kommune)

    def open_at_target(self, run: IntArray, kommune: IntArray, *, waiting: bool) -> None:
        self._add("open@", run * self.n_places + kommune)
        if waiting:
            self._add("waiting@", run * self.n_places + kommune)

    def overdue_at_target(self, run: IntArray, task: IntArray) -> None:
        self._add("overdue@", run * self.n_places + task)

    def _count(self, key: str, size: int) -> IntArray:
        cells = self.parts.get(key)
        if not cells:
            return np.zeros(size, dtype=np.int64)
        return np.bincount(np.concatenate(cells), minlength=size).astype(np.int64)

    def path(self, name: str) -> IntArray:
        """The figure at each step's end, per run."""
        size = self.n_runs * self.width
        change = self._count(name + "+", size) - self._count(name + "-", size)
        return change.reshape(self.n_runs, self.width).cumsum(axis=1)[:, :-1]

    def at_target(self, name: str) -> IntArray:
        return self._count(name + "@", self.n_runs * self.n_places).reshape(self.n_runs, self.n_places)


def _scaled(p: float, factor: float) -> float:
    """The probability of an event with weekly probability `p` over `factor` weeks (or at `factor` times the
    speed): a constant hazard scaled in time."""
    if p >= 1:
        return 1.0
    return 1 - math.pow(1 - p, factor)


def _steps(as_of: datetime, to: datetime) -> list[tuple[datetime, float]]:
    ends, t = [], as_of
    while t < to:
        t = min(t + WEEK, to)
        ends.append(t)
    out, previous = [], as_of
    for end in ends:
        out.append((end, _weeks(end - previous)))
        previous = end
    return out


def _deadline(policy: SlaPolicy, requested_at: datetime, extension_days: float) -> datetime:
    deadline = policy.deadline(requested_at)
    if extension_days > 0 and not policy.in_seconds:
        deadline = policy.extend(deadline, Duration(quantity=round(extension_days), unit=Unit.DAYS))
    elif extension_days > 0:
        deadline += timedelta(days=extension_days)
    return deadline


def forecast(
    snap: Snapshot,
    params: Parameters,
    to: datetime,
    *,
    runs: int = 1000,
    seed: int = 1,
    what_if: WhatIf = BASELINE,
) -> Forecast:
    """Simulate `runs` futures from the snapshot to `to` and summarise each figure as a band.

    The model moves in steps of a week (the last ends at `to`): a kommune answers a task in a step with the
    probability its hazard gives for the task's age in weeks, a caseworker acts on a ready case with the weekly
    probability, an answer or decision takes effect at the step's end. Rather than a draw per case and step, each
    waiting spell's length is drawn once, from the cumulative hazard (one exponential draw, one search), and the
    figures at each step's end are counted from the spells. The cases of a chunk of runs move together as arrays,
    phase by phase (waiting on a kommune, waiting for a caseworker) until every one has ended or reached the target:
    profiled, the per-case Python loop this replaces took 13 s for 1,000 runs over 1,500 open cases."""
    if to <= snap.as_of:
        raise ValueError("the target date must lie after the forecast's starting point")
    if runs < 1:
        raise ValueError("runs must be at least 1")
    steps = _steps(snap.as_of, to)
    n_steps = len(steps)
    last = n_steps - 1
    # Only the last step can be shorter than a week; its hazards are scaled to its length.
    last_weeks = steps[-1][1]
    whole_last = abs(last_weeks - 1.0) < 1e-9
    whole_end = n_steps if whole_last else last  # steps j < whole_end are whole weeks
    ends = np.array([_weeks(end - snap.as_of) for end, _ in steps])
    target_weeks = float(ends[-1])
    policy = POLICIES[params.policy_id]
    # Deadlines of tasks the simulation requests at each step's end: the calendar arithmetic is done once here.
    new_deadline = np.array([_weeks(_deadline(policy, end, 0) - snap.as_of) for end, _ in steps])
    extension_weeks = params.extension_days / 7
    late_extension = params.late_extension_share
    kommuner = sorted(params.kommune_shares)
    places = sorted(
        {c.kommune_kode for c in snap.cases}
        | set(kommuner)
        | set(FORUM_KOMMUNER)
        | {c.task_kommune for c in snap.cases if c.task_kommune}
    )
    index = {k: i for i, k in enumerate(places)}
    n_places = len(places)
    intake_rows = np.array([index[k] for k in kommuner], dtype=np.int64)
    intake_cumulative = np.cumsum([params.kommune_shares[k] for k in kommuner])
    intake_total = float(intake_cumulative[-1]) if kommuner else 0.0
    # One row per place, then three of constant hazards: each row is the cumulative hazard by age in weeks (row[a]
    # sums the weekly hazards of ages 0..a-1, at the what-if speed). Past the last age bucket the hazard is
    # constant, so a task older than that is placed at the last bucket (the increments ahead of it are the same).
    caseworker_row, withdrawal_row, move_row = n_places, n_places + 1, n_places + 2
    length = AGE_WEEKS + n_steps + 2
    table = np.zeros((n_places + 3, length))
    for row, k in enumerate(places):
        h = params.answer.get(k, params.national)
        speed = what_if.speed_of(k)
        table[row, 1:] = np.cumsum([_rate(h.at(a)) * speed for a in range(length - 1)])
    constant_rates = (
        _rate(_scaled(params.caseworker_weekly, what_if.decision_capacity)),
        _rate(params.withdrawal_weekly),
        _rate(params.move_weekly),
    )
    for row, lam in zip((caseworker_row, withdrawal_row, move_row), constant_rates, strict=True):
        table[row] = lam * np.arange(length)
    withdrawals = params.withdrawal_weekly > 0
    moves = params.move_weekly > 0 and bool(kommuner)
    # All rows laid end to end, each lifted above the one before, form one ascending array: a single searchsorted
    # finds every spell's end, whatever its row. A target past its row's top is clipped (it ends after the table).
    top = float(table.max()) + 1.0
    stride = top + 1.0
    flat = (table + stride * np.arange(n_places + 3)[:, None]).ravel()
    table_flat = table.ravel()
    last_age = AGE_WEEKS - 1
    intake = np.array([params.expected_intake(end - timedelta(weeks=w), end) * what_if.intake for end, w in steps])
    # A run's drift: the average of a random walk of four-week steps over the horizon has sd sigma * sqrt(n / 3).
    horizon_blocks = target_weeks / 4
    intake_sd = params.intake_drift * math.sqrt(horizon_blocks / 3)
    speed_sd = params.speed_drift * math.sqrt(horizon_blocks / 3)

    # The snapshot as arrays, converted once: every run starts from it.
    cases = snap.cases
    init_kommune = np.array([index[c.kommune_kode] for c in cases], dtype=np.int64)
    init_task = np.array([index[c.task_kommune] if c.task_kommune else -1 for c in cases], dtype=np.int64)
    init_age = np.array(
        [min(int(_weeks(snap.as_of - c.task_requested_at)), last_age) if c.task_requested_at else 0 for c in cases],
        dtype=np.int64,
    )
    init_deadline = np.array(
        [_weeks(c.task_deadline_at - snap.as_of) if c.task_deadline_at else math.inf for c in cases], dtype=float
    )
    init_extended = np.array([c.task_extended for c in cases], dtype=bool)
    with_task = init_task >= 0
    ready = ~with_task & np.array([c.ready_since is not None for c in cases], dtype=bool)
    unscreened = ~with_task & ~ready
    formal = np.array([-1 if c.formal_rejection is None else int(c.formal_rejection) for c in cases], dtype=np.int64)

    def chunk(n_runs: int, rng: np.random.Generator) -> _Counts:
        counts = _Counts(n_runs, n_steps, n_places)
        slowness = np.ones((n_runs, n_places + 3))
        if speed_sd > 0:
            # A faster kommune reaches the same cumulative hazard sooner: its spells' draws are divided by its speed.
            common = rng.normal(0.0, speed_sd, (n_runs, 1))
            slowness[:, :n_places] = np.exp(-common - rng.normal(0.0, speed_sd, (n_runs, n_places)))
        slowness_flat = slowness.ravel()

        def first_step(row: IntArray, age: IntArray, j0: IntArray, run: IntArray) -> IntArray:
            """The step in which each task (cumulative hazard `row`, from `age` at step `j0`, at its run's speed)
            is answered, or n_steps if it outlasts the forecast."""
            at = row * length + age
            base = table_flat[at]
            goal = base + rng.standard_exponential(len(row)) * slowness_flat[run * (n_places + 3) + row]
            found = np.searchsorted(flat, np.minimum(goal, top) + stride * row, side="left") - row * length
            return place_step(np.maximum(found, age + 1) - age, j0, goal - base, at)

        def constant_step(row: int, j0: IntArray) -> IntArray:
            """The same for a constant hazard (from age 0): the whole weeks it takes are found by division."""
            lam = constant_rates[row - n_places]
            draws = rng.standard_exponential(len(j0))
            weeks = np.clip(np.ceil(draws / max(lam, 1e-300)), 1, length).astype(np.int64)
            return place_step(weeks, j0, draws, np.full(len(j0), row * length))

        def place_step(weeks: IntArray, j0: IntArray, goal: FloatArray, at: IntArray) -> IntArray:
            """The step a spell ends in that takes `weeks` whole weeks of hazard from step `j0` (or, when the last
            step is short, reaches `goal` above its start `at` in the table within it), or n_steps."""
            n_whole = whole_end - j0
            whole = (n_whole > 0) & (weeks <= n_whole)
            out = np.where(whole, j0 + weeks - 1, n_steps)
            if not whole_last:
                a = at + np.maximum(n_whole, 0)
                partial = table_flat[a] - table_flat[at] + (table_flat[a + 1] - table_flat[a]) * last_weeks >= goal
                out = np.where(~whole & partial, last, out)
            return np.where(j0 > last, n_steps, out)

        def draw_kommune(n: int) -> IntArray:
            picked = np.searchsorted(intake_cumulative, rng.random(n) * intake_total, side="right")
            return intake_rows[np.minimum(picked, len(kommuner) - 1)]

        def begin(
            run: IntArray,
            kommune: IntArray,
            task: IntArray,
            requested: IntArray,
            age: IntArray,
            deadline: FloatArray,
            extended: BoolArray,
            arrived: IntArray,
        ) -> _Spells:
            first = np.where(requested < 0, 0, requested + 1)
            if withdrawals:
                gone = constant_step(withdrawal_row, np.where(requested < 0, arrived, arrived + 1))
            else:
                gone = np.full(len(run), n_steps)
            return _Spells(run, kommune, task, requested, first, age, deadline, extended, arrived, gone)

        def tile(values: NDArray[Any], mask: BoolArray) -> NDArray[Any]:
            return np.tile(values[mask], n_runs)

        def runs_of(mask: BoolArray) -> IntArray:
            return np.repeat(np.arange(n_runs), int(mask.sum()))

        # Open tasks of the snapshot, and cases ready for a caseworker.
        waiting = begin(
            runs_of(with_task),
            tile(init_kommune, with_task),
            tile(init_task, with_task),
            np.full(int(with_task.sum()) * n_runs, -1),
            tile(init_age, with_task),
            tile(init_deadline, with_task),
            tile(init_extended, with_task),
            np.zeros(int(with_task.sum()) * n_runs, dtype=np.int64),
        )
        n = int(ready.sum()) * n_runs
        zeros = np.zeros(n, dtype=np.int64)
        deciding = begin(
            runs_of(ready),
            tile(init_kommune, ready),
            np.full(n, -1),
            np.full(n, -1),
            zeros,
            np.full(n, math.inf),
            np.zeros(n, dtype=bool),
            zeros,
        )
        # Cases waiting to be pre-screened and sent: it happens in the first step.
        run, kommune, found = runs_of(unscreened), tile(init_kommune, unscreened), tile(formal, unscreened)
        rejected = (found == 1) | ((found == -1) & (rng.random(len(run)) < params.formal_rejection_share))
        counts.decide(run[rejected], kommune[rejected], np.zeros(int(rejected.sum()), dtype=np.int64))
        run, kommune = run[~rejected], kommune[~rejected]
        n = len(run)
        zeros = np.zeros(n, dtype=np.int64)
        parts = [
            waiting,
            begin(run, kommune, kommune, zeros, zeros, np.full(n, new_deadline[0]), np.zeros(n, dtype=bool), zeros),
        ]
        if kommuner:
            lam = intake[None, :] * np.ones((n_runs, 1))
            if intake_sd > 0:
                lam = lam * np.exp(rng.normal(0.0, intake_sd, (n_runs, 1)))
            arrivals = rng.poisson(lam).ravel()
            cell = np.repeat(np.arange(n_runs * n_steps), arrivals)
            run, step = cell // n_steps, cell % n_steps
            kommune = draw_kommune(len(run))
            rejected = rng.random(len(run)) < params.formal_rejection_share
            counts.decide(run[rejected], kommune[rejected], step[rejected])
            run, kommune, step = run[~rejected], kommune[~rejected], step[~rejected]
            parts.append(
                begin(
                    run,
                    kommune,
                    kommune,
                    step,
                    np.zeros_like(step),
                    new_deadline[step],
                    np.zeros(len(run), dtype=bool),
                    step,
                )
            )
        waiting = _Spells.concat(parts)

        while len(waiting) or len(deciding):
            s = waiting
            # A task is open from the end of step `requested` (0 for the snapshot's) and first may be answered in
            # step `first`.
            answered = first_step(s.task, s.age, s.first, s.run)
            moved = constant_step(move_row, s.first) if moves else np.full(len(s), n_steps)
            ends_at = np.minimum(np.minimum(answered, moved), s.gone)
            begins = np.maximum(s.requested, 0)
            deadline = s.deadline
            overdue_from = np.searchsorted(ends, deadline, side="left")
            if late_extension:
                # A kommune that will miss the deadline asks for an extension (as often as the log shows).
                late = (overdue_from < ends_at) & ~s.extended & (deadline > 0)
                late &= rng.random(len(s)) < late_extension
                deadline = np.where(late, deadline + extension_weeks, deadline)
                overdue_from = np.searchsorted(ends, deadline, side="left")
            spell = ends_at > begins
            counts.waiting(s.run[spell], begins[spell], ends_at[spell])
            spell &= overdue_from < ends_at
            counts.overdue(s.run[spell], np.maximum(overdue_from, begins)[spell], ends_at[spell])
            at_target = ends_at == n_steps
            counts.open_at_target(s.run[at_target], s.kommune[at_target], waiting=True)
            late_at_target = at_target & (deadline <= target_weeks)
            counts.overdue_at_target(s.run[late_at_target], s.task[late_at_target])
            done = at_target | (ends_at == s.gone)
            counts.finish(s.run[done], s.arrived[done], s.gone[done])
            going = ~done
            # Moved or returned: the case goes on to another kommune with a new task.
            passed_on = going & ((ends_at == moved) | (rng.random(len(s)) < params.return_share))
            answered_now = going & ~passed_on
            on = s.where(passed_on)
            step = ends_at[passed_on]
            elsewhere = draw_kommune(len(on)) if kommuner else on.task
            waiting = _Spells(
                on.run,
                elsewhere,
                elsewhere,
                step,
                step + 1,
                np.zeros_like(step),
                new_deadline[step],
                np.zeros(len(on), dtype=bool),
                on.arrived,
                on.gone,
            )
            back = s.where(answered_now)
            back.first = ends_at[answered_now] + 1
            deciding = _Spells.concat([deciding, back])

            s = deciding
            acted = constant_step(caseworker_row, s.first)
            before = acted >= s.gone
            stays = before & (s.gone == n_steps)
            counts.open_at_target(s.run[stays], s.kommune[stays], waiting=False)
            counts.finish(s.run[before], s.arrived[before], s.gone[before])
            supplementary = ~before & (rng.random(len(s)) < params.supplementary_share)
            decided = ~before & ~supplementary
            counts.decide(s.run[decided], s.kommune[decided], acted[decided])
            counts.finish(s.run[decided], s.arrived[decided], acted[decided])
            asked = s.where(supplementary)
            step = acted[supplementary]
            waiting = _Spells.concat(
                [
                    waiting,
                    _Spells(
                        asked.run,
                        asked.kommune,
                        asked.kommune,
                        step,
                        step + 1,
                        np.zeros_like(step),
                        new_deadline[step],
                        np.zeros(len(asked), dtype=bool),
                        asked.arrived,
                        asked.gone,
                    ),
                ]
            )
            deciding = s.where(np.zeros(len(s), dtype=bool))
        return counts

    # Each chunk of CHUNK_RUNS runs has its own generator seeded from (seed, chunk index): the same seed gives the
    # same forecast, and the runs of a chunk do not depend on how many runs come after it.
    results = [
        chunk(min(CHUNK_RUNS, runs - start), np.random.default_rng([seed % 2**64, i]))
        for i, start in enumerate(range(0, runs, CHUNK_RUNS))
    ]
    columns = ("open", "waiting", "overdue", "decisions")
    path = {c: np.concatenate([r.path(c) for r in results]) for c in columns}  # [run, step]
    place = {c: np.concatenate([r.at_target(c) for r in results]) for c in columns}  # [run, place]

    def figures(open_cases: IntArray, waiting: IntArray, overdue: IntArray, decisions: IntArray) -> Figures:
        o, w = open_cases.tolist(), waiting.tolist()
        return Figures(
            open_cases=band(o),
            waiting=band(w),
            waiting_share=band([round(x / y, 4) if y else 0.0 for x, y in zip(w, o, strict=True)]),
            overdue=band(overdue.tolist()),
            decisions=band(decisions.tolist()),
        )

    def at_step(j: int) -> Figures:
        return figures(*(path[c][:, j] for c in columns))

    start = _start_figures(snap)
    return Forecast(
        as_of=snap.as_of,
        to=to,
        runs=runs,
        seed=seed,
        what_if=what_if,
        total=at_step(last),
        kommuner={k: figures(*(place[c][:, i] for c in columns)) for i, k in enumerate(places)},
        path=[(end, at_step(j)) for j, (end, _) in enumerate(steps)],
        start=start,
    )


def _rate(p: float) -> float:
    """The constant hazard rate (per week) of a weekly probability."""
    return -math.log(max(1.0 - p, 1e-12))


def _start_figures(snap: Snapshot) -> dict[str, float]:
    open_cases = len(snap.cases)
    waiting = sum(1 for c in snap.cases if c.task_kommune is not None)
    overdue = sum(
        1
        for c in snap.cases
        if c.task_kommune is not None and c.task_deadline_at is not None and c.task_deadline_at <= snap.as_of
    )
    return {
        "open_cases": open_cases,
        "waiting": waiting,
        "waiting_share": round(waiting / open_cases, 4) if open_cases else 0.0,
        "overdue": overdue,
    }


def observed(states: Iterable[CaseState], since: datetime, at: datetime) -> dict[str, dict[str, float]]:
    """What the log shows at `at`, counted as the forecast counts it: per kommune and in total ("" key), open cases,
    cases waiting on a kommune, the waiting share, overdue tasks (for the kommune the task waits on) and the decisions
    made after `since` (the forecast's start). For scoring a forecast against what then happened."""
    states = list(states)
    out: dict[str, dict[str, float]] = {}

    def place(kode: str) -> dict[str, float]:
        return out.setdefault(kode, {"open_cases": 0, "waiting": 0, "overdue": 0, "decisions": 0})

    for case in snapshot(states, at).cases:
        for kode in ("", case.kommune_kode):
            place(kode)["open_cases"] += 1
            if case.task_kommune is not None:
                place(kode)["waiting"] += 1
        overdue = case.task_deadline_at is not None and case.task_deadline_at <= at
        if case.task_kommune is not None and overdue:
            place("")["overdue"] += 1
            place(case.task_kommune)["overdue"] += 1
    for s in _in_effect(states, at):
        if s.decided_at is not None and since < s.decided_at <= at and s.kommune_kode:
            place("")["decisions"] += 1
            place(s.kommune_kode)["decisions"] += 1
    for f in out.values():
        f["waiting_share"] = round(f["waiting"] / f["open_cases"], 4) if f["open_cases"] else 0.0
    return out


def parse_day_or_instant(text: str) -> datetime:
    """`2021-03-01` (the start of that day, Danish time) or an instant with an offset."""
    try:
        return start_of_day(date.fromisoformat(text))
    except ValueError:
        pass
    instant = datetime.fromisoformat(text.replace(" ", "+"))
    if instant.utcoffset() is None:
        raise ValueError("an instant needs an offset, e.g. 2021-03-01T00:00:00+01:00")
    return instant.astimezone(UTC)


__all__ = [
    "BASELINE",
    "Band",
    "Figures",
    "Forecast",
    "Hazard",
    "OpenCase",
    "Parameters",
    "Snapshot",
    "WhatIf",
    "band",
    "estimate",
    "forecast",
    "next_forum_meeting",
    "observed",
    "parse_day_or_instant",
    "parse_what_if",
    "snapshot",
]
