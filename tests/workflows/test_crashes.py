"""Crashes mid-case: the worker process killed (SIGKILL) while cases are received and while decisions are carried
out, the PostgreSQL server under the event log killed while kommune answers are being recorded, and the Temporal
server killed while the kommune's answers come in. Every case must still finish, and every event be written exactly
once, in order.

Everything here is this test's own, so killing it hurts no other test: a Temporal dev server on a SQLite file (a
restart keeps its state, as a production cluster's persistence does), a PostgreSQL server, and the real
`sagsflow worker` process. Kommune 329 takes its tasks from its inbox, so no simulator is involved; callers retry
with the same idempotency key, as the API and kommune systems do.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from domain.events import Outcome
from domain.state import CaseStatus
from eventlog.migrate import migrate_dsn
from runtime.crypto import KeyRing
from runtime.embedded import EmbeddedPostgres, TemporalDevServer, free_port
from runtime.temporal import data_converter
from tests.workflows.conftest import application, eventually, utc
from workflows.case import CaseWorkflow
from workflows.client import start_case
from workflows.models import CaseInput, CaseResult, DecisionRequest, SubmitPartRequest, task_workflow_id
from workflows.search_attributes import REGISTRATION
from workflows.task import OplysningTaskWorkflow

CASES = 8
# Each case's stream: these events, each exactly once, and two parts (the first and the final one); nothing else.
EXPECTED = Counter(
    {
        "ApplicationReceived": 1,
        "PreScreeningCompleted": 1,
        "OplysningRequested": 1,
        "OplysningTaskDelivered": 1,
        "OplysningPartReceived": 2,
        "OplysningCompleted": 1,
        "DecisionMade": 1,
        "CitizenNotified": 1,
        "KommuneNotified": 1,
        "CaseClosed": 1,
    }
)
T = TypeVar("T")
CaseHandle = WorkflowHandle[CaseWorkflow, CaseResult]


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg", free_port(), log_file=tmp_path / "postgres.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_temporal(tmp_path: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(
        search_attributes=REGISTRATION,
        port=free_port(),
        db_file=tmp_path / "temporal.db",
        log_file=tmp_path / "temporal.log",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


class WorkerProcess:
    """`sagsflow worker` in a process of its own, to be killed without warning."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "sagsflow"), "worker"], env=self.env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
