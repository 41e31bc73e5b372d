"""`sagsflow simulate --start 2021-01-01 --weeks 52 --rate 300 --seed 1`: a simulated year through the real
workflows on the time-skipping test server, writing the real event log in business time (sim/simulation.py and
sim/shards.py have the how; this module is the command and its output). A progress bar while it runs, a summary at
the end; `--out DIR` also writes summary.json and the quarterly report of every quarter the run covers.

The run writes into an embedded PostgreSQL of its own, kept under the data dir by run name (`--name`; `--list` shows
the kept runs) for `sagsflow report quarterly|backlog --simulation NAME`, never into DATABASE_URL: only an explicit
`--database-url` writes elsewhere, and a database that holds events no simulation wrote is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer

from runtime import services
from runtime.config import get_settings
from runtime.eventloop import run_fast
from sim.behaviour import parse_regime
from sim.shards import quarters_covered, run_simulation
from sim.simulation import (
    RUN_FILE,
    SimulationOptions,
    SimulationSummary,
    default_run_name,
    event_log,
    kept_simulation,
    kept_simulations,
)
from workers.worker import build_worker


def print_runs(runs: list[tuple[str, dict[str, Any]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not runs:
        typer.echo("no simulation is kept: `sagsflow simulate` makes one")
        return
    table = Table(title="Kept simulations")
    for column in ("name", "start", "weeks", "rate/week", "seed", "cases", "events"):
        table.add_column(column, no_wrap=True)
    for run_name, run in runs:
        figures = [run.get(k) for k in ("start", "weeks", "rate_per_week", "seed", "cases_started", "events_written")]
        table.add_row(run_name, *("-" if v is None else str(v) for v in figures))
    Console().print(table)


def print_summary(summary: SimulationSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Simulation {summary.start} + {summary.weeks} weeks at {summary.rate_per_week:g}/week")
    table.add_column("figure")
    table.add_column("value", justify="right")
    share = summary.waiting_share
    rows = [
        ("cases started", f"{summary.cases_started:,}"),
        ("decided", f"{summary.decided:,}"),
        ("  granted / rejected / formal", f"{summary.granted} / {summary.rejected} / {summary.rejected_formal}"),
        ("closed", f"{summary.closed:,}"),
        ("open", f"{summary.open:,}"),
        ("open, waiting on kommuner", f"{summary.open_waiting_on_kommune:,}"),
        ("waiting on kommuner, share of open", f"{share:.0%}" if share is not None else "-"),
        ("tasks delivered", f"{summary.tasks_delivered:,}"),
        ("events written", f"{summary.events_written:,}"),
        ("log position", f"{summary.log_position:,}"),
        ("first / last application", f"{summary.first_received_at} / {summary.last_received_at}"),
        ("wall time", f"{summary.wall_seconds:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


async def _run_cli(
    options: SimulationOptions, database_url: str | None, keep_in: Path | None, out: Path | None
) -> SimulationSummary:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        TextColumn("week {task.fields[week]:.1f} of {task.fields[total_weeks]}"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("weeks", total=options.weeks * 7.0, week=0.0, total_weeks=options.weeks)

        def progress(days: float) -> None:
            bar.update(task, completed=days, week=days / 7)

        async with event_log(database_url, keep_in=keep_in) as dsn:
            summary = await run_simulation(options, worker=build_worker, database_url=dsn, progress=progress)
            if out is not None:
                from reports.build import build_and_write
                from reports.quarterly import parse_quarter

                await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
                for label in quarters_covered(options):
                    await build_and_write(dsn, parse_quarter(label), out / label)
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=1) + "\n")
    return summary


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        start: datetime = typer.Option("2021-01-01", "--start", formats=["%Y-%m-%d"], help="First business day"),
        weeks: int = typer.Option(52, "--weeks", min=1, max=520, help="Simulated weeks"),
        rate: float = typer.Option(300.0, "--rate", min=0.1, help="Applications per week (Poisson)"),
        seed: int = typer.Option(1, "--seed", help="Same seed, same simulation"),
        # Deliberately not read from DATABASE_URL: in a production pod (or a shell that sourced .sagsflow/env) that
        # names the real event log, and a simulated year must never be written into it by accident.
        database_url: str | None = typer.Option(
            None,
            "--database-url",
            help="Write into this database (it must hold no events but simulations'); default: an embedded"
            " PostgreSQL kept under $SAGSFLOW_DATA_DIR/simulations/NAME",
        ),
        name: str | None = typer.Option(
            None, "--name", help="The kept run's name (default <start>-<weeks>w-seed<seed>), for --simulation NAME"
        ),
        replace: bool = typer.Option(False, "--replace", help="Replace a kept run of the same name"),
        list_runs: bool = typer.Option(False, "--list", help="List the kept runs and stop"),
        out: Path | None = typer.Option(None, "--out", help="Write summary.json and the quarterly reports here"),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object"),
        shards: int = typer.Option(
            0, "--shards", min=0, help="Test servers, one per share of the applications (0: one per 150)"
        ),
        jobs: int = typer.Option(0, "--jobs", min=0, help="Shards run at once, in processes (0: one per core)"),
        regime: list[str] = typer.Option(
            [],
            "--regime",
            help="A change of behaviour from a date (Copenhagen; DATE..DATE for a span, both days included), may be"
            " repeated: '2021-07-01:kommune=329:speed=0.5' (kommune 329 answers the tasks it receives at half"
            " speed), '2021-10-01..2021-12-31:intake=1.3' (30% more applications)",
        ),
    ) -> None:
        """Simulate applications through the real workflows in Temporal time, writing the real event log."""
        from runtime.logs import configure_logging

        # A simulation is never production, even in a production pod: it writes only a log of its own (see above)
        # under keys of its own in the data dir. Its shard processes inherit this.
        os.environ["SAGSFLOW_ENV"] = "development"
        get_settings.cache_clear()
        configure_logging("WARNING", get_settings().log_format)
        data_dir = get_settings().data_dir
        if list_runs:
            print_runs(kept_simulations(data_dir))
            return
        try:
            regimes = tuple(parse_regime(text) for text in regime)
            options = SimulationOptions(
                start=date.fromordinal(start.toordinal()),
                weeks=weeks,
                rate_per_week=rate,
                seed=seed,
                shards=shards,
                jobs=jobs,
                regimes=regimes,
            )
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        run_name = name or default_run_name(options)
        keep_in: Path | None = None
        if database_url is not None:
            services.database_url(get_settings(), explicit=database_url)  # an unreachable one is named as given
        else:
            try:
                keep_in = kept_simulation(data_dir, run_name)
            except ValueError as exc:
                typer.echo(f"--name: {exc}", err=True)
                raise typer.Exit(2) from None
            if keep_in.exists() and not replace:
                typer.echo(
                    f"simulate: a run named {run_name!r} is kept already ({keep_in}): choose another --name, or"
                    " --replace it",
                    err=True,
                )
                raise typer.Exit(1)
        try:
            summary = run_fast(_run_cli(options, database_url, keep_in, out))
        except ValueError as exc:
            typer.echo(f"simulate: {exc}", err=True)
            raise typer.Exit(1) from None
        if keep_in is not None:
            (keep_in / RUN_FILE).write_text(json.dumps({"name": run_name, **summary.as_dict()}, indent=1) + "\n")
        if json_out:
            typer.echo(json.dumps(summary.as_dict()))
            return
        print_summary(summary)
        if keep_in is not None:
            first = quarters_covered(options)[0]
            typer.echo(
                f"Kept as {run_name!r} in {keep_in}. Its quarterly report: sagsflow report quarterly {first}"
                f" --simulation {run_name}; its backlog: sagsflow report backlog --simulation {run_name}"
            )
