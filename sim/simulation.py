"""`sagsflow simulate`: weeks of applications through the REAL case and task workflows on the time-skipping test
server, writing the REAL event log with true business timestamps.

How time works: the run picks a business start (e.g. 2021-01-01 00:00 Copenhagen) and gives every case the offset
`business start - the test server's clock at the start`, so each event's occurred_at (workflow time + offset) lands
on the simulated date. The simulator's parties (sim/temporal_driver.py) act on a virtual clock that moves the
server's clock from one instant to the next.

Shards: the test server keeps a debugging list of every time-skipping lock it ever took and walks it on every
change to any workflow (SelfAdvancingTimerImpl.lockEvents in temporalio/sdk-java's test server), so its cost per
step grows with everything it has done since it started: a year on one server costs the square of its size. A run
is therefore split into shards by application number (application n goes to shard n mod shards), each on a test
server of its own, all writing the one event log on the same simulated calendar. Cases never interact, so the log
is the same as one server's would be; the shards run in parallel processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from domain.calendar import COPENHAGEN
from domain.kommuner import is_kommune
from domain.state import CaseStatus, fold
from eventlog.counts import CaseCounts, SimulationRuns
from eventlog.migrate import migrate_dsn
from eventlog.store import EventStore, create_pool
from runtime.embedded import EmbeddedPostgres, free_port
from sim.behaviour import Regime
from sim.temporal_driver import WEEK, sim_case_id
from workflows.search_attributes import REGISTRATION

ProgressFn = Callable[[float], None]  # simulated days done
# Measured per case over a year (server + worker CPU): 208 ms in shards of 600, 165 ms of 300, 143 ms of 150,
# 141 ms of 75, 160 ms of 37 (a shard's start-up then shows).
APPLICATIONS_PER_SHARD = 150


@dataclass(frozen=True)
class SimulationOptions:
    start: date = date(2021, 1, 1)
    weeks: int = 52
    rate_per_week: float = 300.0
    seed: int = 1
    kommune_speed: float = 1.0  # > 1: every kommune answers faster (sim.behaviour.default_profile's what-if knob)
    shards: int = 0  # test servers, one per share of the applications (see above); 0: one per 150 applications
    jobs: int = 0  # shards run at once, each in a process of its own; 0: one per CPU core (see job_count)
    regimes: tuple[Regime, ...] = ()  # changes of a kommune's speed or of intake over spans of days (--regime)

    def __post_init__(self) -> None:
        if self.weeks < 1:
            raise ValueError("weeks: must be at least 1")
        if self.rate_per_week <= 0:
            raise ValueError("rate: must be more than 0")
        if self.kommune_speed <= 0:
            raise ValueError("kommune speed: must be more than 0")
        if self.shards < 0 or self.jobs < 0:
            raise ValueError("shards and jobs: must be 0 (automatic) or more")
        for regime in self.regimes:
            if regime.kommune is not None and not is_kommune(regime.kommune):
                raise ValueError(f"regime {regime.label()}: {regime.kommune} is not a kommune code")

    @property
    def shard_count(self) -> int:
        if self.shards:
            return self.shards
        return max(1, round(self.rate_per_week * self.weeks / APPLICATIONS_PER_SHARD))

    @property
    def job_count(self) -> int:
        # One shard process per core. More looked better on 12 shards (2 cores: 133 s with 2 jobs, 122 s with 3), but
        # over the whole year 3 jobs cost 17% more CPU than 2 and took longer (957 s against 870 s, the same code in
        # back-to-back runs).
        return min(self.shard_count, self.jobs or os.cpu_count() or 1)

    @property
    def business_start(self) -> datetime:
        """Midnight in Copenhagen on the start date, as a UTC instant."""
        return datetime.combine(self.start, dtime(0, 0), tzinfo=COPENHAGEN).astimezone(UTC)

    @property
    def business_end(self) -> datetime:
        return self.business_start + self.weeks * WEEK


@dataclass
class SimulationSummary:
    start: str
    weeks: int
    rate_per_week: float
    seed: int
    shards: int = 1
    regimes: list[str] = field(default_factory=list)
    cases_started: int = 0
    decided: int = 0
    granted: int = 0
    rejected: int = 0
    rejected_formal: int = 0
    closed: int = 0
    open: int = 0
    open_waiting_on_kommune: int = 0
    tasks_delivered: int = 0
    kommune_notices: int = 0
    events_written: int = 0
    log_position: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    first_received_at: str | None = None
    last_received_at: str | None = None
    wall_seconds: float = 0.0
    max_late_seconds: float = 0.0

    @property
    def waiting_share(self) -> float | None:
        return self.open_waiting_on_kommune / self.open if self.open else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        share = self.waiting_share
        out["open_waiting_on_kommune_share"] = round(share, 3) if share is not None else None
        return out


# -- running it -------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def event_log(database_url: str | None, keep_in: Path | None = None) -> AsyncIterator[str]:
    """The given database (migrated), or an embedded PostgreSQL for the run: in `keep_in` (replacing the simulation
    kept there before, and left there for reports afterwards), else in a temporary folder removed afterwards."""
    if database_url:
        await migrate_dsn(database_url)
        yield database_url
        return
    if keep_in is not None:
        await asyncio.to_thread(shutil.rmtree, keep_in, True)
        await asyncio.to_thread(keep_in.mkdir, parents=True)
    root = keep_in or Path(tempfile.mkdtemp(prefix="sagsflow-sim-"))
    # A commit need not wait for its WAL to reach the disk: a crash could only lose the last moments of a run that
    # is lost anyway (a kept log is shut down cleanly at the end, which writes everything).
    server = EmbeddedPostgres(
        root / "pg", free_port(), log_file=root / "postgres.log", settings=("synchronous_commit=off",)
    )
    try:
        await asyncio.to_thread(server.start)
        await migrate_dsn(server.url)
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)
        if keep_in is None:
            shutil.rmtree(root, ignore_errors=True)


class NoSimulationKept(Exception):
    pass


SIMULATIONS_DIR = "simulations"
RUN_FILE = "run.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_run_name(options: SimulationOptions) -> str:
    return f"{options.start.isoformat()}-{options.weeks}w-seed{options.seed}"


def kept_simulation(data_dir: Path, name: str) -> Path:
    """Where `sagsflow simulate --name NAME` keeps its embedded event log for reports afterwards."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a simulation name: letters, digits, '.', '_' and '-', at most 64")
    return data_dir / SIMULATIONS_DIR / name


