"""Questions the forum and operations ask, answered from the `case_views` projection.

Business time is `occurred_at`. "As of T" means: each case folded over its events up to the first one stamped after
T (see `eventlog.projections`); `at=None` means the current state. Weeks are ISO weeks and quarters calendar quarters,
both in Danish time (Europe/Copenhagen). Each answer is as of the projection's tracking position, which
`projection_position` gives (a report records it so that it can be reproduced).

`tests/eventlog/naive.py` computes every one of these by folding the raw log; the tests check that they agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import asyncpg

from eventlog.db import Conn, Db
from eventlog.projections import dekad_start, projection_position

__all__ = [
    "BacklogRow",
    "CaseBacklogRow",
    "PeriodCount",
    "WaitingTask",
    "case_backlog",
    "period_counts",
    "projection_lag",
    "projection_position",
    "snapshot",
    "task_backlog",
    "waiting_tasks",
]

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


@asynccontextmanager
async def snapshot(pool: asyncpg.Pool) -> AsyncIterator[tuple[Conn, int]]:
    """A read-only REPEATABLE READ transaction and the projection position it sees: every query run on that
    connection answers as of that one position, so a report built in it can name the position and be reproduced."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn, await projection_position(conn)


async def projection_lag(db: Db) -> int:
    """Events in the log that the projection has not applied yet (a metric: should hover near 0)."""
    lag = await db.fetchval(
        "SELECT coalesce((SELECT max(global_position) FROM events), 0) - position"
        " FROM projection_positions WHERE name = 'case_views'"
    )
    return int(lag)


async def task_kommune(db: Db, task_id: str) -> str | None:
    """The kommune a task is addressed to, as the projection knows it (None: not projected yet, or no such task).
    A task's kommune never changes (a returned task is re-routed as a new task), so a row of any status answers."""
    kode: str | None = await db.fetchval("SELECT kommune_kode FROM task_intervals WHERE task_id = $1 LIMIT 1", task_id)
    return kode


LAST_BUCKETED_INSTANT = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


