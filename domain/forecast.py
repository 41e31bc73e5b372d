"""The forum's view ahead: a Monte Carlo forecast of the backlog at a target date (issue #16).

Pure: the caller folds the event log as of a date into case states (`eventlog.forecast.ForecastStore`), `estimate`
turns them into `Parameters` and a `Snapshot`, and `forecast` simulates the open cases and new intake forward in
steps of a week (the last step ends at the target), many times over, with one seeded `random.Random`: the same seed
gives the same forecast. No parameter comes from anywhere but the log (never from the simulator's configuration).

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
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

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


@dataclass
class _Tally:
    open_cases: int = 0
    waiting: int = 0
    overdue: int = 0
    decisions: int = 0

    @property
    def share(self) -> float:
        return self.waiting / self.open_cases if self.open_cases else 0.0


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 60:  # the normal approximation is close enough here and keeps a week's draw cheap
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


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
    waiting spell's length is drawn once, from the cumulative hazard (one uniform, one bisect), and the figures at
    each step's end are counted from the spells (profiled: the per-step draws were 80 % of the time)."""
    if to <= snap.as_of:
        raise ValueError("the target date must lie after the forecast's starting point")
    if runs < 1:
        raise ValueError("runs must be at least 1")
    rng = random.Random(seed)
    steps = _steps(snap.as_of, to)
    ends = [_weeks(end - snap.as_of) for end, _ in steps]
    n_steps = len(steps)
    last = n_steps - 1
    # Only the last step can be shorter than a week; its hazards are scaled to its length.
    last_weeks = steps[-1][1]
    whole_last = abs(last_weeks - 1.0) < 1e-9
    whole_end = n_steps if whole_last else last  # steps j < whole_end are whole weeks
    policy = POLICIES[params.policy_id]
    # Deadlines of tasks the simulation requests at each step's end, without and with the typical extension: the
    # calendar arithmetic is done once here, not per run.
    new_deadlines = [
        (
            _weeks(_deadline(policy, end, 0) - snap.as_of),
            _weeks(_deadline(policy, end, params.extension_days) - snap.as_of),
        )
        for end, _ in steps
    ]
    extension_weeks = params.extension_days / 7
    late_extension = params.late_extension_share
    kommuner = sorted(params.kommune_shares)
    cumulative: list[float] = []
    acc = 0.0
    for k in kommuner:
        acc += params.kommune_shares[k]
        cumulative.append(acc)
    places = sorted({c.kommune_kode for c in snap.cases} | set(kommuner) | set(FORUM_KOMMUNER))
    places = sorted(set(places) | {c.task_kommune for c in snap.cases if c.task_kommune})
    # Each kommune's cumulative answer hazard by age in weeks, at its what-if speed: hazard[a] is the sum of the
    # weekly hazards of ages 0..a-1. Past the last age bucket the hazard is constant, so a task older than that is
    # placed at the last bucket (the increments ahead of it are the same).
    length = AGE_WEEKS + n_steps + 1
    hazard: dict[str, list[float]] = {}
    for k in places:
        h = params.answer.get(k, params.national)
        speed = what_if.speed_of(k)
        total, acc_h = [0.0], 0.0
        for a in range(length - 1):
            acc_h += _rate(h.at(a)) * speed
            total.append(acc_h)
        hazard[k] = total
    last_age = AGE_WEEKS - 1

    def constant(p: float) -> list[float]:
        lam = _rate(p)
        return [lam * j for j in range(n_steps + 2)]

    caseworker = constant(_scaled(params.caseworker_weekly, what_if.decision_capacity))
    withdrawal = constant(params.withdrawal_weekly) if params.withdrawal_weekly > 0 else None
    move = constant(params.move_weekly) if params.move_weekly > 0 and kommuner else None
    intake = [params.expected_intake(end - timedelta(weeks=w), end) * what_if.intake for end, w in steps]
    log, draw, bisect_left_ = math.log, rng.random, bisect_left

    slowness = dict.fromkeys(places, 1.0)  # per run, with the speed drift (below)

    def first_step(total: list[float], age: int, j0: int, slow: float = 1.0) -> int:
        """The step in which a spell with cumulative hazard `total` (from `age` at step `j0`, at `1 / slow` times
        the speed) ends, or n_steps if it outlasts the forecast."""
        if j0 > last:
            return n_steps
        target = total[age] - log(1.0 - draw()) * slow
        n_whole = whole_end - j0
        if n_whole > 0:
            found = bisect_left_(total, target, age + 1, age + n_whole + 1)
            if found <= age + n_whole:
                return j0 + found - age - 1
        if not whole_last:
            a = age + (n_whole if n_whole > 0 else 0)
            if total[a] + (total[a + 1] - total[a]) * last_weeks >= target:
                return last
        return n_steps

    def draw_kommune() -> str:
        return kommuner[min(bisect_right(cumulative, draw() * acc), len(kommuner) - 1)]

    # The snapshot in float weeks, converted once: every run starts from it.
    initial = [
        (
            c.kommune_kode,
            c.task_kommune,
            min(int(_weeks(snap.as_of - c.task_requested_at)), last_age) if c.task_requested_at else 0,
            _weeks(c.task_deadline_at - snap.as_of) if c.task_deadline_at else math.inf,
            c.task_extended,
            c.ready_since is not None,
            c.formal_rejection,
        )
        for c in snap.cases
    ]
    target = ends[-1]
    path_samples: list[list[_Tally]] = [[] for _ in steps]
    final: list[dict[str, _Tally]] = []
    # Differences per step: +1 where a spell begins to count at a step's end, -1 where it stops. Reset each run.
    waiting_d = [0] * (n_steps + 1)
    overdue_d = [0] * (n_steps + 1)
    open_d = [0] * (n_steps + 1)
    decided_at = [0] * (n_steps + 1)
    at_end: dict[str, _Tally] = {}
    decided: dict[str, int] = {}

    def play(
        kommune: str,
        task_kommune: str | None,
        requested: int,
        age: int,
        deadline: float,
        extended: bool,
        arrived: int,
    ) -> None:
        """One case from its state at step `arrived` to its end or the target. A task is open from the end of
        step `requested` (0 for the snapshot's) and first may be answered in step `requested + 1` (0)."""
        gone = first_step(withdrawal, 0, arrived if requested < 0 else arrived + 1) if withdrawal else n_steps
        first = 0 if requested < 0 else requested + 1
        while True:
            if task_kommune is not None:
                answered = first_step(hazard[task_kommune], age, first, slowness[task_kommune])
                moved = first_step(move, 0, first) if move else n_steps
                ends_at = min(answered, moved, gone)
                begins = requested if requested > 0 else 0
                overdue_from = bisect_left_(ends, deadline)
                # A kommune that will miss the deadline asks for an extension (as often as the log shows).
                late = overdue_from < ends_at and late_extension and not extended and deadline > 0
                if late and draw() < late_extension:
                    deadline += extension_weeks
                    overdue_from = bisect_left_(ends, deadline)
                if ends_at > begins:
                    waiting_d[begins] += 1
                    waiting_d[ends_at] -= 1
                    if overdue_from < ends_at:
                        overdue_d[max(overdue_from, begins)] += 1
                        overdue_d[ends_at] -= 1
                if ends_at == n_steps:
                    t = at_end.setdefault(kommune, _Tally())
                    t.open_cases += 1
                    t.waiting += 1
                    if deadline <= target:
                        at_end.setdefault(task_kommune, _Tally()).overdue += 1
                    break
                if ends_at == gone:
                    break
                if ends_at == moved or draw() < params.return_share:
                    # Moved or returned: the case goes on to another kommune with a new task.
                    kommune = task_kommune = draw_kommune() if kommuner else task_kommune
                    requested, first, age, extended = ends_at, ends_at + 1, 0, False
                    deadline = new_deadlines[ends_at][0]
                    continue
                task_kommune, first = None, ends_at + 1
            acted = first_step(caseworker, 0, first)
            if acted >= gone:
                if gone == n_steps:
                    at_end.setdefault(kommune, _Tally()).open_cases += 1
                break
            if draw() < params.supplementary_share:
                task_kommune, requested, first, age, extended = kommune, acted, acted + 1, 0, False
                deadline = new_deadlines[acted][0]
                continue
            decided_at[acted] += 1
            decided[kommune] = decided.get(kommune, 0) + 1
            gone = acted
            break
        open_d[arrived] += 1
        open_d[gone] -= 1

    # A run's drift: the average of a random walk of four-week steps over the horizon has sd sigma * sqrt(n / 3).
    horizon_blocks = ends[-1] / 4
    intake_sd = params.intake_drift * math.sqrt(horizon_blocks / 3)
    speed_sd = params.speed_drift * math.sqrt(horizon_blocks / 3)
    intake_base = intake
    gauss = rng.gauss
    for _ in range(runs):
        if intake_sd > 0:
            factor = math.exp(gauss(0.0, intake_sd))
            intake = [x * factor for x in intake_base]
        if speed_sd > 0:
            # A faster kommune reaches the same cumulative hazard sooner: its spells' draws are divided by its speed.
            common = gauss(0.0, speed_sd)
            slowness.update({k: math.exp(-common - gauss(0.0, speed_sd)) for k in places})
        zero = [0] * (n_steps + 1)
        waiting_d[:], overdue_d[:], open_d[:], decided_at[:] = zero, zero, zero, zero
        at_end.clear()
        decided.clear()
        for kommune, task_kommune, age, deadline, extended, ready, formal in initial:
            if task_kommune is not None:
                play(kommune, task_kommune, -1, age, deadline, extended, 0)
            elif ready:
                play(kommune, None, -1, 0, math.inf, False, 0)
            else:  # waiting to be pre-screened and sent: it happens in the first step
                rejected = formal if formal is not None else draw() < params.formal_rejection_share
                if rejected:
                    decided_at[0] += 1
                    decided[kommune] = decided.get(kommune, 0) + 1
                    continue
                play(kommune, kommune, 0, 0, new_deadlines[0][0], False, 0)
        if kommuner:
            for i in range(n_steps):
                for _ in range(_poisson(rng, intake[i])):
                    kommune = draw_kommune()
                    if draw() < params.formal_rejection_share:
                        decided_at[i] += 1
                        decided[kommune] = decided.get(kommune, 0) + 1
                        continue
                    play(kommune, kommune, i, 0, new_deadlines[i][0], False, i)
        waiting = overdue = open_cases = decisions = 0
        for i in range(n_steps):
            waiting += waiting_d[i]
            overdue += overdue_d[i]
            open_cases += open_d[i]
            decisions += decided_at[i]
            path_samples[i].append(_Tally(open_cases, waiting, overdue, decisions))
        totals = path_samples[-1][-1]
        for kommune, n in decided.items():
            at_end.setdefault(kommune, _Tally()).decisions = n
        at_end[""] = totals
        final.append(dict(at_end))

    def figures(samples: Sequence[_Tally]) -> Figures:
        return Figures(
            open_cases=band([t.open_cases for t in samples]),
            waiting=band([t.waiting for t in samples]),
            waiting_share=band([round(t.share, 4) for t in samples]),
            overdue=band([t.overdue for t in samples]),
            decisions=band([t.decisions for t in samples]),
        )

    start = _start_figures(snap)
    return Forecast(
        as_of=snap.as_of,
        to=to,
        runs=runs,
        seed=seed,
        what_if=what_if,
        total=figures([f[""] for f in final]),
        kommuner={k: figures([f.get(k, _Tally()) for f in final]) for k in places},
        path=[(end, figures(samples)) for (end, _), samples in zip(steps, path_samples, strict=True)],
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
