"""`sagsflow simulate`: weeks of applications through the REAL case and task workflows on the time-skipping test
server, writing the REAL event log with true business timestamps.

How time works: the run picks a business start (e.g. 2021-01-01 00:00 Copenhagen) and gives every case the offset
`business start - the test server's clock at the start`, so each event's occurred_at (workflow time + offset) lands
on the simulated date. The driver starts one `ArrivalsWorkflow` per simulated week and waits for its result; while
it waits, the test server skips from timer to timer (arrivals, kommune actions, reminders, deadlines, caseworker
decisions), and when nothing runs anywhere it jumps to the next timer. Between weeks the clock is locked.

The kommune side and Seniorpension's caseworkers are `KommuneSimWorkflow`s (sim/temporal_driver.py), started by
`SimKommuneChannel.deliver` when a task workflow delivers a task: the real delivery activity, another channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.calendar import COPENHAGEN, local_date
from domain.events import Channel, Event, event_from_record
from domain.state import CaseState, CaseStatus, fold
from eventlog.migrate import migrate_dsn
from sagsflow.embedded import EmbeddedPostgres, free_port
from sagsflow.search_attributes import REGISTRATION
from sim.behaviour import KommuneProfile
from sim.load import ApplicationFactory
from sim.temporal_driver import (
    KOMMUNE_WORKFLOW,
    SIM_CALL,
    START_SIM_CASE,
    WEEK,
    KommuneSimInput,
    SimCall,
    SimCallResult,
    StartedSimCase,
    StartSimCase,
    sim_case_id,
)
from workflows.client import start_case
from workflows.models import CaseInput, CaseUpdateResult, DeliveryReceipt, KommuneMessage, TaskUpdateResult

ProgressFn = Callable[[float], None]  # simulated days done


@dataclass(frozen=True)
class SimulationOptions:
    start: date = date(2021, 1, 1)
    weeks: int = 52
    rate_per_week: float = 300.0
    seed: int = 1
    kommune_speed: float = 1.0  # > 1: every kommune answers faster (sim.behaviour.default_profile's what-if knob)

    def __post_init__(self) -> None:
        if self.weeks < 1:
            raise ValueError("weeks: must be at least 1")
        if self.rate_per_week <= 0:
            raise ValueError("rate: must be more than 0")
        if self.kommune_speed <= 0:
            raise ValueError("kommune speed: must be more than 0")

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
    max_arrival_late_seconds: float = 0.0

    @property
    def waiting_share(self) -> float | None:
        return self.open_waiting_on_kommune / self.open if self.open else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        share = self.waiting_share
        out["open_waiting_on_kommune_share"] = round(share, 3) if share is not None else None
        return out


# -- the simulator's side of the worker -------------------------------------------------------------------------


class SimActivities:
    """Start the simulated applications as real cases, and make the kommune's and Seniorpension's calls as the API
    would: Temporal updates on the task and case workflows. A refusal is an answer (the plan goes on or stops), not
    an error."""

    def __init__(self, client: Client, task_queue: str, factory: ApplicationFactory) -> None:
        self.client = client
        self.task_queue = task_queue
        self.factory = factory

    @activity.defn(name=START_SIM_CASE)
    async def start_sim_case(self, request: StartSimCase) -> StartedSimCase:
        generated = self.factory.generate(request.n, local_date(request.arrived_at))
        case_id = sim_case_id(request.seed, request.n)
        inp = CaseInput(
            case_id=case_id,
            subject_id=f"sim-{request.seed}-{request.n}",
            application=generated.application,
            business_clock_offset_seconds=request.offset_seconds,
        )
        try:
            await start_case(self.client, inp, task_queue=self.task_queue)
        except WorkflowAlreadyStartedError:
            return StartedSimCase(case_id=case_id, archetype=generated.archetype, started=False)
        return StartedSimCase(case_id=case_id, archetype=generated.archetype, started=True)

    @activity.defn(name=SIM_CALL)
    async def sim_call(self, call: SimCall) -> SimCallResult:
        handle = self.client.get_workflow_handle(call.workflow_id)
        result_type: type[TaskUpdateResult | CaseUpdateResult] = (
            CaseUpdateResult if call.update == "decide" else TaskUpdateResult
        )
        try:
            result = await handle.execute_update(call.update, call.request, result_type=result_type)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                # Refusal messages name rules and fields only (DomainError's contract), never personal data.
                return SimCallResult(ok=False, refusal_code=cause.type or "refused", refusal=cause.message)
            raise
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return SimCallResult(ok=False, refusal_code="gone", refusal="the workflow has closed")
            raise
        if isinstance(result, TaskUpdateResult):
            return SimCallResult(ok=True, recorded=result.recorded, extension=result.extension)
        return SimCallResult(ok=True, recorded=result.recorded)


class SimKommuneChannel:
    """The kommune channel of a simulation: a delivered task starts the kommune's `KommuneSimWorkflow` (idempotent
    per task id, so a retried delivery starts nothing twice); notices are only counted (the kommune's plan already
    runs to its own clock, as in `sim.behaviour`)."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        profiles: dict[str, KommuneProfile],
        *,
        seed: int,
        offset_seconds: float,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.profiles = profiles
        self.seed = seed
        self.offset_seconds = offset_seconds
        self.delivered: set[str] = set()
        self.notices: Counter[str] = Counter()

    async def deliver(self, task: KommuneMessage) -> DeliveryReceipt:
        if task.kind != "task":
            # Reminders and notices are only counted: the kommune's plan already runs to its own clock.
            self.notices[task.notice or task.kind] += 1
            return DeliveryReceipt(channel=Channel.INBOX)
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                KOMMUNE_WORKFLOW,
                KommuneSimInput(
                    delivery=task,
                    profile=self.profiles[task.kommune_kode],
                    seed=self.seed,
                    offset_seconds=self.offset_seconds,
                ),
                id=f"sim-kommune-{task.task_id}",
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        self.delivered.add(task.task_id)
        return DeliveryReceipt(channel=Channel.INBOX)