async def worker(
    own_temporal: TemporalDevServer, own_postgres: EmbeddedPostgres, key_ring: KeyRing, tmp_path: Path
) -> AsyncIterator[WorkerProcess]:
    await migrate_dsn(own_postgres.url)
    key_file = tmp_path / "codec-keys.json"
    key_file.write_text(key_ring.to_json())
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": own_temporal.address,
        "DATABASE_URL": own_postgres.url,
        "SAGSFLOW_CODEC_KEY_FILE": str(key_file),
        "SAGSFLOW_DATA_DIR": str(tmp_path),  # the event log's key is made here once and shared by every worker
        "SAGSFLOW_TASK_QUEUE": f"crash-{uuid.uuid4().hex[:8]}",
        "SAGSFLOW_INBOX_KOMMUNER": "329",
        "SAGSFLOW_LOG_LEVEL": "WARNING",
        "SAGSFLOW_WORKER_METRICS_PORT": "0",
    }
    process = WorkerProcess(env, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()


async def retried(call: Callable[[], Awaitable[T]], within: float = 120) -> T:
    """A caller's retry while the workflow service is down: the same request (same idempotency key) again."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await call()
        except RPCError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _status(handle: CaseHandle) -> CaseStatus:
    return (await handle.query(CaseWorkflow.status)).status


# Each killed worker leaves its running activities to their start-to-close timeouts (a minute for kommune calls)
# before they are retried: about two minutes here, more on a loaded machine than the suite's default allows.
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_cases_survive_killed_workers_database_and_temporal_server(
    own_temporal: TemporalDevServer, own_postgres: EmbeddedPostgres, worker: WorkerProcess, key_ring: KeyRing
) -> None:
    client = await Client.connect(own_temporal.address, data_converter=data_converter(key_ring))
    queue = worker.env["SAGSFLOW_TASK_QUEUE"]
    offset = (utc(2021, 3, 1, 8, 0) - datetime.now(UTC)).total_seconds()
    worker.start()
    handles = [
        await start_case(
            client,
            CaseInput(
                case_id=str(uuid.uuid4()),
                subject_id=f"s{n}",
                application=application(),
                business_clock_offset_seconds=offset,
            ),
            task_queue=queue,
        )
        for n in range(CASES)
    ]

    # 1. The worker dies while the cases are being received, screened and sent to the kommune.
    async def first_waiting() -> bool:
        return any([await _status(h) is CaseStatus.AWAITING_KOMMUNE for h in handles])

    await eventually(first_waiting, "a case reached the kommune", within=60)
    worker.kill()
    worker.start()

    async def all_delivered() -> bool:
        for h in handles:
            summary = await h.query(CaseWorkflow.status)
            if summary.open_task_id is None:
                return False
            task = client.get_workflow_handle_for(OplysningTaskWorkflow.run, task_workflow_id(summary.open_task_id))
            if (await task.query(OplysningTaskWorkflow.status)).channel is None:
                return False
        return True

    await eventually(all_delivered, "every task delivered to 329's inbox after the restart", within=120)
    task_ids = [(await h.query(CaseWorkflow.status)).open_task_id for h in handles]

    async def answer(task_id: str | None, *, final: bool) -> None:
        assert task_id is not None
        task = client.get_workflow_handle_for(OplysningTaskWorkflow.run, task_workflow_id(task_id))
        request = SubmitPartRequest(
            kommune_kode="329",
            submission_id=f"sub-{task_id}-{final}",
            document_ids=(f"{task_id}:{'final' if final else 'part'}",),
            final=final,
        )
        await retried(lambda: task.execute_update(OplysningTaskWorkflow.submit_part, request))

    # 2. The database dies while the kommune's first parts are being recorded, and comes back.
    own_postgres.kill()
    parts = asyncio.gather(*(answer(t, final=False) for t in task_ids))
    await asyncio.sleep(2)  # the appends fail and retry meanwhile
    assert not parts.done(), "a part was confirmed while the event log was down"
    own_postgres.start()
    await asyncio.wait_for(parts, 120)

    # 3. The Temporal server dies while the final parts come in, and comes back on its own persistence.
    finals = [asyncio.ensure_future(answer(t, final=True)) for t in task_ids]
    await asyncio.wait(finals, return_when=asyncio.FIRST_COMPLETED)
    own_temporal.kill()
    await asyncio.sleep(1)
    own_temporal.start()
    await asyncio.wait_for(asyncio.gather(*finals), 180)

    async def all_ready() -> bool:
        return all([await _status(h) is CaseStatus.READY_FOR_DECISION for h in handles])

    await eventually(all_ready, "every case ready for decision", within=120)
    assert worker.alive(), "the worker process itself must outlive the database and Temporal server restarts"

    # 4. The worker dies again while the caseworkers' decisions are being carried out.
    def decide(h: CaseHandle) -> Callable[[], Awaitable[object]]:
        request = DecisionRequest(request_id="d", outcome="granted", decided_by="cw")
        return lambda: h.execute_update(CaseWorkflow.decide, request)

    decisions = [asyncio.ensure_future(retried(decide(h))) for h in handles]
    await asyncio.wait(decisions, return_when=asyncio.FIRST_COMPLETED)
    worker.kill()
    worker.start()
    await asyncio.wait_for(asyncio.gather(*decisions), 180)
    results = await asyncio.wait_for(
        asyncio.gather(*(h.result(rpc_timeout=timedelta(seconds=60)) for h in handles)), 180
    )
    assert {(r.status, r.outcome) for r in results} == {(CaseStatus.CLOSED, Outcome.GRANTED)}

    conn = await asyncpg.connect(own_postgres.url)
    try:
        rows = await conn.fetch("SELECT case_id, stream_version, type FROM events ORDER BY case_id, stream_version")
    finally:
        await conn.close()
    streams: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        streams.setdefault(row["case_id"], []).append((row["stream_version"], row["type"]))
    assert set(streams) == {r.case_id for r in results}
    for case_id, stream in streams.items():
        assert [v for v, _ in stream] == list(range(1, len(stream) + 1)), f"{case_id}: gaps in the stream"
        assert Counter(t for _, t in stream) == EXPECTED, f"{case_id}: {Counter(t for _, t in stream)}"