def _as_of(deltas: str, intervals: str, flag: str, group: str, at: datetime) -> tuple[str, list[Any]]:
    """The boundary deltas (+1/-1 per interval start/end, per group) stamped at or before `at`, as one UNION ALL, and
    its arguments.

    Whole years before `at`'s (UTC) come from the 'y' rows. Within the year, the months before `at`'s are summed
    either forwards (the 'm' rows from January up) or backwards (the year's own 'y' row, less the 'm' rows from
    `at`'s month to December), whichever reads fewer buckets; the same for the ten-day blocks in the month ('t'),
    the days in the block ('d') and, within `at`'s own day, the interval boundaries themselves (forwards from
    midnight, or the day's 'd' row less those after `at`). At 30 M events every kommune has boundaries every day and
    every hour, so the rows read, not the number of events, set the cost: at most 5 + 6 + 2 + 5 buckets per group
    and half a day of boundaries, where days alone and midnight-forwards read up to 30 days and a whole day.
    """
    # The bucket arithmetic below looks up to a year past `at`, which `date` cannot do in the year 9999. No event is
    # stamped that late, so every boundary lies before this instant and the answer is the same.
    at = min(at, LAST_BUCKETED_INSTANT)
    args: list[Any] = [at]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    def rows(grain: str, lo: date, hi: date | None = None, sign: str = "") -> str:
        where = f"bucket = {arg(lo)}" if hi is None else f"bucket >= {arg(lo)} AND bucket < {arg(hi)}"
        return f"SELECT {group}, {sign}delta FROM {deltas} WHERE grain = '{grain}' AND {where}"

    def edges(column: str, one: int, where: str) -> str:
        return f"SELECT {group}, {one} FROM {intervals} WHERE {flag} AND {column} {where}"

    day = at.astimezone(UTC).date()
    year, month, block = day.replace(month=1, day=1), day.replace(day=1), dekad_start(day)
    next_year, next_month = date(day.year + 1, 1, 1), _next_month(day)
    next_block = next_month if block.day == 21 else block.replace(day=block.day + 10)
    parts = [rows("y", date.min, year)]  # first: it names the columns (group..., delta)
    for parent_grain, parent, grain, start, mine, end, before, after in (
        ("y", year, "m", year, month, next_year, month.month - 1, 13 - month.month),
        ("m", month, "t", month, block, next_month, (block.day - 1) // 10, 3 - (block.day - 1) // 10),
        ("t", block, "d", block, day, next_block, (day - block).days, (next_block - day).days),
    ):
        if before <= 1 + after:
            if before:
                parts.append(rows(grain, start, mine))
        else:
            parts += [rows(parent_grain, parent), rows(grain, mine, end, sign="-")]
    midnight = datetime.combine(day, time(), UTC)
    if at - midnight <= timedelta(hours=12):
        t0 = arg(midnight)
        parts += [
            edges("valid_from", 1, f">= {t0} AND valid_from <= $1"),
            edges("valid_to", -1, f">= {t0} AND valid_to <= $1"),
        ]
    else:
        t1 = arg(midnight + timedelta(days=1))
        parts += [
            rows("d", day),
            edges("valid_from", -1, f"> $1 AND valid_from < {t1}"),
            edges("valid_to", 1, f"> $1 AND valid_to < {t1}"),
        ]
    return " UNION ALL ".join(parts), args


async def task_backlog(db: Db, at: datetime | None = None) -> list[BacklogRow]:
    """Open tasks per kommune and task status, now or as of `at`."""
    if at is None:
        rows = await db.fetch(
            "SELECT kommune_kode, status, count(*) AS tasks, count(*) FILTER (WHERE overdue) AS overdue"
            " FROM task_intervals WHERE valid_to IS NULL AND is_open"
            " GROUP BY kommune_kode, status ORDER BY kommune_kode, status"
        )
    else:
        union, args = _as_of("task_deltas", "task_intervals", "is_open", "kommune_kode, status, overdue", at)
        rows = await db.fetch(
            "SELECT kommune_kode, status, sum(delta) AS tasks,"
            " coalesce(sum(delta) FILTER (WHERE overdue), 0) AS overdue"
            f" FROM ({union}) d GROUP BY kommune_kode, status HAVING sum(delta) <> 0 ORDER BY kommune_kode, status",
            *args,
        )
    return [BacklogRow(r["kommune_kode"], r["status"], int(r["tasks"]), int(r["overdue"])) for r in rows]


async def case_backlog(db: Db, at: datetime | None = None) -> list[CaseBacklogRow]:
    """Active cases per kommune and case status, now or as of `at`."""
    if at is None:
        rows = await db.fetch(
            "SELECT kommune_kode, status, count(*) AS cases FROM case_intervals WHERE valid_to IS NULL AND is_active"
            " GROUP BY kommune_kode, status ORDER BY kommune_kode, status"
        )
    else:
        union, args = _as_of("case_deltas", "case_intervals", "is_active", "kommune_kode, status", at)
        rows = await db.fetch(
            "SELECT kommune_kode, status, sum(delta) AS cases"
            f" FROM ({union}) d GROUP BY kommune_kode, status HAVING sum(delta) <> 0 ORDER BY kommune_kode, status",
            *args,
        )
    return [CaseBacklogRow(r["kommune_kode"], r["status"], int(r["cases"])) for r in rows]


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
    run from request to completion, their median and p90 as eventlog.figures defines them (unrounded here).
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
    where = " AND ".join(conditions)
    # As a timestamp without time zone, a date truncates without a time-zone lookup per row.
    bucket = f"date_trunc('{period}', local_date::timestamp)::date"
    # The counts hash-aggregate over every fact; only the answers (answer_days is set on OplysningCompleted alone,
    # about a sixth of the facts) are sorted for their median and p90. One aggregate over all the facts sorted all of
    # them by period and kommune, spilling to disk at a quarter of a 30 M-event log.
    rows = await db.fetch(
        "SELECT c.*, a.median_answer_days, a.p90_answer_days FROM ("
        f"SELECT {bucket} AS period_start, {kommune} AS kommune_kode,"
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
        " count(*) FILTER (WHERE type = 'ApplicationWithdrawn') AS withdrawn"
        f" FROM event_facts WHERE {where} GROUP BY 1, 2) c LEFT JOIN ("
        f"SELECT {bucket} AS period_start, {kommune} AS kommune_kode,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY answer_days) AS median_answer_days,"
        # p90 by nearest rank, as eventlog.figures.p90 defines it (percentile_cont would interpolate).
        " percentile_disc(0.9) WITHIN GROUP (ORDER BY answer_days) AS p90_answer_days"
        f" FROM event_facts WHERE {where} AND answer_days IS NOT NULL GROUP BY 1, 2) a"
        # kommune_kode is NULL in the totals (and in a fact without a kommune): matched as equal, hashably.
        " ON a.period_start = c.period_start AND coalesce(a.kommune_kode, '') = coalesce(c.kommune_kode, '')"
        " ORDER BY 1, 2",
        *args,
    )
    out = []
    for r in rows:
        d = dict(r)
        ps = d.pop("period_start")
        out.append(PeriodCount(period=_label(period, ps), **d))
    return out


def _label(period: Period, bucket_start: date) -> str:
    if period == "week":
        year, week, _ = bucket_start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{bucket_start.year}-Q{(bucket_start.month - 1) // 3 + 1}"
