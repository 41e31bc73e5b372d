"""The whole thing, for real, on the dev server: the worker as `sagsflow worker` runs it (its projection runner
included), the simulator playing the kommune systems that push, the API served over HTTP as `sagsflow api` builds it,
and kommune API keys in the database. Both processes' parts take one `Settings` read from the environment, the way
an operator configures them.

Channels: kommuner in `PUSH_KOMMUNER` push to the simulator, which answers through the API with high time
compression; kommuner in `INBOX_KOMMUNER` use the inbox, and the tests themselves play those kommune systems over
HTTP with their keys (so they decide exactly what a kommune does and when).

One stack per test module (starting it costs about a second); each test uses its own cases, so tests do not see each
other's work. The SLA policy is `demo-1` (deadlines in seconds), so nothing waits on a real-world clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from cli.api import build_app
from domain.events import Event, OplysningTaskDelivered
from eventlog.api_keys import ApiKeys
from eventlog.migrate import migrate_dsn
from eventlog.projections import projection_position
from eventlog.store import EventStore, create_pool
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.httpserve import serve
from runtime.identity import LOCAL_KEY_FILE, LocalIssuer, Role
from runtime.kommune_config import KommuneSettings, documents_key_ring, sim_master_secret_path
from sim.client import SagsflowApiClient
from sim.server import KommuneSimulator, SimSettings, create_sim_app, dev_secrets
from tests.domain.factories import application_json
from tests.kommune.helpers import MASTER, quiet_profiles
from workers.worker import serve as run_worker

DAY = 86400.0
PUSH_KOMMUNER = ("329", "101")  # the simulator answers these
INBOX_KOMMUNER = ("461", "751", "851", "561")  # the tests answer these
CALM = {"p_question": 0.0, "p_return": 0.0, "p_partial": 1.0, "median_response_days": 3.0, "sigma": 0.3}


def application(kommune_kode: str = "461", **overrides: Any) -> dict[str, Any]:
    """An application (JSON, as a client sends it) that passes pre-screening."""
    return dict(application_json(kommune_kode, **overrides))


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    """Poll until `probe` holds; the limit only turns a hang into a failure, it asserts nothing about speed."""
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within}s: {what}")
        await asyncio.sleep(0.05)


@dataclass
class Stack:
    url: str
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    store: EventStore
    keys: dict[str, str]
    sim: KommuneSimulator
    env: WorkflowEnvironment
    documents: KeyRing
    task_queue: str
    # The API's own local issuer (the key `sagsflow staff add` signs with): people are minted as a demo would.
    issuer: LocalIssuer
    ops_headers: dict[str, str] = field(default_factory=dict)
    intake_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The tests' usual caller: a person who may read, decide, ask, extend, transfer and withdraw.
        self.ops_headers = self.headers("Test Sagsbehandler", "caseworker", "team-lead")
        self.intake_headers = self.headers("Test Intake", "intake")

    def token(self, name: str, *roles: Role) -> str:
        return self.issuer.mint(name, roles)

    def headers(self, name: str, *roles: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(name, *roles)}"}

    def kommune(self, kode: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[kode]}"}

    async def apply(self, kommune_kode: str = "461", key: str | None = None, **overrides: Any) -> dict[str, Any]:
        body = {
            "idempotency_key": key or f"app-{uuid.uuid4().hex}",
            "application": application(kommune_kode, **overrides),
        }
        r = await self.http.post("/v1/applications", json=body, headers=self.intake_headers)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    async def case(self, case_id: str, purpose: str = "test: follow the case") -> dict[str, Any]:
        r = await self.http.get(f"/v1/ops/cases/{case_id}", params={"purpose": purpose}, headers=self.ops_headers)
        assert r.status_code == 200, r.text
        summary: dict[str, Any] = r.json()
        return summary

    async def case_status(self, case_id: str) -> str | None:
        r = await self.http.get(f"/v1/ops/cases/{case_id}", params={"purpose": "test: wait"}, headers=self.ops_headers)
        return str(r.json()["status"]) if r.status_code == 200 else None

    async def wait_case(self, case_id: str, *statuses: str, within: float = 30.0) -> dict[str, Any]:
        async def probe() -> bool:
            return await self.case_status(case_id) in statuses

        await eventually(probe, f"case {case_id} in {statuses}", within)
        return await self.case(case_id)

    async def open_task(self, case_id: str) -> str:
        """The case's task, once the kommune has it (delivered to the inbox or pushed). The case's own summary lists
        the task as requested until the task hands its stream back, so ask the task itself, as its kommune."""
        summary = await self.wait_case(case_id, "awaiting_kommune")
        task_id = str(summary["open_task_id"])
        kode = str(summary["kommune_kode"])

        async def delivered() -> bool:
            r = await self.http.get(f"/v1/kommune/tasks/{task_id}", headers=self.kommune(kode))
            return r.status_code == 200 and r.json()["status"] == "delivered"

        await eventually(delivered, f"task of case {case_id} delivered")

        # The task answers from its workflow's state, which knows of the delivery a moment before the append
        # activity has put it in the log; tests that compare the log before and after must start from a settled one.
        async def logged() -> bool:
            events = await self.events(case_id)
            return any(isinstance(e, OplysningTaskDelivered) and e.task_id == task_id for e in events)

        await eventually(logged, f"delivery of case {case_id}'s task in the event log")
        return task_id

    async def task(self, kode: str, task_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/kommune/tasks/{task_id}", headers=self.kommune(kode))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def kpost(self, kode: str, task_id: str, what: str, body: Any) -> httpx.Response:
        return await self.http.post(f"/v1/kommune/tasks/{task_id}/{what}", json=body, headers=self.kommune(kode))

    async def events(self, case_id: str) -> list[Event]:
        stored = await self.store.read_stream(case_id)
        assert [s.stream_version for s in stored] == list(range(1, len(stored) + 1))
        ids = [s.event.event_id for s in stored]
        assert len(set(ids)) == len(ids), "an event was stored twice"
        return [s.event for s in stored]

    async def types(self, case_id: str) -> list[str]:
        return [e.type for e in await self.events(case_id)]

    async def projected(self) -> None:
        """Wait until the worker's projection runner has folded everything logged so far: the backlog reads the
        projection, which follows the log a moment behind."""
        head = await self.store.head_position()

        async def caught_up() -> bool:
            return await projection_position(self.pool) >= head

        await eventually(caught_up, f"the projection at the log head ({head})")


@contextlib.asynccontextmanager
async def fresh_database(pg_server_url: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A database of its own; `migrated=False` leaves it empty, as a new managed database is before the services
    first start and migrate it themselves."""
    name = f"api_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = pg_server_url.rpartition("/")
    url = f"{base}/{name}"
    if migrated:
        await migrate_dsn(url)
    yield url


