"""`sagsflow simulate --start 2021-01-01 --weeks 52 --rate 300 --seed 1`: a simulated year through the real
workflows on the time-skipping test server, writing the real event log in business time (sim/simulation.py has
the how). A progress bar while it runs, a summary at the end; `--out DIR` also writes summary.json and the
quarterly report of every quarter the run covers (the embedded database is gone after the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import threading
import time
import uuid
from collections.abc import Coroutine
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from runtime.crypto import KeyRing
from runtime.embedded import venv_binary
from runtime.temporal import data_converter
from sim import payload_visits
from sim.profiles import default_profiles
from sim.simulation import (
    ProgressFn,
    SimulationOptions,
    SimulationSummary,
    event_log,
    refuse_reused_database,
    register_search_attributes,
    summarise,
)
from sim.temporal_driver import Arrivals, SimulatedWorld, VirtualClock, drive
from workers.worker import build_worker

# The simulation runs the real workflow code without the sandbox. The sandbox re-imports every workflow module for
# each workflow run and guards determinism; it cost half the worker's CPU here. Determinism is what the replay tests
# (tests/workflows/test_replay.py, under the sandbox) and production workers guard. A year keeps thousands of
# workflows waiting at once: all stay cached, since an evicted one is replayed from its history when it wakes.
# `debug_mode` runs each activation on the event loop's thread instead of handing it to a thread and back (about 6%
# of a shard's CPU); what it gives up is the deadlock detector, which watches for workflow code that blocks, and
# that is the tests' and production workers' job too.
SIM_WORKER_OPTIONS: dict[str, Any] = {
    "workflow_runner": UnsandboxedWorkflowRunner(),
    "max_cached_workflows": 100_000,
    "debug_mode": True,
}
DAY = timedelta(days=1)
T = TypeVar("T")


async def run_simulation(
    options: SimulationOptions,
    *,
    database_url: str | None = None,
    progress: ProgressFn | None = None,
) -> SimulationSummary:
    """Run the simulation's shards, `options.job_count` at a time, each on a test server of its own, into one event
    log (the given database, else an embedded one for the run), then count the result from the log."""
    began = time.perf_counter()
    async with event_log(database_url) as dsn:
        await refuse_reused_database(dsn, options.seed)
        shards = options.shard_count
        if options.job_count == 1:
            parts = []
            for shard in range(shards):
                done = shard * options.weeks * 7.0

                def shard_progress(days: float, done: float = done) -> None:
                    if progress:
                        progress((done + days) / shards)

                parts.append(await simulate_shard(options, dsn, shard=shard, progress=shard_progress))
        else:
            parts = await _in_processes(options, dsn, progress)
        summary = SimulationSummary(
            start=options.start.isoformat(),
            weeks=options.weeks,
            rate_per_week=options.rate_per_week,
            seed=options.seed,
            shards=shards,
        )
        for part in parts:
            summary.tasks_delivered += part.tasks_delivered
            summary.kommune_notices += part.kommune_notices
            summary.max_late_seconds = max(summary.max_late_seconds, part.max_late_seconds)
        await summarise(dsn, options, summary)
    summary.wall_seconds = round(time.perf_counter() - began, 2)
    return summary


async def simulate_shard(
    options: SimulationOptions,
    dsn: str,
    *,
    shard: int = 0,
    progress: ProgressFn | None = None,
    env: WorkflowEnvironment | None = None,
) -> SimulationSummary:
    """One shard on a time-skipping server of its own (or `env`, which must be fresh: its clock moves by weeks)."""
    if env is not None:
        return await _simulate_on(env, dsn, options, shard, progress)
    own = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        # Payloads never leave the run: a key for this server's lifetime only.
        data_converter=data_converter(KeyRing.generate(f"simulate-{shard}")),
    )
    try:
        return await _simulate_on(own, dsn, options, shard, progress)
    finally:
        await own.shutdown()


async def _simulate_on(
    env: WorkflowEnvironment, dsn: str, options: SimulationOptions, shard: int, progress: ProgressFn | None
) -> SimulationSummary:
    from eventlog.store import create_pool

    client = env.client
    await register_search_attributes(client)
    offset = options.business_start - await env.get_current_time()
    task_queue = f"simulate-{shard}-{uuid.uuid4().hex[:8]}"
    clock = VirtualClock(options.business_start)
    world = SimulatedWorld(
        client,
        clock,
        task_queue=task_queue,
        profiles=default_profiles(speed=options.kommune_speed),
        seed=options.seed,
        offset_seconds=offset.total_seconds(),
    )
    arrivals = Arrivals(
        seed=options.seed,
        start=options.business_start,
        weeks=options.weeks,
        rate_per_week=options.rate_per_week,
        shard=shard,
        shards=options.shard_count,
    )

    reported = [0.0]

    def days_done(instant: datetime) -> None:
        days = (instant - options.business_start) / DAY
        if progress and (days - reported[0] >= 0.5 or instant >= options.business_end):
            reported[0] = days
            progress(days)

    pool = await create_pool(dsn, max_size=10)
    try:
        async with build_worker(client, pool, task_queue=task_queue, kommune=world, **SIM_WORKER_OPTIONS):
            clock.spawn(world.arrivals(arrivals))
            try:
                await drive(env, clock, offset=offset, end=options.business_end, progress=days_done)
            finally:
                await clock.close()
    finally:
        await pool.close()
    stats = world.stats
    return SimulationSummary(
        start=options.start.isoformat(),
        weeks=options.weeks,
        rate_per_week=options.rate_per_week,
        seed=options.seed,
        tasks_delivered=stats.tasks_received,
        kommune_notices=sum(stats.notices.values()),
        max_late_seconds=round(clock.max_late.total_seconds(), 3),
    )


async def _in_processes(options: SimulationOptions, dsn: str, progress: ProgressFn | None) -> list[SimulationSummary]:
    """Shards in `options.job_count` processes; progress comes back over a queue as (shard, days done)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from eventlog.personal import SubjectCipher
    from runtime.config import get_settings

    SubjectCipher.from_settings(get_settings())  # the embedded default creates its key file once, here
    shards = options.shard_count
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(options.job_count, mp_context=context) as pool:
        updates = manager.Queue()
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(pool, _shard_process, options, dsn, shard, updates) for shard in range(shards)]
        days = [0.0] * shards
        pending = asyncio.gather(*futures)
        while not pending.done():
            await asyncio.wait([pending], timeout=0.5)
            while not updates.empty():
                shard, done = updates.get_nowait()
                days[shard] = done
            if progress:
                progress(sum(days) / shards)
        return list(pending.result())


