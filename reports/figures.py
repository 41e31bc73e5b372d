"""What each figure of the quarterly report means: one function per figure, over case and task timelines.

The report (reports/quarterly.py) only assembles these, and anything else that shows the same figure should call the
same function, so that a figure cannot mean one thing in the report and another elsewhere. Each takes the period it
counts as [start, end): `end` is the quarter's end or, in a quarter the event log does not cover to its end, the
moment the log stops (what happened after it is not known yet).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.calendar import Duration, Unit, add_to_date, deadline_instant, roll_forward
from reports.timeline import CaseTimeline, TaskTimeline

SIX_MONTHS = Duration(quantity=6, unit=Unit.MONTHS)

AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0–30 dage", 0, 30),
    ("31–60 dage", 31, 60),
    ("61–90 dage", 61, 90),
    ("91–120 dage", 91, 120),
    ("over 120 dage", 121, None),
)


@dataclass(frozen=True)
class Share:
    """`kept` of `due` (e.g. tasks answered within their deadline, of the tasks whose deadline fell in a period)."""

    due: int
    kept: int

    @property
    def pct(self) -> float | None:
        return percent(self.kept, self.due)


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def days_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 86400


def median(xs: Sequence[float]) -> float | None:
    return round(statistics.median(xs), 1) if xs else None


def p90(xs: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank: the smallest value that at least 90 % of the values do not exceed (a
    value that actually occurred, and stable for small samples)."""
    if not xs:
        return None
    ordered = sorted(xs)
    rank = max(1, -(-9 * len(ordered) // 10))
    return round(ordered[rank - 1], 1)


def _in(t: datetime, start: datetime, end: datetime) -> bool:
    return start <= t < end


def intake(cases: Iterable[CaseTimeline], start: datetime, end: datetime) -> int:
    """Applications received in the period."""
    return sum(1 for c in cases if _in(c.received_at, start, end))


def open_cases(cases: Iterable[CaseTimeline], at: datetime) -> list[CaseTimeline]:
    """Cases received and not yet closed (decided and notified, formally rejected or withdrawn) at `at`."""
    return [c for c in cases if c.open_at(at)]


def waiting_on_kommune(cases: Iterable[CaseTimeline], at: datetime) -> list[CaseTimeline]:
    """Open cases with an oplysning task open at a kommune at `at` ("venter på kommunen")."""
    return [c for c in cases if c.open_at(at) and c.waiting_on_kommune_at(at)]


def waiting_task_ages(cases: Iterable[CaseTimeline], at: datetime) -> list[tuple[str, int]]:
    """Tasks open at `at` by whole days since they were requested, in AGE_BUCKETS."""
    counts = dict.fromkeys((label for label, _, _ in AGE_BUCKETS), 0)
    for c in cases:
        for t in c.tasks:
            if t.open_at(at):
                age = int(days_between(t.requested_at, at))
                for label, lo, hi in AGE_BUCKETS:
                    if age >= lo and (hi is None or age <= hi):
                        counts[label] += 1
                        break
    return list(counts.items())


def tasks_received(tasks: Iterable[TaskTimeline], start: datetime, end: datetime) -> int:
    return sum(1 for t in tasks if _in(t.requested_at, start, end))


def answer_days(tasks: Iterable[TaskTimeline], start: datetime, end: datetime) -> list[float]:
    """For each task the kommune answered (completed) in the period: days from request to the final answer."""
    return [
        days_between(t.requested_at, t.closed_at)
        for t in tasks
        if t.completed and t.closed_at is not None and _in(t.closed_at, start, end)
    ]


def answered_within_deadline(tasks: Iterable[TaskTimeline], start: datetime, end: datetime) -> Share:
    """Of the tasks whose deadline (the one in force, granted extensions included) fell in the period, those the
    kommune answered by it.

    A task still open past its deadline, or closed after it without an answer, counts as not within. A task closed
    before its deadline without an answer (returned as "not our citizen", or cancelled by a move or a withdrawal)
    never came due and is left out.
    """
    due = kept = 0
    for t in tasks:
        if not _in(t.deadline_at, start, end):
            continue
        answered_in_time = t.completed and t.closed_at is not None and t.closed_at <= t.deadline_at
        closed_early_unanswered = not t.completed and t.closed_at is not None and t.closed_at <= t.deadline_at
        if closed_early_unanswered:
            continue
        due += 1
        kept += answered_in_time
    return Share(due, kept)


def reminders(tasks: Iterable[TaskTimeline], start: datetime, end: datetime) -> int:
    return sum(1 for t in tasks for r in t.reminders if _in(r, start, end))


def went_overdue(tasks: Iterable[TaskTimeline], start: datetime, end: datetime) -> int:
    """Tasks that first went past their deadline unanswered in the period (counted once, in that period)."""
    return sum(1 for t in tasks if t.overdue_at and _in(t.overdue_at[0], start, end))


def tasks_open(tasks: Iterable[TaskTimeline], at: datetime) -> int:
    return sum(1 for t in tasks if t.open_at(at))


def six_month_point(case: CaseTimeline) -> datetime:
    """When "within 6 months of the application" runs out for a case: counted as a deadline is (domain/calendar.py),
    from the application date to the same day 6 calendar months later (the 31st becomes the month's last day in a
    shorter month), moved to the next working day if that is a closed day, and open until that day ends (Danish time).
    """
    return deadline_instant(roll_forward(add_to_date(case.received_on, SIX_MONTHS)))


def decided_within_six_months(cases: Iterable[CaseTimeline], start: datetime, end: datetime) -> Share:
    """Of the cases whose 6-month point fell in the period, those decided by it (any outcome, formal rejections
    included). A case still undecided at its 6-month point counts as not within; a case withdrawn before it without
    a decision is left out."""
    due = kept = 0
    for c in cases:
        point = six_month_point(c)
        if not _in(point, start, end):
            continue
        if c.decided_at is None and c.withdrawn_at is not None and c.withdrawn_at <= point:
            continue
        due += 1
        kept += c.decided_at is not None and c.decided_at <= point
    return Share(due, kept)


def decided(cases: Iterable[CaseTimeline], start: datetime, end: datetime) -> list[CaseTimeline]:
    """Cases decided in the period (granted, rejected or formally rejected)."""
    return [c for c in cases if c.decided_at is not None and _in(c.decided_at, start, end)]


def withdrawn(cases: Iterable[CaseTimeline], start: datetime, end: datetime) -> int:
    return sum(1 for c in cases if c.withdrawn_at is not None and _in(c.withdrawn_at, start, end))


def days_to_decision(cases: Iterable[CaseTimeline]) -> list[float]:
    """Days from receipt to decision, for decided cases."""
    return [days_between(c.received_at, c.decided_at) for c in cases if c.decided_at is not None]
