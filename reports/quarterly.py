"""The Samarbejdsforum quarterly figures, computed from case timelines (pure, deterministic).

What each figure means is defined once, in eventlog/figures.py; this module decides which part of the quarter the
event log can speak for (`Coverage`) and assembles the figures for it. A quarter the log does not reach has no
figures at all (None, shown as "ingen data"), never zeros.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, TypeVar

from domain.calendar import COPENHAGEN, local_date, roll_forward, start_of_day
from domain.kommuner import FORUM_KOMMUNER, all_kommuner
from eventlog import figures
from eventlog.figures import AGE_BUCKETS, LogSpan, Share
from eventlog.timeline import CaseTimeline, TaskTimeline

__all__ = [
    "AGE_BUCKETS",
    "Coverage",
    "KommuneFigures",
    "LogSpan",
    "Quarter",
    "QuarterFigures",
    "WeekFigures",
    "compute",
    "parse_quarter",
]

CoverageState = Literal["none", "partial", "full"]
T = TypeVar("T")


@dataclass(frozen=True)
class Quarter:
    year: int
    q: int

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.q}"

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * (self.q - 1) + 1, 1)

    @property
    def next_first_day(self) -> date:
        return date(self.year + 1, 1, 1) if self.q == 4 else date(self.year, 3 * self.q + 1, 1)

    @property
    def last_day(self) -> date:
        return self.next_first_day - timedelta(days=1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), tzinfo=COPENHAGEN).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.next_first_day, datetime.min.time(), tzinfo=COPENHAGEN).astimezone(UTC)

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.q == 1 else Quarter(self.year, self.q - 1)

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def parse_quarter(text: str) -> Quarter:
    m = re.fullmatch(r"\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*", text)
    if not m:
        raise ValueError(f"quarter must look like 2021Q1, not {text!r}")
    return Quarter(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Coverage:
    """Which part of a quarter the log speaks for: [start, end).

    The log starts late in a quarter when its first event falls after the quarter's first working day (a log that
    begins on Monday 4 January covers 2021Q1, whose 1-3 January are a holiday and a weekend). It ends early when its
    last event is before the quarter's end: the quarter was not over at the position, and the figures run to the
    last event.
    """

    state: CoverageState
    start: datetime
    end: datetime
    starts_late: bool = False
    ends_early: bool = False


def coverage_of(quarter: Quarter, span: LogSpan) -> Coverage:
    if span.first_at is None or span.last_at is None or span.last_at < quarter.start or span.first_at >= quarter.end:
        return Coverage("none", quarter.start, quarter.start)
    first_day = local_date(span.first_at)
    starts_late = first_day > roll_forward(quarter.first_day)
    ends_early = span.last_at < quarter.end
    start = start_of_day(first_day) if starts_late else quarter.start
    # A log whose last event is exactly at the quarter's start still covers nothing of it.
    end = min(span.last_at, quarter.end)
    if end <= start:
        return Coverage("none", quarter.start, quarter.start)
    state: CoverageState = "partial" if starts_late or ends_early else "full"
    return Coverage(state, start, end, starts_late, ends_early)


@dataclass(frozen=True)
class WeekFigures:
    """One ISO week (Monday to Sunday, Danish time) of the quarter; `cut` when the quarter boundary cuts it, so
    only `days_in_quarter` of its days belong to this quarter."""

    year: int
    week: int
    first_day: date  # Monday
    last_day: date  # Sunday
    first_in_quarter: date
    last_in_quarter: date
    coverage: CoverageState  # by the event log
    intake: int | None

    @property
    def days_in_quarter(self) -> int:
        return (self.last_in_quarter - self.first_in_quarter).days + 1

    @property
    def cut(self) -> bool:
        return self.days_in_quarter < 7

    @property
    def partial(self) -> bool:
        return self.cut or self.coverage == "partial"


@dataclass
class KommuneFigures:
    """Task figures for one kommune (or a group of them) over the covered part of a quarter."""

    kode: str
    navn: str
    forum: bool
    received: int = 0
    answered: int = 0
    median_days: float | None = None
    p90_days: float | None = None
    deadline: Share = field(default_factory=lambda: Share(0, 0))
    reminders: int = 0
    overdue: int = 0
    waiting_at_end: int = 0
    six_months: Share = field(default_factory=lambda: Share(0, 0))


@dataclass
class QuarterFigures:
    quarter: str
    coverage: Coverage
    as_of: datetime  # the moment the stock figures (open, waiting, ages) are taken: quarter end or the log's end
    weeks: list[WeekFigures]
    intake_total: int | None = None
    open_at_end: int | None = None
    waiting_at_end: int | None = None
    waiting_share_pct: float | None = None
    waiting_age: list[tuple[str, int]] = field(default_factory=list)
    kommuner: list[KommuneFigures] = field(default_factory=list)
    groups: list[KommuneFigures] = field(default_factory=list)  # the forum kommuner together, and all the others
    decisions: dict[str, int] = field(default_factory=dict)
    e2e_median_days: float | None = None
    e2e_p90_days: float | None = None
    answered_total: int | None = None
    deadline: Share | None = None
    six_months: Share | None = None
    # When `deadline` / `six_months` has nothing due: the first such point after the covered part (known at the
    # position), so the report can say when the figure will first have data.
    next_deadline_at: datetime | None = None
    next_six_month_point: datetime | None = None

    @property
    def has_data(self) -> bool:
        return self.coverage.state != "none"

    @property
    def forum_group(self) -> KommuneFigures | None:
        return self.groups[0] if self.groups else None

    @property
    def rest_group(self) -> KommuneFigures | None:
        return self.groups[1] if self.groups else None


def _weeks(quarter: Quarter, cov: Coverage, cases: Sequence[CaseTimeline]) -> list[WeekFigures]:
    out: list[WeekFigures] = []
    monday = quarter.first_day - timedelta(days=quarter.first_day.weekday())
    while monday <= quarter.last_day:
        sunday = monday + timedelta(days=6)
        first, last = max(monday, quarter.first_day), min(sunday, quarter.last_day)
        start, end = start_of_day(first), start_of_day(last + timedelta(days=1))
        lo, hi = max(start, cov.start), min(end, cov.end)
        state: CoverageState
        if cov.state == "none" or hi <= lo:
            state, count = "none", None
        else:
            state = "full" if (lo, hi) == (start, end) else "partial"
            count = figures.intake(cases, lo, hi)
        year, week, _ = monday.isocalendar()
        out.append(WeekFigures(year, week, monday, sunday, first, last, state, count))
        monday += timedelta(days=7)
    return out


def _kommune_figures(
    kode: str,
    navn: str,
    tasks: Sequence[TaskTimeline],
    cases: Sequence[CaseTimeline],
    cov: Coverage,
    as_of: datetime,
) -> KommuneFigures:
    days = figures.answer_days(tasks, cov.start, cov.end)
    return KommuneFigures(
        kode=kode,
        navn=navn,
        forum=kode in FORUM_KOMMUNER,
        received=figures.tasks_received(tasks, cov.start, cov.end),
        answered=len(days),
        median_days=figures.median(days),
        p90_days=figures.p90(days),
        deadline=figures.answered_within_deadline(tasks, cov.start, cov.end),
        reminders=figures.reminders(tasks, cov.start, cov.end),
        overdue=figures.went_overdue(tasks, cov.start, cov.end),
        waiting_at_end=figures.tasks_open(tasks, as_of),
        six_months=figures.decided_within_six_months(cases, cov.start, cov.end),
    )


def _gather(kodes: Sequence[str], by_kommune: dict[str, list[T]]) -> list[T]:
    return [x for k in kodes for x in by_kommune.get(k, [])]


def compute(cases: Sequence[CaseTimeline], quarter: Quarter, span: LogSpan) -> QuarterFigures:
    cov = coverage_of(quarter, span)
    as_of = cov.end if cov.state != "none" else quarter.end
    weeks = _weeks(quarter, cov, cases)
    if cov.state == "none":
        return QuarterFigures(quarter=quarter.label, coverage=cov, as_of=as_of, weeks=weeks)

    open_cases = figures.open_cases(cases, as_of)
    waiting = figures.waiting_on_kommune(cases, as_of)

    tasks_by_kommune: dict[str, list[TaskTimeline]] = {}
    for c in cases:
        for t in c.tasks:
            tasks_by_kommune.setdefault(t.kommune_kode, []).append(t)
    # A case counts for the 6-month figure of the kommune that had it when its 6 months ran out.
    cases_by_kommune: dict[str, list[CaseTimeline]] = {}
    for c in cases:
        cases_by_kommune.setdefault(c.kommune_at(figures.six_month_point(c)), []).append(c)

    kommuner = [
        _kommune_figures(k.kode, k.navn, tasks_by_kommune.get(k.kode, []), cases_by_kommune.get(k.kode, []), cov, as_of)
        for k in all_kommuner()
    ]
    rest = sorted((set(tasks_by_kommune) | set(cases_by_kommune)) - set(FORUM_KOMMUNER))
    forum_group = _kommune_figures(
        "forum",
        "De fem forumkommuner",
        _gather(FORUM_KOMMUNER, tasks_by_kommune),
        _gather(FORUM_KOMMUNER, cases_by_kommune),
        cov,
        as_of,
    )
    forum_group.forum = True
    rest_group = _kommune_figures(
        "rest", "De øvrige 93 kommuner", _gather(rest, tasks_by_kommune), _gather(rest, cases_by_kommune), cov, as_of
    )

    decided = figures.decided(cases, cov.start, cov.end)
    outcomes = [c.outcome for c in decided]
    e2e = figures.days_to_decision(decided)
    all_tasks = [t for c in cases for t in c.tasks]
    deadline = figures.answered_within_deadline(all_tasks, cov.start, cov.end)
    six_months = figures.decided_within_six_months(cases, cov.start, cov.end)

    return QuarterFigures(
        quarter=quarter.label,
        coverage=cov,
        as_of=as_of,
        weeks=weeks,
        intake_total=figures.intake(cases, cov.start, cov.end),
        open_at_end=len(open_cases),
        waiting_at_end=len(waiting),
        waiting_share_pct=figures.percent(len(waiting), len(open_cases)),
        waiting_age=figures.waiting_task_ages(cases, as_of),
        kommuner=kommuner,
        groups=[forum_group, rest_group],
        decisions={
            "granted": outcomes.count("granted"),
            "rejected": outcomes.count("rejected"),
            "rejected_formal": outcomes.count("rejected_formal"),
            "withdrawn": figures.withdrawn(cases, cov.start, cov.end),
        },
        e2e_median_days=figures.median(e2e),
        e2e_p90_days=figures.p90(e2e),
        answered_total=len(figures.answer_days(all_tasks, cov.start, cov.end)),
        deadline=deadline,
        six_months=six_months,
        next_deadline_at=min((t.deadline_at for t in all_tasks if t.deadline_at >= cov.end), default=None),
        next_six_month_point=min((p for p in map(figures.six_month_point, cases) if p >= cov.end), default=None),
    )