# -- running it -------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def event_log(database_url: str | None) -> AsyncIterator[str]:
    """The given database (migrated), or an embedded PostgreSQL for the run (removed afterwards)."""
    if database_url:
        await migrate_dsn(database_url)
        yield database_url
        return
    root = Path(tempfile.mkdtemp(prefix="sagsflow-sim-"))
    server = EmbeddedPostgres(root / "pg", free_port(), log_file=root / "postgres.log")
    try:
        await asyncio.to_thread(server.start)
        await migrate_dsn(server.url)
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(root, ignore_errors=True)


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


async def refuse_reused_database(dsn: str, seed: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM events WHERE case_id = $1 LIMIT 1", sim_case_id(seed, 1))
    finally:
        await conn.close()
    if exists:
        raise ValueError(f"the event log already holds a simulation with seed {seed}: use a fresh database")


async def summarise(dsn: str, options: SimulationOptions, summary: SimulationSummary) -> None:
    """Counts from the event log itself (the system of record), for this run's cases only."""
    conn = await asyncpg.connect(dsn)
    try:
        received = await conn.fetch(
            "SELECT case_id, occurred_at FROM events WHERE type = 'ApplicationReceived'"
            " AND case_id = ANY($1::text[]) ORDER BY occurred_at",
            _candidate_ids(options, await _received_count_bound(conn)),
        )
        ids = [r["case_id"] for r in received]
        rows = await conn.fetch(
            "SELECT type, count(*) AS n FROM events WHERE case_id = ANY($1::text[]) GROUP BY type", ids
        )
        by_type = {r["type"]: int(r["n"]) for r in rows}
        outcomes = await conn.fetch(
            "SELECT data->>'outcome' AS outcome, count(*) AS n FROM events"
            " WHERE type = 'DecisionMade' AND case_id = ANY($1::text[]) GROUP BY 1",
            ids,
        )
        closed = {
            r["case_id"]
            for r in await conn.fetch(
                "SELECT case_id FROM events WHERE type = 'CaseClosed' AND case_id = ANY($1::text[])", ids
            )
        }
        open_ids = [c for c in ids if c not in closed]
        waiting = 0
        async for state in _fold_streams(conn, open_ids):
            if state.status is CaseStatus.AWAITING_KOMMUNE:
                waiting += 1
        head = int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))
    finally:
        await conn.close()
    by_outcome = {r["outcome"]: int(r["n"]) for r in outcomes}
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
        summary.first_received_at = received[0]["occurred_at"].isoformat()
        summary.last_received_at = received[-1]["occurred_at"].isoformat()


async def _received_count_bound(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE type = 'ApplicationReceived'"))


def _candidate_ids(options: SimulationOptions, bound: int) -> list[str]:
    # This run's case ids are (seed, 1..N); N is at most the number of applications in the log.
    return [sim_case_id(options.seed, n) for n in range(1, bound + 1)]


async def _fold_streams(conn: asyncpg.Connection, case_ids: list[str]) -> AsyncIterator[CaseState]:
    """Each case's stream folded with the domain's own `fold` (personal fields are not read)."""
    rows = await conn.fetch(
        "SELECT event_id, case_id, type, schema_version, occurred_at, data - 'personal' AS data FROM events"
        " WHERE case_id = ANY($1::text[]) ORDER BY case_id, stream_version",
        case_ids,
    )
    current: str | None = None
    batch: list[Event] = []
    for row in rows:
        if row["case_id"] != current and batch:
            yield fold(batch)
            batch = []
        current = row["case_id"]
        batch.append(_event(row))
    if batch:
        yield fold(batch)


def _event(row: asyncpg.Record) -> Event:
    data = row["data"]
    if isinstance(data, str):
        data = json.loads(data)
    event_id = row["event_id"] if isinstance(row["event_id"], uuid.UUID) else uuid.UUID(str(row["event_id"]))
    return event_from_record(
        event_id=event_id,
        case_id=row["case_id"],
        event_type=row["type"],
        schema_version=row["schema_version"],
        occurred_at=row["occurred_at"],
        data=data,
    )