def kept_simulations(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every kept run with what its run file says (an interrupted run says nothing), by name."""
    root = data_dir / SIMULATIONS_DIR
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(p for p in root.iterdir() if (p / "pg" / "PG_VERSION").exists()):
        run_file = folder / RUN_FILE
        runs.append((folder.name, json.loads(run_file.read_text()) if run_file.exists() else {}))
    return runs


@contextlib.asynccontextmanager
async def kept_event_log(keep_in: Path) -> AsyncIterator[str]:
    """A simulation kept by `sagsflow simulate`, served for the length of the block."""
    if not (keep_in / "pg" / "PG_VERSION").exists():
        raise NoSimulationKept(
            f"no simulation {keep_in.name!r} is kept in {keep_in.parent}: `sagsflow simulate --list` shows the kept"
            " runs, `sagsflow simulate --name NAME` makes one"
        )
    server = EmbeddedPostgres(keep_in / "pg", free_port(), log_file=keep_in / "postgres.log")
    try:
        await asyncio.to_thread(server.start)
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


async def register_search_attributes(client: Client) -> None:
    # The test server starts without our search attributes; the case workflows set them.
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    }
    with contextlib.suppress(RPCError):  # already registered
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: kinds[kind] for name, kind in REGISTRATION.items()},
            )
        )


@contextlib.asynccontextmanager
async def _counts(dsn: str) -> AsyncIterator[tuple[CaseCounts, EventStore]]:
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        yield CaseCounts(pool), EventStore(pool)
    finally:
        await pool.close()


async def claim_run(dsn: str, options: SimulationOptions) -> None:
    """Record this run in the log before it writes anything; SimulationRefused for a real event log or a seed it
    already holds."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await SimulationRuns(pool).claim(
            seed=options.seed, start=options.start, weeks=options.weeks, rate_per_week=options.rate_per_week
        )
    finally:
        await pool.close()


async def summarise(dsn: str, options: SimulationOptions, summary: SimulationSummary) -> None:
    """Counts from the event log itself (the system of record), for this run's cases only."""
    async with _counts(dsn) as (counts, store):
        received = await counts.received_at(_candidate_ids(options, await counts.count_of_type("ApplicationReceived")))
        ids = [case_id for case_id, _ in received]
        by_type = await counts.count_by_type(ids)
        by_outcome = await counts.decision_outcomes(ids)
        closed = await counts.cases_with("CaseClosed", ids)
        open_ids = [c for c in ids if c not in closed]
        waiting = 0
        async for events in counts.streams(open_ids):
            if fold(events).status is CaseStatus.AWAITING_KOMMUNE:
                waiting += 1
        head = await store.head_position()
    summary.cases_started = len(ids)
    summary.decided = sum(by_outcome.values())
    summary.granted = by_outcome.get("granted", 0)
    summary.rejected = by_outcome.get("rejected", 0)
    summary.rejected_formal = by_outcome.get("rejected_formal", 0)
    summary.closed = len(closed)
    summary.open = len(open_ids)
    summary.open_waiting_on_kommune = waiting
    summary.events_written = sum(by_type.values())
    summary.events_by_type = dict(sorted(by_type.items()))
    summary.log_position = head
    if received:
        summary.first_received_at = received[0][1].isoformat()
        summary.last_received_at = received[-1][1].isoformat()


def _candidate_ids(options: SimulationOptions, bound: int) -> list[str]:
    # This run's case ids are (seed, 1..N); N is at most the number of applications in the log.
    return [sim_case_id(options.seed, n) for n in range(1, bound + 1)]