def _shard_process(options: SimulationOptions, dsn: str, shard: int, updates: Any) -> SimulationSummary:
    from runtime.config import get_settings
    from runtime.logs import configure_logging

    configure_logging("WARNING", get_settings().log_format)
    _exit_with_parent()
    payload_visits.install()  # this process runs one shard's worker, nothing else: see sim/payload_visits.py
    # The worker keeps thousands of workflow objects alive; collecting less often saved 9% of its CPU.
    gc.set_threshold(50_000, 50, 1000)

    def report(days: float) -> None:
        updates.put((shard, days))

    return run_fast(simulate_shard(options, dsn, shard=shard, progress=report))


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop's event loop where it exists: a shard spends much of its worker's time in the event
    loop (the SDK's futures and its core's thread-safe callbacks), and uvloop's took 10% less CPU (paired runs)."""
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows)
        return asyncio.run(main)
    return uvloop.run(main)


def _exit_with_parent() -> None:
    """A shard process whose parent died (killed) stops, and takes its test server with it."""
    import psutil

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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
        shards: int = typer.Option(
            0, "--shards", min=0, help="Test servers, one per share of the applications (0: one per 150)"
        ),
        jobs: int = typer.Option(0, "--jobs", min=0, help="Shards run at once, in processes (0: one per core)"),
    ) -> None:
        """Simulate applications through the real workflows in Temporal time, writing the real event log."""
        from runtime.config import get_settings
        from runtime.logs import configure_logging

        configure_logging("WARNING", get_settings().log_format)
        try:
            options = SimulationOptions(
                start=date.fromordinal(start.toordinal()),
                weeks=weeks,
                rate_per_week=rate,
                seed=seed,
                shards=shards,
                jobs=jobs,
            )
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        try:
            summary = run_fast(_run_cli(options, database_url, out))
        except ValueError as exc:
            typer.echo(f"simulate: {exc}", err=True)
            raise typer.Exit(1) from None
        if json_out:
            typer.echo(json.dumps(summary.as_dict()))
        else:
            print_summary(summary)
