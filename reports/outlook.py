"""The report's "next meeting" section: the forecast to the forum's next meeting, last quarter's forecast against what
happened, and the headline figures of the quarters so far (issue #16).

The forecast is the model of `sagsflow forecast` (domain/forecast.py through `eventlog.forecast.run_forecast`), with
a fixed seed, from the log as it stood at the report's date and position: the same position gives the same section.
The report's date is the forum meeting it is made for (the schedule builds a quarter's report on the meeting day after
it), or the log's last event when the log stops before that; the forecast runs from there to the next meeting.
A forecast made at a past date reads only events stamped before that date, so last quarter's forecast is simply
recomputed, never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.forecast import Forecast, Snapshot, next_forum_meeting
from domain.kommuner import FORUM_KOMMUNER
from eventlog.figures import LogAt
from eventlog.forecast import ForecastStore, run_forecast
from reports.quarterly import Quarter, QuarterFigures, compute

# Runs per forecast in a report: enough for stable 10th/90th percentiles of a backlog (they move by a case or two
# between seeds), few enough that a report of a large log builds in seconds (`--forecast-runs` changes it).
REPORT_FORECAST_RUNS = 400
# A report is rebuilt byte for byte from its position: its forecasts must draw the same futures every time.
REPORT_FORECAST_SEED = 1
# The trend table covers at most this many quarters (two years), ending with the report's.
TREND_QUARTERS = 8
# The figures the section shows, in the forecast's names (its `decisions` count a period, not a state: left out).
STATE_FIGURES = ("open_cases", "waiting", "waiting_share", "overdue")
# A log whose last event is this close to the meeting a report is made for covers it (nothing need happen in the
# night before a 06:00 build, or over a weekend before it).
LOG_REACHES = timedelta(days=7)
# A forecast to a meeting closer than this says nothing the report's own figures do not: it goes to the one after.
MIN_HORIZON = timedelta(days=14)


@dataclass(frozen=True)
class Counted:
    """The state figures at an instant, counted as the forecast counts them (domain/forecast.py `_tally`): a case
    counts for the kommune it is in, an overdue task for the kommune it waits on."""

    at: datetime
    total: dict[str, float]
    kommuner: dict[str, dict[str, float]]


def counted(snap: Snapshot) -> Counted:
    def empty() -> dict[str, float]:
        return {"open_cases": 0, "waiting": 0, "overdue": 0}

    total = empty()
    per: dict[str, dict[str, float]] = {}
    for case in snap.cases:
        place = per.setdefault(case.kommune_kode, empty())
        total["open_cases"] += 1
        place["open_cases"] += 1
        if case.task_kommune is not None:
            total["waiting"] += 1
            place["waiting"] += 1
            if case.task_deadline_at is not None and case.task_deadline_at <= snap.as_of:
                total["overdue"] += 1
                per.setdefault(case.task_kommune, empty())["overdue"] += 1
    for figures in [total, *per.values()]:
        figures["waiting_share"] = round(figures["waiting"] / figures["open_cases"], 4) if figures["open_cases"] else 0
    return Counted(snap.as_of, total, per)


@dataclass(frozen=True)
class Backcast:
    """Last quarter's forecast (made at the previous meeting for this one) and what the log shows at this one."""

    forecast: Forecast
    actual: Counted

    def inside(self, name: str, kode: str | None = None) -> bool:
        """Whether the actual value fell inside the forecast's 80 % interval."""
        b = getattr(self.forecast.total if kode is None else self.forecast.kommuner[kode], name)
        value = (self.actual.total if kode is None else self.actual.kommuner.get(kode, {})).get(name, 0)
        return bool(b.p10 <= value <= b.p90)


