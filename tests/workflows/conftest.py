"""Whole case lifecycles on the time-skipping server, with the real event log on PostgreSQL.

Histories: set SAGSFLOW_RECORD_HISTORIES=1 to (re)write tests/histories/<scenario>.<n>.json from these runs; the
replay test runs every saved history against the current workflow code. They are encrypted with the committed
test-only key ring tests/histories/test-keyring.json (never a real key), as production histories are with theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.application import Application
from domain.events import Event, OplysningRequested
from domain.sla import DEFAULT_POLICY_ID
from domain.state import CaseStatus
from eventlog.store import EventStore, create_pool
from runtime.crypto import KeyRing
from runtime.temporal import data_converter
from tests.doubles import FakeDigitalPost, FakeKommuneChannel
from workers.worker import build_worker
from workflows.case import CaseWorkflow
from workflows.client import CaseHandle, start_case
from workflows.models import (
    CaseInput,
    CaseResult,
    CaseUpdateResult,
    DecisionRequest,
    KommuneMessage,
    TaskResult,
    task_workflow_id,
)
from workflows.search_attributes import REGISTRATION
from workflows.task import OplysningTaskWorkflow

HISTORY_DIR = Path(__file__).resolve().parent.parent / "histories"
HISTORY_RING = KeyRing.from_json((HISTORY_DIR / "test-keyring.json").read_text())
RECORD = os.environ.get("SAGSFLOW_RECORD_HISTORIES") == "1"

TaskHandle = WorkflowHandle[OplysningTaskWorkflow, TaskResult]


def application(**overrides: Any) -> Application:
    """Born 1 March 1957: folkepensionsalder 67 (2024), so in the seniorpension window throughout 2021."""
    data: dict[str, Any] = {
        "case_type": "seniorpension",
        "applicant": {"cpr": "010357-1234", "name": "Testperson"},
        "kommune_kode": "329",
        "received_on": "2021-09-24",
        "employment": [{"start": "1985-01-01", "end": None, "weekly_hours": 37}],
        "current_attachment": {"status": "working", "since": "1985-01-01"},
        "declared_weekly_work_capacity_hours": 10,
        "latest_job_months": 60,
    }
    data.update(overrides)
    return Application.model_validate(data)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass
class Lifecycle:
    env: WorkflowEnvironment
    client: Client
    store: EventStore
    kommune: FakeKommuneChannel
    post: FakeDigitalPost
    task_queue: str
    offset: timedelta = timedelta()

    async def start(
        self,
        *,
        at: datetime,
        policy_id: str = DEFAULT_POLICY_ID,
        continue_as_new_after: int | None = None,
        **app: Any,
    ) -> CaseHandle:
        """Start a case whose business clock reads `at` now (the test server's clock is the real time)."""
        now = await self.env.get_current_time()
        inp = CaseInput(
            case_id=str(uuid.uuid4()),
            subject_id=f"subject-{uuid.uuid4().hex[:8]}",
            application=application(**app),
            policy_id=policy_id,
            business_clock_offset_seconds=(at - now).total_seconds(),
            continue_as_new_after=continue_as_new_after,
        )
        self.offset = at - now
        return await start_case(self.client, inp, task_queue=self.task_queue)

    async def delivery(self) -> KommuneMessage:
        return await asyncio.wait_for(self.kommune.deliveries.get(), timeout=20)

    def task(self, task_id: str) -> TaskHandle:
        return self.client.get_workflow_handle_for(OplysningTaskWorkflow.run, task_workflow_id(task_id))

    async def wait_status(self, handle: CaseHandle, status: CaseStatus) -> None:
        async def probe() -> bool:
            summary = await handle.query(CaseWorkflow.status, rpc_timeout=timedelta(seconds=2))
            return summary.status is status

        await eventually(probe, f"case {status.value}")

    async def decide_when_ready(self, handle: CaseHandle, request: DecisionRequest) -> CaseUpdateResult:
        """The caseworker's decision, retried while the case is still taking back the finished task's stream."""
        for _ in range(200):
            try:
                return await handle.execute_update(CaseWorkflow.decide, request)
            except WorkflowUpdateFailedError as exc:
                if "cannot decide: the case is" not in str(exc.cause):
                    raise
            await asyncio.sleep(0.05)
        raise AssertionError("the case never became ready for decision")

    async def business_now(self) -> datetime:
        return await self.env.get_current_time() + self.offset

    async def skip_until(self, at: datetime) -> None:
        """Let the test server's clock run (firing timers) until the last started case's business clock reads `at`."""
        gap = at - await self.business_now()
        assert gap > timedelta(), f"{at} is in the past of the business clock"
        await self.env.sleep(gap)

    async def events(self, case_id: str) -> list[Event]:
        stored = await self.store.read_stream(case_id)
        assert [s.stream_version for s in stored] == list(range(1, len(stored) + 1))
        ids = [s.event.event_id for s in stored]
        assert len(set(ids)) == len(ids), "an event was stored twice"
        return [s.event for s in stored]

    async def types(self, case_id: str) -> list[str]:
        return [e.type for e in await self.events(case_id)]

    async def finish(self, handle: CaseHandle, scenario: str) -> CaseResult:
        # By id, not by the start's run id: the time-skipping server does not follow a continue-as-new chain from
        # the first run's handle.
        result = await self.client.get_workflow_handle_for(CaseWorkflow.run, handle.id).result()
        if RECORD:
            await self.record(scenario, handle.id, result)
        return result

    async def record(self, scenario: str, case_workflow_id: str, result: CaseResult) -> None:
        ids = [case_workflow_id, *(task_workflow_id(t) for t in await self._task_ids(result.case_id))]
        for old in HISTORY_DIR.glob(f"{scenario}.*.json"):
            old.unlink()
        for n, workflow_id in enumerate(ids):
            history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            body = {"workflow_id": workflow_id, "history": json.loads(history.to_json())}
            (HISTORY_DIR / f"{scenario}.{n}.json").write_text(json.dumps(body, indent=1) + "\n")

    async def _task_ids(self, case_id: str) -> list[str]:
        return [e.task_id for e in await self.events(case_id) if isinstance(e, OplysningRequested)]


@pytest.fixture(scope="session")
async def client(time_skipping_env: WorkflowEnvironment) -> Client:
    # The time-skipping server starts without our search attributes; the workflows set them, so register them.
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    }
    with contextlib.suppress(RPCError):  # already registered by an earlier session fixture
        await time_skipping_env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=time_skipping_env.client.namespace,
                search_attributes={name: kinds[kind] for name, kind in REGISTRATION.items()},
            )
        )
    config = time_skipping_env.client.config()
    config["data_converter"] = data_converter(HISTORY_RING)
    return Client(**config)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def lifecycle(
    time_skipping_env: WorkflowEnvironment, client: Client, pool: asyncpg.Pool
) -> AsyncIterator[Lifecycle]:
    kommune = FakeKommuneChannel(refuse_kommuner=frozenset({"860"}))
    post = FakeDigitalPost()
    task_queue = f"lifecycle-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, task_queue=task_queue, kommune=kommune, digital_post=post):
        yield Lifecycle(time_skipping_env, client, EventStore(pool), kommune, post, task_queue)


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    """Poll until `probe` holds (queries and reads never move the test server's clock). A workflow that does not
    exist yet (a task recorded as requested, not started) or cannot answer a query just now counts as "not yet"."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            if await probe():
                return
        except RPCError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within}s: {what}")
        await asyncio.sleep(0.02)


def refusal(exc: BaseException) -> ApplicationError:
    """The ApplicationError behind a refused update (what the API turns into 409/403/404/422)."""
    assert isinstance(exc, WorkflowUpdateFailedError), exc
    cause = exc.cause
    assert isinstance(cause, ApplicationError), cause
    return cause
