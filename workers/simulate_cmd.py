"""`sagsflow simulate --start 2021-01-01 --weeks 52 --rate 300 --seed 1`: a simulated year through the real
workflows on the time-skipping test server, writing the real event log in business time (sim/simulation.py has
the how). A progress bar while it runs, a summary at the end; `--out DIR` also writes summary.json and the
quarterly report of every quarter the run covers (the embedded database is gone after the run).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from sagsflow.crypto import KeyRing
from sagsflow.embedded import venv_binary
from sagsflow.temporal import data_converter
from sim.load import ApplicationFactory
from sim.profiles import default_profiles
from sim.simulation import (
    ProgressFn,
    SimActivities,
    SimKommuneChannel,
    SimulationOptions,
    SimulationSummary,
    event_log,
    refuse_reused_database,
    register_search_attributes,
    summarise,
)
from sim.temporal_driver import WEEK, ArrivalsWorkflow, ArrivalWeek, KommuneSimWorkflow
from workers.worker import build_worker

# The simulation runs the real workflow code without the sandbox. The sandbox re-imports every workflow module for
# each workflow run and guards determinism; it cost half the worker's CPU here. Determinism is what the replay tests
# (tests/workflows/test_replay.py, under the sandbox) and production workers guard. A year keeps thousands of
# workflows waiting at once: all stay cached, since an evicted one is replayed from its history when it wakes.
SIM_WORKER_OPTIONS: dict[str, Any] = {
    "workflow_runner": UnsandboxedWorkflowRunner(),
    "max_cached_workflows": 100_000,
}


async def run_simulation(
    options: SimulationOptions,
    *,
    database_url: str | None = None,
    progress: ProgressFn | None = None,
    env: WorkflowEnvironment | None = None,
    key_ring: KeyRing | None = None,
) -> SimulationSummary:
    """Run the simulation; `env` reuses a running time-skipping environment (tests), else one is started."""
    began = time.perf_counter()
    async with event_log(database_url) as dsn:
        await refuse_reused_database(dsn, options.seed)
        if env is not None:
            summary = await simulate_on(env, dsn, options, progress)
        else:
            own = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=venv_binary("temporal-test-server"),
                data_converter=data_converter(key_ring or KeyRing.generate("simulate")),
            )
            try:
                summary = await simulate_on(own, dsn, options, progress)
            finally:
                await own.shutdown()
        await summarise(dsn, options, summary)
    summary.wall_seconds = round(time.perf_counter() - began, 2)
    return summary


async def simulate_on(
    env: WorkflowEnvironment, dsn: str, options: SimulationOptions, progress: ProgressFn | None = None
) -> SimulationSummary:
    """The run itself on a time-skipping environment and a migrated database (no summary counts yet)."""
    from eventlog.store import create_pool

    client = env.client
    await register_search_attributes(client)
    offset = (options.business_start - await env.get_current_time()).total_seconds()
    task_queue = f"simulate-{uuid.uuid4().hex[:8]}"
    channel = SimKommuneChannel(
        client, task_queue, default_profiles(speed=options.kommune_speed), seed=options.seed, offset_seconds=offset
    )
    acts = SimActivities(client, task_queue, ApplicationFactory(options.seed))
    summary = SimulationSummary(
        start=options.start.isoformat(), weeks=options.weeks, rate_per_week=options.rate_per_week, seed=options.seed
    )
    pool = await create_pool(dsn, max_size=10)
    try:
        worker = build_worker(
            client,
            pool,
            task_queue=task_queue,
            kommune=channel,
            activities=[acts.start_sim_case, acts.sim_call],
            workflows=[ArrivalsWorkflow, KommuneSimWorkflow],
            **SIM_WORKER_OPTIONS,
        )
        async with worker:
            n = 1
            for week in range(options.weeks):
                handle = await client.start_workflow(
                    ArrivalsWorkflow.run,
                    ArrivalWeek(
                        seed=options.seed,
                        week=week,
                        week_start=options.business_start + week * WEEK,
                        rate_per_week=options.rate_per_week,
                        first_n=n,
                        offset_seconds=offset,
                    ),
                    id=f"sim-arrivals-{options.seed}-{week}-{task_queue}",
                    task_queue=task_queue,
                )
                # The clock: the test server skips exactly this much time, firing every timer on the way
                # (arrivals, kommune actions, reminders, deadlines, decisions), then locks again. A workflow that
                # ended each week instead let the clock run on between its completion and the client's re-lock.
                for day in range(7):
                    await env.sleep(timedelta(days=1))
                    if progress:
                        progress(week * 7.0 + day + 1)
                with env.auto_time_skipping_disabled():
                    result = await handle.result()
                n = result.next_n
                summary.max_arrival_late_seconds = max(summary.max_arrival_late_seconds, result.max_late_seconds)
    finally:
        await pool.close()
    summary.tasks_delivered = len(channel.delivered)
    summary.kommune_notices = sum(channel.notices.values())
    return summary


def quarters_covered(options: SimulationOptions) -> list[str]:
    out: list[str] = []
    day = options.start
    last = options.start + timedelta(days=7 * options.weeks - 1)
    while day <= last:
        label = f"{day.year}Q{(day.month - 1) // 3 + 1}"
        if label not in out:
            out.append(label)
        day += timedelta(days=28)
    end_label = f"{last.year}Q{(last.month - 1) // 3 + 1}"
    if end_label not in out:
        out.append(end_label)
    return out


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


async def _run_cli(options: SimulationOptions, database_url: str | None, out: Path | None) -> SimulationSummary:
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

        if out is None:
            return await run_simulation(options, database_url=database_url, progress=progress)
        from reports.build import build_and_write
        from reports.quarterly import parse_quarter

        # The reports are built inside the run, while the (possibly embedded) database still exists.
        async with event_log(database_url) as dsn:
            summary = await run_simulation(options, database_url=dsn, progress=progress)
            await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
            for label in quarters_covered(options):
                await build_and_write(dsn, parse_quarter(label), out / label)
        (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=1) + "\n")
        return summary


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        start: datetime = typer.Option("2021-01-01", "--start", formats=["%Y-%m-%d"], help="First business day"),
        weeks: int = typer.Option(52, "--weeks", min=1, max=520, help="Simulated weeks"),
        rate: float = typer.Option(300.0, "--rate", min=0.1, help="Applications per week (Poisson)"),
        seed: int = typer.Option(1, "--seed", help="Same seed, same simulation"),
        database_url: str | None = typer.Option(
            None, "--database-url", envvar="DATABASE_URL", help="Event log (default: an embedded PostgreSQL)"
        ),
        out: Path | None = typer.Option(None, "--out", help="Write summary.json and the quarterly reports here"),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object"),
    ) -> None:
        """Simulate applications through the real workflows in Temporal time, writing the real event log."""
        from sagsflow.config import get_settings
        from sagsflow.logs import configure_logging

        configure_logging("WARNING", get_settings().log_format)
        try:
            options = SimulationOptions(
                start=date.fromordinal(start.toordinal()), weeks=weeks, rate_per_week=rate, seed=seed
            )
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        try:
            summary = asyncio.run(_run_cli(options, database_url, out))
        except ValueError as exc:
            typer.echo(f"simulate: {exc}", err=True)
            raise typer.Exit(1) from None
        if json_out:
            typer.echo(json.dumps(summary.as_dict()))
        else:
            print_summary(summary)
