"""The reference answers: every query of `eventlog.queries`, computed by folding the raw log in memory.

Slow on purpose and written independently of the projection where it can be: counts and kommune attribution come
straight from the events, backlogs from `domain.evolve` over each case's events up to the moment asked about. The
tests hold the projection to these answers, and `bench/eventlog.py` measures what the projection saves.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from domain.events import (
    ApplicationReceived,
    ApplicationWithdrawn,
    CaseTransferred,
    DecisionMade,
    Event,
    KommuneReminderSent,
    OplysningCancelled,
    OplysningCompleted,
    OplysningDeadlineExtended,
    OplysningOverdue,
    OplysningRequested,
    OplysningReturned,
)
from domain.state import OPEN_TASK_STATUSES, CaseState, CaseStatus, evolve
from eventlog.queries import BacklogRow, CaseBacklogRow, Period, PeriodCount, WaitingTask

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
ACTIVE = {CaseStatus.RECEIVED, CaseStatus.PRESCREENED, CaseStatus.AWAITING_KOMMUNE, CaseStatus.READY_FOR_DECISION}


def percentile_cont(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    v = sorted(values)
    pos = p * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def percentile_disc(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_disc: the first value whose rank reaches p of them (nearest rank)."""
    if not values:
        return None
    v = sorted(values)
    return v[max(1, math.ceil(p * len(v))) - 1]


def period_label(period: Period, at: datetime) -> str:
    local = at.astimezone(COPENHAGEN)
    if period == "week":
        iso = local.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


class NaiveLog:
    def __init__(self, events: Iterable[Event]) -> None:
        """`events` in global order."""
        self.events = list(events)
        self.streams: dict[str, list[Event]] = defaultdict(list)
        for e in self.events:
            self.streams[e.case_id].append(e)

    def states(self, at: datetime | None = None) -> dict[str, CaseState]:
        out = {}
        for case_id, stream in self.streams.items():
            s = CaseState()
            for e in stream:
                if at is not None and e.occurred_at > at:
                    break
                s = evolve(s, e)
            if s.status is not CaseStatus.NEW:
                out[case_id] = s
        return out

    def task_backlog(self, at: datetime | None = None) -> list[BacklogRow]:
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for s in self.states(at).values():
            for t in s.tasks.values():
                if t.status in OPEN_TASK_STATUSES:
                    c = counts[(t.kommune_kode, t.status.value)]
                    c[0] += 1
                    c[1] += t.overdue
        return sorted(BacklogRow(k, st, n, o) for (k, st), (n, o) in counts.items())

    def case_backlog(self, at: datetime | None = None) -> list[CaseBacklogRow]:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for s in self.states(at).values():
            if s.status in ACTIVE and s.closed_at is None:
                assert s.kommune_kode is not None
                counts[(s.kommune_kode, s.status.value)] += 1
        return sorted(CaseBacklogRow(k, st, n) for (k, st), n in counts.items())

    def waiting_tasks(self, at: datetime) -> list[WaitingTask]:
        out = []
        for case_id, s in self.states(at).items():
            for t in s.tasks.values():
                if t.status in OPEN_TASK_STATUSES:
                    out.append(
                        WaitingTask(
                            kommune_kode=t.kommune_kode,
                            task_id=t.task_id,
                            case_id=case_id,
                            status=t.status.value,
                            overdue=t.overdue,
                            requested_at=t.requested_at,
                            deadline_at=t.deadline_at,
                            age_days=(at - t.requested_at).total_seconds() / 86400.0,
                        )
                    )
        return sorted(out, key=lambda w: (w.kommune_kode, w.requested_at, w.task_id))

    def period_counts(
        self,
        period: Period,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        by_kommune: bool = False,
    ) -> list[PeriodCount]:
        case_kommune: dict[str, str] = {}
        task_kommune: dict[str, str] = {}
        task_requested: dict[str, datetime] = {}
        task_deadline: dict[str, datetime] = {}
        groups: dict[tuple[str, str | None], dict[str, Any]] = {}
        answer_days: dict[tuple[str, str | None], list[float]] = defaultdict(list)

        for e in self.events:
            kommune: str | None = None
            column: str | None = None
            extra: dict[str, int] = {}
            days = None
            match e:
                case ApplicationReceived():
                    case_kommune[e.case_id] = kommune = e.kommune_kode
                    column = "intake"
                case CaseTransferred():
                    case_kommune[e.case_id] = kommune = e.to_kommune_kode
                    column = "transferred_in"
                case OplysningRequested():
                    task_kommune[e.task_id] = kommune = e.kommune_kode
                    task_requested[e.task_id] = e.occurred_at
                    task_deadline[e.task_id] = e.deadline_at
                    column = "requested"
                case OplysningDeadlineExtended():
                    kommune, column = task_kommune[e.task_id], "extensions"
                    task_deadline[e.task_id] = e.deadline_at
                case OplysningCompleted():
                    kommune, column = task_kommune[e.task_id], "answered"
                    days = (e.occurred_at - task_requested[e.task_id]).total_seconds() / 86400.0
                    extra["answered_on_time"] = int(e.occurred_at <= task_deadline[e.task_id])
                case OplysningReturned():
                    kommune, column = task_kommune[e.task_id], "returned"
                case OplysningCancelled():
                    kommune, column = task_kommune[e.task_id], "cancelled"
                case KommuneReminderSent():
                    kommune, column = task_kommune[e.task_id], "reminders"
                case OplysningOverdue():
                    kommune, column = task_kommune[e.task_id], "overdue"
                case DecisionMade():
                    kommune, column = case_kommune[e.case_id], "decisions"
                    extra[e.outcome.value] = 1
                case ApplicationWithdrawn():
                    kommune, column = case_kommune[e.case_id], "withdrawn"
            if column is None:
                continue
            if (start is not None and e.occurred_at < start) or (end is not None and e.occurred_at >= end):
                continue
            key = (period_label(period, e.occurred_at), kommune if by_kommune else None)
            g = groups.setdefault(key, defaultdict(int))
            g[column] += 1
            for k, v in extra.items():
                g[k] += v
            if days is not None:
                answer_days[key].append(days)
        return sorted(
            PeriodCount(
                period=p,
                kommune_kode=k,
                **g,
                median_answer_days=percentile_cont(answer_days[(p, k)], 0.5),
                p90_answer_days=percentile_disc(answer_days[(p, k)], 0.9),
            )
            for (p, k), g in groups.items()
        )
