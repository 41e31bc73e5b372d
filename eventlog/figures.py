"""Every figure we publish, defined once: the quarterly report, the ops API and `/metrics` all take them from here.

Who shows what:

- the quarterly report (reports/quarterly.py) assembles the period figures below (intake, answered, answered within
  deadline, median/p90 days, went overdue, decided within 6 months) and the stock figures at the period's end (open
  cases, waiting share, open tasks per kommune) from case timelines folded from the raw log at a fixed position
  (`FigureStore.log_at`), so that a report can be rebuilt byte for byte;
- the ops API (`GET /v1/ops/backlog`) and `/metrics` show the backlog (`FigureStore.backlog`: open tasks, the
  overdue among them, active cases) from the `case_views` projection, which answers now and as of any instant
  without folding the log; `eventlog.queries` holds that SQL, and `eventlog.queries.period_counts` the weekly and
  quarterly counts (its p90 is `p90` below, as `percentile_disc(0.9)`).

Conventions that make them agree (tests/api/test_figures_agree.py holds all three to the same log):

- Business time is `occurred_at`. A period is [start, end): `end` is the quarter's end or, in a quarter the event log
  does not cover to its end, the moment the log stops (what happened after it is not known yet).
- A stock figure at the end of a period counts the state after every event stamped before `end`; the backlog as of
  T counts every event stamped at or before T. So a report's stock at `end` is the backlog as of `just_before(end)`.
- Median and p90 are over the unrounded values, each rounded to one decimal only when shown (`median`, `p90`).

Alike in name, different figures (each defined once, but not to be compared with the other):

- The report's "gået over frist" (`went_overdue`) counts tasks that first went past their deadline in a period; the
  backlog's `overdue` counts open tasks past their deadline at an instant.
- The report's open cases (`open_cases`: received, not yet closed) include a case decided or withdrawn whose
  closing letters are still going out; the backlog's active cases do not.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from domain.calendar import Duration, Unit, add_to_date, deadline_instant, roll_forward
from domain.events import Event
from eventlog.queries import BacklogRow, CaseBacklogRow, case_backlog, projection_lag, task_backlog
from eventlog.store import EventStore, case_streams
from eventlog.timeline import CaseTimeline, TaskTimeline, case_timeline

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
    """The middle value (the mean of the two middle ones for an even count; `percentile_cont(0.5)` in SQL), rounded
    to one decimal as published."""
    return round(statistics.median(xs), 1) if xs else None


# p90 is by nearest rank, not by interpolation (PostgreSQL's percentile_cont), for every consumer: it is what the
# report has published, and it is a value that actually occurred (a reader can find the task that took that long),
# where interpolation invents one between two tasks (answers after 10, 20 and 30 days: 30 by nearest rank, 28 by
# interpolation). In SQL it is `percentile_disc(0.9)` (eventlog.queries.period_counts), which takes the same rank.
def p90_value(xs: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank: the smallest value that at least 90 % of the values do not exceed."""
    if not xs:
        return None
    ordered = sorted(xs)
    rank = max(1, -(-9 * len(ordered) // 10))  # ceil(0.9 n), in integers
    return ordered[rank - 1]


def p90(xs: Sequence[float]) -> float | None:
    """`p90_value` rounded to one decimal, as published."""
    value = p90_value(xs)
    return None if value is None else round(value, 1)


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


# ---- the backlog: open tasks and active cases, now or as of an instant (the ops API and /metrics) ---------------


@dataclass(frozen=True)
class Backlog:
    """Open kommune tasks per kommune and task status (`overdue` of them escalated past their deadline), and active
    (undecided, not withdrawn) cases per kommune and case status."""

    tasks: list[BacklogRow]
    cases: list[CaseBacklogRow]

    def open_tasks_by_kommune(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.tasks:
            out[row.kommune_kode] = out.get(row.kommune_kode, 0) + row.tasks
        return out

    def overdue_by_kommune(self) -> dict[str, int]:
        """Every kommune with open tasks, with how many of them are overdue (0 included)."""
        out: dict[str, int] = {}
        for row in self.tasks:
            out[row.kommune_kode] = out.get(row.kommune_kode, 0) + row.overdue
        return out


def just_before(end: datetime) -> datetime:
    """The last instant before `end` (timestamps have microsecond resolution): the backlog as of it is the state at
    the end of a period [start, end)."""
    return end - timedelta(microseconds=1)


# ---- reading the log --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogSpan:
    """The business time the event log covers at a position: its first and last event."""

    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True)
class LogAt:
    """Every case's timeline at a log position, the number of events up to it, and the business time they span."""

    position: int
    timelines: list[CaseTimeline]
    event_count: int
    span: LogSpan


# Personal fields are never read: reports must work after shredding.
_CASE_STREAMS = (
    "SELECT event_id, case_id, type, schema_version, occurred_at, data - 'personal' AS data FROM events"
    " WHERE global_position <= $1 ORDER BY case_id, stream_version"
)


class FigureStore:
    """Where the figures come from: the log (for reports, at a fixed position) and the projection (the backlog)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._events = EventStore(pool)

    async def head_position(self) -> int:
        return await self._events.head_position()

    async def projection_lag(self) -> int:
        """Events in the log that the `case_views` projection has not applied yet."""
        return await projection_lag(self.pool)

    async def backlog(self, at: datetime | None = None) -> Backlog:
        """The backlog now, or as of `at` (every event stamped at or before it)."""
        return Backlog(tasks=await task_backlog(self.pool, at), cases=await case_backlog(self.pool, at))

    async def case_streams(self, up_to: int) -> AsyncIterator[list[Event]]:
        """Each case's events up to a log position, in stream order, one case at a time, without personal data."""
        async for events in case_streams(self.pool, _CASE_STREAMS, up_to):
            yield events

    async def log_at(self, position: int) -> LogAt:
        timelines: list[CaseTimeline] = []
        count = 0
        first: datetime | None = None
        last: datetime | None = None
        async for events in self.case_streams(position):
            count += len(events)
            stamps = [e.occurred_at for e in events]
            first = min(stamps) if first is None else min(first, *stamps)
            last = max(stamps) if last is None else max(last, *stamps)
            tl = case_timeline(events)
            if tl is not None:
                timelines.append(tl)
        return LogAt(position, timelines, count, LogSpan(first, last))