def _stack_environment(env: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    """The environment of a shell set up for this stack alone: nothing inherited from the caller's."""
    for name in list(os.environ):
        if name.startswith("SAGSFLOW_") or name in {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DATABASE_URL"}:
            env.delenv(name)
    env.setenv("SAGSFLOW_ENV", "development")  # servers of its own, as `sagsflow dev up` starts them
    for name, value in values.items():
        env.setenv(name, value)


@pytest.fixture(scope="module")
def stack_profiles() -> dict[str, dict[str, Any]]:
    """How the simulator's push kommuner behave (`quiet_profiles` overrides); a module may override this fixture."""
    return {f"k{k}": CALM for k in PUSH_KOMMUNER}


@pytest.fixture(scope="module")
async def stack(
    dev_env: WorkflowEnvironment,
    pg_server_url: str,
    key_ring: KeyRing,
    tmp_path_factory: pytest.TempPathFactory,
    stack_profiles: dict[str, dict[str, Any]],
) -> AsyncIterator[Stack]:
    task_queue = f"api-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path_factory.mktemp("api")
    key_file = data_dir / "codec-keys.json"
    key_file.write_text(key_ring.to_json())  # the key the dev server's test client encrypts with
    async with fresh_database(pg_server_url) as db_url:
        with pytest.MonkeyPatch.context() as env:
            _stack_environment(
                env,
                {
                    "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                    "DATABASE_URL": db_url,
                    "SAGSFLOW_DATA_DIR": str(data_dir),
                    "SAGSFLOW_CODEC_KEY_FILE": str(key_file),
                    "SAGSFLOW_TASK_QUEUE": task_queue,
                    "SAGSFLOW_SLA_POLICY": "demo-1",
                    # The Prometheus endpoint is not under test here; a module's worker should not bind a port.
                    "SAGSFLOW_WORKER_METRICS_PORT": "0",
                    "SAGSFLOW_INBOX_KOMMUNER": ",".join(INBOX_KOMMUNER),
                    "SAGSFLOW_PUSH_RATE_PER_SECOND": "100",
                    "SAGSFLOW_PUSH_BURST": "100",
                },
            )
            # The dev default derives each kommune's push secret from this file; the simulator derives the same.
            settings = Settings()
            sim_master_secret_path(settings).write_text(MASTER)
            # The API exactly as `sagsflow api` builds it from its settings: its own pool and Temporal client, the
            # real access log, codec, key rings and pepper (created in the data dir as on a fresh stack).
            app = build_app(settings)
            documents_ring = documents_key_ring(settings, KommuneSettings())
            pool = await create_pool(db_url, max_size=10)
            keys = {
                k: await ApiKeys(pool).create_kommune_key(k, label="test") for k in (*PUSH_KOMMUNER, *INBOX_KOMMUNER)
            }
            profiles = quiet_profiles(**stack_profiles)
            # 20 model days per real second: a kommune's ~3-day answer takes ~0.15 s; the demo policy's 90-second
            # deadline is 1,800 model days away, so the simulator never plans an extension.
            sim_settings = SimSettings(seed=7, compression=20 * DAY, api_retry_delay=0.05)
            try:
                async with (
                    serve(app) as api_url,
                    SagsflowApiClient(api_url, keys={k: keys[k] for k in PUSH_KOMMUNER}) as sim_api,
                ):
                    sim = KommuneSimulator(profiles, dev_secrets(MASTER), api=sim_api, settings=sim_settings)
                    async with serve(create_sim_app(sim)) as sim_url:
                        env.setenv("SAGSFLOW_SIM_URL", sim_url)
                        # The worker as `sagsflow worker` runs it: the same function, the same settings, its own
                        # Temporal client and pool, the real kommune channels and the projection runner.
                        stop = asyncio.Event()
                        worker = asyncio.create_task(run_worker(settings, stop=stop))
                        try:
                            async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
                                yield Stack(
                                    api_url,
                                    http,
                                    pool,
                                    EventStore(pool),
                                    keys,
                                    sim,
                                    dev_env,
                                    documents_ring,
                                    task_queue,
                                    LocalIssuer(data_dir / LOCAL_KEY_FILE),
                                )
                        finally:
                            stop.set()
                            await worker  # a worker that died early fails the module here, with its own error
            finally:
                await pool.close()
