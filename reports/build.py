"""Build a quarterly report from the event log at a fixed log position (so it can be rebuilt byte for byte)."""

from __future__ import annotations

from pathlib import Path

from eventlog.figures import FigureStore
from eventlog.forecast import ForecastStore
from eventlog.store import create_pool
from reports.outlook import REPORT_FORECAST_RUNS, outlook_of
from reports.quarterly import Quarter, compute
from reports.render import QuarterlyReport, write_report


class PositionBeyondLog(ValueError):
    """A report named after a position the log has not reached would change as the log grows: refused."""


async def build_quarterly_from(
    figures: FigureStore,
    quarter: Quarter,
    *,
    position: int | None = None,
    forecast_runs: int = REPORT_FORECAST_RUNS,
) -> QuarterlyReport:
    head = await figures.head_position()
    if position is not None and position > head:
        raise PositionBeyondLog(f"the event log ends at position {head}")
    log = await figures.log_at(position if position is not None else head)
    current = compute(log.timelines, quarter, log.span)
    previous = compute(log.timelines, quarter.previous(), log.span)
    outlook = await outlook_of(
        ForecastStore(figures.pool), log, quarter, current, [current, previous], runs=forecast_runs
    )
    return QuarterlyReport(
        current=current,
        previous=previous,
        log_position=log.position,
        event_count=log.event_count,
        span=log.span,
        outlook=outlook,
    )


async def build_quarterly(
    dsn: str, quarter: Quarter, *, position: int | None = None, forecast_runs: int = REPORT_FORECAST_RUNS
) -> QuarterlyReport:
    # One connection is all a build uses; the pool gives it the event log's own codecs.
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        return await build_quarterly_from(FigureStore(pool), quarter, position=position, forecast_runs=forecast_runs)
    finally:
        await pool.close()


async def build_and_write(dsn: str, quarter: Quarter, out: Path, *, position: int | None = None) -> list[Path]:
    return write_report(await build_quarterly(dsn, quarter, position=position), out)
