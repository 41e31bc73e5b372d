"""`sagsflow report quarterly 2021Q1 --out DIR`: the Samarbejdsforum report from the event log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from cli.unreachable import unreachable_message
from runtime import services
from runtime.config import get_settings


def register(app: typer.Typer) -> None:
    report = typer.Typer(help="Reports built from the event log.", no_args_is_help=True)

    @report.command("quarterly")
    def quarterly(
        quarter: str = typer.Argument(..., help="e.g. 2021Q1"),
        out: Path = typer.Option(Path("reports-out"), "--out", help="Folder for the HTML and CSV files"),
        position: int | None = typer.Option(None, "--position", help="Build at this event-log position"),
        simulation: bool = typer.Option(
            False, "--simulation", help="From the log the last `sagsflow simulate` kept, not DATABASE_URL's"
        ),
    ) -> None:
        """Write the quarterly HTML report (inline charts) and one CSV per table."""
        from reports.build import PositionBeyondLog, build_quarterly
        from reports.quarterly import parse_quarter
        from reports.render import QuarterlyReport, write_report
        from sim.simulation import NoSimulationKept, kept_event_log, kept_simulation

        try:
            q = parse_quarter(quarter)
        except ValueError as exc:
            typer.echo(f"quarter: {exc}", err=True)
            raise typer.Exit(2) from None
        if position is not None and position < 0:
            typer.echo("--position: must be 0 or more", err=True)
            raise typer.Exit(2)
        # An unreachable database is reported by `cli.main`, in the same words as for every other command.
        settings = get_settings()

        async def build() -> QuarterlyReport:
            if not simulation:
                return await build_quarterly(services.database_url(settings), q, position=position)
            async with kept_event_log(kept_simulation(settings.data_dir)) as dsn:
                return await build_quarterly(dsn, q, position=position)

        try:
            report = asyncio.run(build())
            written = write_report(report, out)
        except NoSimulationKept as exc:
            typer.echo(f"--simulation: {exc}", err=True)
            raise typer.Exit(1) from None
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

    app.add_typer(report, name="report")
