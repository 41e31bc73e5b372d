"""`sagsflow report quarterly 2021Q1 --out DIR`: the Samarbejdsforum report from the event log."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from cli.unreachable import unreachable_message
from runtime import services
from runtime.config import get_settings
from sim.simulation import NoSimulationKept, kept_simulation

if TYPE_CHECKING:
    from eventlog.figures import Backlog

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    report = typer.Typer(help="Reports built from the event log.", no_args_is_help=True)

    @report.command("quarterly")
    def quarterly(
        quarter: str = typer.Argument(..., help="e.g. 2021Q1"),
        out: Path = typer.Option(Path("reports-out"), "--out", help="Folder for the HTML and CSV files"),
        position: int | None = typer.Option(None, "--position", help="Build at this event-log position"),
        simulation: str | None = typer.Option(
            None, "--simulation", help="From the log of this kept simulation run (`sagsflow simulate --list`)"
        ),
        forecast_runs: int = typer.Option(
            400,  # = reports.outlook.REPORT_FORECAST_RUNS, written out: reports/ is imported only to build one
            "--forecast-runs",
            min=1,
            max=100_000,
            help="Simulated futures behind the forecast to the next forum meeting (more: steadier bands, slower)",
        ),
    ) -> None:
        """Write the quarterly HTML report (inline charts) and one CSV per table."""
        from reports.build import PositionBeyondLog, build_quarterly
        from reports.quarterly import parse_quarter
        from reports.render import QuarterlyReport, write_report

        try:
            q = parse_quarter(quarter)
        except ValueError as exc:
            typer.echo(f"quarter: {exc}", err=True)
            raise typer.Exit(2) from None
        if position is not None and position < 0:
            typer.echo("--position: must be 0 or more", err=True)
            raise typer.Exit(2)
        # An unreachable database is reported by `cli.main`, in the same words as for every other command.
        try:
            report: QuarterlyReport = on_log(
                simulation, lambda dsn: build_quarterly(dsn, q, position=position, forecast_runs=forecast_runs)
            )
            written = write_report(report, out)
        except PositionBeyondLog as exc:
            typer.echo(f"--position: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            if unreachable_message(exc) is not None:
                raise
            typer.echo(f"could not build the report: {exc.strerror or type(exc).__name__}", err=True)
            raise typer.Exit(1) from None
        for path in written:
            typer.echo(str(path))
        # On stderr, so that stdout stays the list of files written.
        coverage = report.current.coverage.state
        note = {"none": "no events in the quarter: the report says 'ingen data'", "partial": "partly covered"}
        typer.echo(
            f"{q.label} at event-log position {report.log_position}"
            + (f" ({note[coverage]})" if coverage in note else "")
            + f"; rebuild it with --position {report.log_position}",
            err=True,
        )

    @report.command("backlog")
    def backlog(
        as_of: str | None = typer.Option(
            None, "--as-of", help="The backlog as it stood at this instant (ISO 8601 with an offset); default now"
        ),
        simulation: str | None = typer.Option(
            None, "--simulation", help="From the log of this kept simulation run (`sagsflow simulate --list`)"
        ),
        json_out: bool = typer.Option(False, "--json", help="One JSON object instead of tables"),
    ) -> None:
        """Open kommune tasks (and how many are overdue) and active cases per kommune and status, now or as of."""

        instant = _instant(as_of)
        figures = on_log(simulation, lambda dsn: backlog_of(dsn, instant))
        if json_out:
            typer.echo(json.dumps(dataclasses.asdict(figures) | {"as_of": instant.isoformat() if instant else None}))
            return
        print_backlog(figures, instant)

    app.add_typer(report, name="report")


def on_log(simulation: str | None, work: Callable[[str], Awaitable[T]]) -> T:
    """Run `work` on the event log at DATABASE_URL, or on a kept simulation's log (served for the while); a name
    no run is kept under is one line on stderr and exit 1."""
    from sim.simulation import kept_event_log

    settings = get_settings()

    async def run() -> T:
        if simulation is None:
            return await work(services.database_url(settings))
        async with kept_event_log(_kept(settings.data_dir, simulation)) as dsn:
            return await work(dsn)

    try:
        return asyncio.run(run())
    except NoSimulationKept as exc:
        typer.echo(f"--simulation: {exc}", err=True)
        raise typer.Exit(1) from None


def _kept(data_dir: Path, name: str) -> Path:
    try:
        return kept_simulation(data_dir, name)
    except ValueError as exc:
        typer.echo(f"--simulation: {exc}", err=True)
        raise typer.Exit(2) from None


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        instant = datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError:
        instant = None
    if instant is None or instant.utcoffset() is None:
        typer.echo("--as-of: expected an instant with an offset, e.g. 2021-03-31T23:59:59+02:00", err=True)
        raise typer.Exit(2)
    return instant


async def backlog_of(dsn: str, at: datetime | None) -> Backlog:
    """The backlog from a log's projections, brought up to date first (a kept simulation has none of its own)."""
    from eventlog.projections import ProjectionRunner
    from eventlog.stores import Stores

    stores = await Stores.connect(dsn, max_size=2)
    try:
        await ProjectionRunner(stores.pool).catch_up()
        return await stores.figures.backlog(at)
    finally:
        await stores.close()


def print_backlog(figures: Backlog, at: datetime | None) -> None:
    from rich.console import Console
    from rich.table import Table

    when = f"as of {at.isoformat()}" if at else "now"
    tasks = Table(title=f"Open kommune tasks, {when}")
    for column in ("kommune", "status", "tasks", "overdue"):
        tasks.add_column(column, justify="right" if column in ("tasks", "overdue") else "left")
    for row in figures.tasks:
        tasks.add_row(row.kommune_kode, row.status, str(row.tasks), str(row.overdue))
    cases = Table(title=f"Active cases, {when}")
    for column in ("kommune", "status", "cases"):
        cases.add_column(column, justify="right" if column == "cases" else "left")
    for case_row in figures.cases:
        cases.add_row(case_row.kommune_kode, case_row.status, str(case_row.cases))
    console = Console()
    console.print(tasks)
    console.print(cases)