@dataclass(frozen=True)
class Outlook:
    runs: int
    seed: int
    forecast: Forecast | None = None  # None: the quarter has no data to forecast from
    now: Counted | None = None  # the state the forecast starts from
    backcast: Backcast | None = None  # None in the first report, or when the previous meeting precedes the log
    previous_meeting: datetime | None = None  # when there is no backcast: the meeting it would have started from
    trend: list[QuarterFigures] = field(default_factory=list)  # oldest first, only quarters with data
    at_meeting: bool = False  # the forecast starts at the meeting the report is made for (else: at the log's end)

    @property
    def forum(self) -> tuple[str, ...]:
        return FORUM_KOMMUNER


def meetings_up_to(t: datetime) -> list[datetime]:
    """The last two forum meetings at or before `t`, oldest first (the forum meets quarterly: 200 days back reach
    two of them)."""
    out: list[datetime] = []
    meeting = next_forum_meeting(t - timedelta(days=200))
    while meeting <= t:
        out.append(meeting)
        meeting = next_forum_meeting(meeting)
    return out[-2:]


def trend(log: LogAt, quarter: Quarter, known: Sequence[QuarterFigures]) -> list[QuarterFigures]:
    """The report's quarter and up to seven before it that the log covers, oldest first; `known` are quarters
    already computed (the report's and the previous), reused rather than folded again."""
    by_label = {f.quarter: f for f in known}
    out: list[QuarterFigures] = []
    q = quarter
    for _ in range(TREND_QUARTERS):
        if log.span.first_at is None or q.end <= log.span.first_at:
            break
        figures = by_label.get(q.label) or compute(log.timelines, q, log.span)
        if figures.has_data:
            out.append(figures)
        q = q.previous()
    return out[::-1]


def presented_at(quarter: Quarter) -> datetime:
    """The forum meeting a quarter's report is made for: the first after the quarter (the schedule builds it there,
    at 06:00, workflows/report.py)."""
    return next_forum_meeting(quarter.end - timedelta(microseconds=1))


def starting_point(quarter: Quarter, last_event_at: datetime) -> datetime:
    """Where the report's forecast starts: the meeting the report is made for, when the log reaches (nearly) to it;
    otherwise the log's last event, so that weeks the log does not cover are not read as weeks without intake."""
    meeting = presented_at(quarter)
    return meeting if last_event_at >= meeting - LOG_REACHES else last_event_at


def target_of(start: datetime) -> datetime:
    """The next forum meeting after `start`, or the one after it when that is too close to say anything about."""
    target = next_forum_meeting(start)
    return target if target - start >= MIN_HORIZON else next_forum_meeting(target)


async def outlook_of(
    store: ForecastStore,
    log: LogAt,
    quarter: Quarter,
    current: QuarterFigures,
    known: Sequence[QuarterFigures],
    *,
    runs: int = REPORT_FORECAST_RUNS,
) -> Outlook:
    """The section for a report of `quarter` at the log position `log.position`; the simulations run in a thread so
    that a worker's event loop (the report activity) keeps answering while they do."""
    seed = REPORT_FORECAST_SEED
    history = trend(log, quarter, known)
    if not current.has_data or log.span.first_at is None or log.span.last_at is None:
        return Outlook(runs, seed, trend=history)
    start = starting_point(quarter, log.span.last_at)
    data = await store.read(start, log.position)
    ahead = await asyncio.to_thread(run_forecast, data, target_of(start), runs=runs, seed=seed)
    backcast, previous_meeting = None, None
    meetings = meetings_up_to(start)
    if len(meetings) == 2:
        made, due = meetings
        previous_meeting = made
        if log.span.first_at < made:
            then = await store.read(made, log.position)
            if then.events_read:
                past = await asyncio.to_thread(run_forecast, then, due, runs=runs, seed=seed)
                actual = counted((await store.read(due, log.position)).snapshot)
                backcast = Backcast(past.baseline, actual)
    return Outlook(
        runs,
        seed,
        forecast=ahead.baseline,
        now=counted(data.snapshot),
        backcast=backcast,
        previous_meeting=previous_meeting,
        trend=history,
        at_meeting=start == presented_at(quarter),
    )
