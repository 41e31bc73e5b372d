"""Questions the forum and operations ask, answered from the `case_views` projection.

Business time is `occurred_at`. "As of T" means: each case folded over its events up to the first one stamped after
T (see `eventlog.projections`); `at=None` means the current state. Weeks are ISO weeks and quarters calendar quarters,
both in Danish time (Europe/Copenhagen). Each answer is as of the projection's tracking position, which
`projection_position` gives (a report records it so that it can be reproduced).

`eventlog.naive` computes every one of these by folding the raw log; the tests check that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from eventlog.db import Db
from eventlog.projections import projection_position

__all__ = [
    "BacklogRow",
    "CaseBacklogRow",
    "PeriodCount",
    "WaitingTask",
    "case_backlog",
    "period_counts",
    "projection_position",
    "task_backlog",
    "waiting_tasks",
]

TIME_ZONE = "Europe/Copenhagen"
Period = Literal["week", "quarter"]


@dataclass(frozen=True, order=True)
class BacklogRow:
    """Open kommune tasks of one kommune in one task status; `overdue` of them escalated past their deadline."""

    kommune_kode: str
    status: str
    tasks: int
    overdue: int


@dataclass(frozen=True, order=True)
class CaseBacklogRow:
    """Active (undecided, not withdrawn) cases of one kommune in one case status."""

    kommune_kode: str
    status: str
    cases: int


@dataclass(frozen=True, order=True)
class WaitingTask:
    kommune_kode: str
    task_id: str
    case_id: str
    status: str
    overdue: bool
    requested_at: datetime
    deadline_at: datetime
    age_days: float


@dataclass(frozen=True, order=True)
class PeriodCount:
    """Counts of one period (ISO week "2021-W09" or quarter "2021-Q1"), for one kommune or for all (None)."""

    period: str
    kommune_kode: str | None
    intake: int = 0
    requested: int = 0
    answered: int = 0
    answered_on_time: int = 0
    returned: int = 0
    reminders: int = 0
    overdue: int = 0
    extensions: int = 0
    cancelled: int = 0
    transferred_in: int = 0
    decisions: int = 0
    granted: int = 0
    rejected: int = 0
    rejected_formal: int = 0
    withdrawn: int = 0
    median_answer_days: float | None = None
    p90_answer_days: float | None = None


async def task_backlog(db: Db, at: datetime | None = None) -> list[BacklogRow]:
    """Open tasks per kommune and task status, now or as of `at`."""
    if at is None:
        where, args = "valid_to IS NULL AND is_open", []
    else:
        where, args = "is_open AND during @> $1::timestamptz", [at]
    rows = await db.fetch(
        "SELECT kommune_kode, status, count(*) AS tasks, count(*) FILTER (WHERE overdue) AS overdue"
        f" FROM task_intervals WHERE {where} GROUP BY kommune_kode, status ORDER BY kommune_kode, status",
        *args,
    )
    return [BacklogRow(r["kommune_kode"], r["status"], r["tasks"], r["overdue"]) for r in rows]


async def case_backlog(db: Db, at: datetime | None = None) -> list[CaseBacklogRow]:
    """Active cases per kommune and case status, now or as of `at`."""
    if at is None:
        where, args = "valid_to IS NULL AND is_active", []
    else:
        where, args = "is_active AND during @> $1::timestamptz", [at]
    rows = await db.fetch(
        "SELECT kommune_kode, status, count(*) AS cases"
        f" FROM case_intervals WHERE {where} GROUP BY kommune_kode, status ORDER BY kommune_kode, status",
        *args,
    )
    return [CaseBacklogRow(r["kommune_kode"], r["status"], r["cases"]) for r in rows]


async def waiting_tasks(db: Db, at: datetime) -> list[WaitingTask]:
    """Every task open as of `at`, with its age in days at that moment, oldest first within each kommune."""
    rows = await db.fetch(
        "SELECT kommune_kode, task_id, case_id, status, overdue, requested_at, deadline_at,"
        " extract(epoch FROM ($1::timestamptz - requested_at))::float8 / 86400.0 AS age_days"
        " FROM task_intervals WHERE is_open AND during @> $1::timestamptz"
        " ORDER BY kommune_kode, requested_at, task_id",
        at,
    )
    return [WaitingTask(**dict(r)) for r in rows]


async def period_counts(
    db: Db,
    period: Period,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    by_kommune: bool = False,
) -> list[PeriodCount]:
    """Counts per ISO week or quarter of events stamped in [start, end), overall or per kommune.

    intake = applications received, transferred_in = cases moved to the kommune, answered = tasks completed by
    the kommune (on time = by the deadline in force), decisions = DecisionMade (split by outcome); answer days
    run from request to completion.
    """
    if period not in ("week", "quarter"):
        raise ValueError("period must be 'week' or 'quarter'")
    kommune = "kommune_kode" if by_kommune else "NULL::text"
    conditions, args = ["true"], []
    if start is not None:
        args.append(start)
        conditions.append(f"occurred_at >= ${len(args)}")
    if end is not None:
        args.append(end)
        conditions.append(f"occurred_at < ${len(args)}")
    rows = await db.fetch(
        f"SELECT date_trunc('{period}', occurred_at AT TIME ZONE '{TIME_ZONE}') AS period_start,"
        f" {kommune} AS kommune_kode,"
        " count(*) FILTER (WHERE type = 'ApplicationReceived') AS intake,"
        " count(*) FILTER (WHERE type = 'OplysningRequested') AS requested,"
        " count(*) FILTER (WHERE type = 'OplysningCompleted') AS answered,"
        " count(*) FILTER (WHERE type = 'OplysningCompleted' AND on_time) AS answered_on_time,"
        " count(*) FILTER (WHERE type = 'OplysningReturned') AS returned,"
        " count(*) FILTER (WHERE type = 'KommuneReminderSent') AS reminders,"
        " count(*) FILTER (WHERE type = 'OplysningOverdue') AS overdue,"
        " count(*) FILTER (WHERE type = 'OplysningDeadlineExtended') AS extensions,"
        " count(*) FILTER (WHERE type = 'OplysningCancelled') AS cancelled,"
        " count(*) FILTER (WHERE type = 'CaseTransferred') AS transferred_in,"
        " count(*) FILTER (WHERE type = 'DecisionMade') AS decisions,"
        " count(*) FILTER (WHERE outcome = 'granted') AS granted,"
        " count(*) FILTER (WHERE outcome = 'rejected') AS rejected,"
        " count(*) FILTER (WHERE outcome = 'rejected_formal') AS rejected_formal,"
        " count(*) FILTER (WHERE type = 'ApplicationWithdrawn') AS withdrawn,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY answer_days) AS median_answer_days,"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY answer_days) AS p90_answer_days"
        " FROM event_facts"
        f" WHERE {' AND '.join(conditions)}"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        *args,
    )
    out = []
    for r in rows:
        d = dict(r)
        ps = d.pop("period_start")
        out.append(PeriodCount(period=_label(period, ps), **d))
    return out


def _label(period: Period, bucket_start: datetime) -> str:
    if period == "week":
        year, week, _ = bucket_start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{bucket_start.year}-Q{(bucket_start.month - 1) // 3 + 1}"
