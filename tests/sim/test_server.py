"""The simulator's real-time driver over HTTP, end to end with our real pieces: tasks pushed by the delivery
activity (or stored in the PostgreSQL inbox and polled), answers sent with the kommune's own API key to an API
that authenticates with `api.auth`, validates with `api.kommune_schemas` and stores documents with
`api.documents`. The API routes themselves are the lead's; this stand-in has the same paths and bodies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from temporalio.testing import ActivityEnvironment

from activities.kommune_delivery import KommuneDelivery
from api.auth import KommunePrincipal, require_kommune
from api.documents import read_document, store_document
from api.kommune_schemas import ExtensionRequestBody, QuestionBody, ReturnBody, SubmissionRequest
from api.state import ApiDeps
from domain.calendar import Unit
from sagsflow.crypto import KeyRing
from sagsflow.kommune_config import ChannelConfig, InboxChannel, StaticChannels, dev_channel_config
from sagsflow.kommune_inbox import InboxPage, fetch_inbox
from sagsflow.kommune_protocol import signed_headers
from sim.behaviour import RequestExtensionAction, ReturnTaskAction, SubmitPartAction
from sim.client import SagsflowApiClient
from sim.keys import provision_sim_keys
from sim.server import KommuneSimulator, SimSettings, dev_secrets
from tests.kommune.helpers import MASTER, quiet_profiles, served
from workflows.models import DeliveryReceipt, KommuneMessage

DAY = 86400.0


@dataclass
class StandInApi:
    pool: asyncpg.Pool
    ring: KeyRing
    calls: list[tuple[str, str, str, Any]] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    fail_once: set[str] = field(default_factory=set)

    def app(self) -> FastAPI:
        app = FastAPI()
        app.state.deps = ApiDeps(client=None, pool=self.pool, payload_ring=self.ring, ops_token="unused-ops-token")

        @app.get("/v1/kommune/tasks")
        async def tasks(after: int = 0, limit: int = 100, p: KommunePrincipal = Depends(require_kommune)) -> InboxPage:
            return await fetch_inbox(self.pool, p.kommune_kode, after=after, limit=limit)

        def record(what: str, p: KommunePrincipal, task_id: str, body: BaseModel) -> dict[str, str]:
            if task_id in self.fail_once:
                self.fail_once.discard(task_id)
                raise HTTPException(status_code=503, detail="try again")
            if task_id in self.closed:
                raise HTTPException(status_code=409, detail="task is closed")
            self.calls.append((what, p.kommune_kode, task_id, body))
            return {"status": "ok"}

        @app.post("/v1/kommune/tasks/{task_id}/submissions")
        async def submissions(
            task_id: str, body: SubmissionRequest, p: KommunePrincipal = Depends(require_kommune)
        ) -> dict[str, Any]:
            out = record("submissions", p, task_id, body)
            for d in body.documents:
                ref = await store_document(
                    self.pool, self.ring, p.kommune_kode, task_id, d.filename, d.content_type, d.content()
                )
                self.calls.append(("document", p.kommune_kode, task_id, ref.document_id))
            return out

        @app.post("/v1/kommune/tasks/{task_id}/extension-requests")
        async def extension(
            task_id: str, body: ExtensionRequestBody, p: KommunePrincipal = Depends(require_kommune)
        ) -> dict[str, str]:
            return record("extension-requests", p, task_id, body)

        @app.post("/v1/kommune/tasks/{task_id}/questions")
        async def questions(
            task_id: str, body: QuestionBody, p: KommunePrincipal = Depends(require_kommune)
        ) -> dict[str, str]:
            return record("questions", p, task_id, body)

        @app.post("/v1/kommune/tasks/{task_id}/returns")
        async def returns(
            task_id: str, body: ReturnBody, p: KommunePrincipal = Depends(require_kommune)
        ) -> dict[str, str]:
            return record("returns", p, task_id, body)

        return app

    def writes(self, task_id: str) -> list[tuple[str, Any]]:
        return [(what, body) for what, _, t, body in self.calls if t == task_id and what != "document"]


async def wait_until(check: Callable[[], bool]) -> None:
    """Poll a condition; the time limit only turns a hang into a failure, it asserts nothing about speed."""
    for _ in range(1500):  # up to ~30 s
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def task_input(kode: str, deadline_in_real_seconds: float = 1.0) -> KommuneMessage:
    return KommuneMessage(
        task_id=f"task-{uuid.uuid4().hex[:8]}",
        case_id="case-1",
        kommune_kode=kode,
        kind="task",
        deadline_at=datetime.now(UTC) + timedelta(seconds=deadline_in_real_seconds),
        requested_documents=("work_history", "job_description", "health_records"),
    )


async def deliver(delivery: KommuneDelivery, inp: KommuneMessage) -> DeliveryReceipt:
    result: DeliveryReceipt = await ActivityEnvironment().run(delivery.deliver_task, inp)
    return result


@pytest.fixture
async def keys(pool: asyncpg.Pool, tmp_path: Path) -> dict[str, str]:
    return await provision_sim_keys(pool, tmp_path / "sim-keys.json")


async def test_pushed_task_is_answered_through_the_api_with_the_kommunes_key(
    pool: asyncpg.Pool, key_ring: KeyRing, keys: dict[str, str]
) -> None:
    api = StandInApi(pool, key_ring)
    profiles = quiet_profiles(
        k329={"p_question": 1.0, "p_partial": 1.0, "p_return": 0.0, "median_response_days": 10.0, "sigma": 0.3}
    )
    # 20 model days per real second: the whole plan plays out in about a second.
    settings = SimSettings(seed=5, compression=20 * DAY, api_retry_delay=0.01)
    async with served(api.app()) as api_url, SagsflowApiClient(api_url, keys=keys) as client:
        sim = KommuneSimulator(profiles, dev_secrets(MASTER), api=client, settings=settings)
        async with served(sim) as sim_url, httpx.AsyncClient() as http:
            delivery = KommuneDelivery(None, StaticChannels(dev_channel_config(sim_url, MASTER)), http)
            inp = task_input("329")
            api.fail_once.add(inp.task_id)  # our API hiccups once: the simulator retries with the same key
            assert (await deliver(delivery, inp)).channel == "push"
            plan = sim.received[f"{inp.task_id}:task:1"].plan
            await wait_until(lambda: len(api.writes(inp.task_id)) == len(plan))

    writes = api.writes(inp.task_id)
    assert [what for what, _ in writes] == [
        {"submit_part": "submissions", "ask_question": "questions", "request_extension": "extension-requests"}[
            p.action.kind
        ]
        for p in plan
    ]
    assert {kode for _, kode, t, _ in api.calls if t == inp.task_id} == {"329"}
    keys_used = [body.idempotency_key for _, body in writes]
    assert len(set(keys_used)) == len(keys_used)
    submissions = [body for what, body in writes if what == "submissions"]
    assert [s.final for s in submissions] == [False, True]
    assert sorted(d.document_type for s in submissions for d in s.documents) == sorted(inp.requested_documents)
    for p, (_, body) in zip(plan, writes, strict=True):
        if isinstance(p.action, RequestExtensionAction):
            assert isinstance(body, ExtensionRequestBody)
            assert body.extend_by.unit is Unit.DAYS
            assert body.extend_by.quantity == p.action.extend_by_days

    document_ids = [d for what, _, t, d in api.calls if what == "document" and t == inp.task_id]
    assert len(document_ids) == 3
    doc = await read_document(pool, key_ring, document_ids[0], kommune_kode="329")
    assert doc.data.startswith(b"%PDF-")


async def test_inbox_kommune_polls_with_its_key_and_answers(
    pool: asyncpg.Pool, key_ring: KeyRing, keys: dict[str, str]
) -> None:
    api = StandInApi(pool, key_ring)
    profiles = quiet_profiles(k101={"p_question": 0.0, "p_partial": 0.0, "p_return": 0.0, "median_response_days": 5})
    settings = SimSettings(
        compression=20 * DAY, poll_interval_seconds=0.05, extension_unit="seconds", api_retry_delay=0.01
    )
    async with served(api.app()) as api_url, SagsflowApiClient(api_url, keys=keys) as client, httpx.AsyncClient() as h:
        delivery = KommuneDelivery(pool, StaticChannels(ChannelConfig(kommuner={"101": InboxChannel()})), h)
        inp = task_input("101")
        assert (await deliver(delivery, inp)).channel == "inbox"
        sim = KommuneSimulator(
            profiles, dev_secrets(MASTER), api=client, settings=settings, inbox_kommuner=frozenset({"101"})
        )
        async with served(sim):
            await wait_until(lambda: any(what == "submissions" for what, _ in api.writes(inp.task_id)))
            second = task_input("101")
            await deliver(delivery, second)
            await wait_until(lambda: f"{second.task_id}:task:1" in sim.received)

    assert sim.received[f"{inp.task_id}:task:1"].via == "inbox"
    assert sim.cursors["101"] == 2
    acked = await pool.fetch("SELECT seq FROM kommune_inbox WHERE acked_at IS NOT NULL")
    # Asking for what follows a message acknowledges it (the second may already be acknowledged too).
    assert [r["seq"] for r in acked][:1] == [1]
    (_, body), *_ = [w for w in api.writes(inp.task_id) if w[0] == "submissions"]
    assert isinstance(body, SubmissionRequest)
    assert body.final


async def test_return_names_another_kommune_and_ends_the_plan(
    pool: asyncpg.Pool, key_ring: KeyRing, keys: dict[str, str]
) -> None:
    api = StandInApi(pool, key_ring)
    profiles = quiet_profiles(k810={"p_return": 1.0})
    settings = SimSettings(compression=20 * DAY, api_retry_delay=0.01)
    async with served(api.app()) as api_url, SagsflowApiClient(api_url, keys=keys) as client:
        sim = KommuneSimulator(profiles, dev_secrets(MASTER), api=client, settings=settings)
        async with served(sim) as sim_url, httpx.AsyncClient() as http:
            delivery = KommuneDelivery(None, StaticChannels(dev_channel_config(sim_url, MASTER)), http)
            inp = task_input("810")
            await deliver(delivery, inp)
            await wait_until(lambda: len(api.writes(inp.task_id)) == 1)
    ((what, body),) = api.writes(inp.task_id)
    assert what == "returns"
    assert isinstance(body, ReturnBody)
    (planned,) = sim.received[f"{inp.task_id}:task:1"].plan
    assert isinstance(planned.action, ReturnTaskAction)
    assert body.correct_kommune_kode == planned.action.correct_kommune_kode
    assert body.correct_kommune_kode in profiles["810"].return_candidates


async def test_a_closed_task_stops_the_plan(pool: asyncpg.Pool, key_ring: KeyRing, keys: dict[str, str]) -> None:
    api = StandInApi(pool, key_ring)
    profiles = quiet_profiles(k766={"p_question": 0.0, "p_partial": 1.0, "p_return": 0.0, "median_response_days": 5})
    settings = SimSettings(compression=20 * DAY, api_retry_delay=0.01)
    async with served(api.app()) as api_url, SagsflowApiClient(api_url, keys=keys) as client:
        sim = KommuneSimulator(profiles, dev_secrets(MASTER), api=client, settings=settings)
        async with served(sim) as sim_url, httpx.AsyncClient() as http:
            delivery = KommuneDelivery(None, StaticChannels(dev_channel_config(sim_url, MASTER)), http)
            inp = task_input("766", deadline_in_real_seconds=60)
            api.closed.add(inp.task_id)  # e.g. the citizen withdrew the application
            await deliver(delivery, inp)
            await wait_until(lambda: sim.stats.actions.get("submit_part:409") == 1)
            await wait_until(lambda: not sim._tasks)
    plan = sim.received[f"{inp.task_id}:task:1"].plan
    assert [type(p.action) for p in plan] == [SubmitPartAction, SubmitPartAction]
    assert sim.stats.actions == {"submit_part:409": 1}  # the final part was never sent


async def test_receiver_refuses_bad_requests() -> None:
    sim = KommuneSimulator(quiet_profiles(), dev_secrets(MASTER), settings=SimSettings(act=False))
    secret = dev_secrets(MASTER)("329")
    body = (
        b'{"message_id":"t:task:1","task_id":"t","case_id":"c","kommune_kode":"329","kind":"task",'
        b'"deadline_at":null,"requested_documents":[],"notice":null}'
    )
    now = int(time.time())
    async with served(sim) as url, httpx.AsyncClient(base_url=url) as http:

        async def post(path: str, content: bytes, headers: dict[str, str]) -> int:
            return (await http.post(path, content=content, headers=headers)).status_code

        good = signed_headers(secret, now, body, "t:task:1")
        assert await post("/kommune/329/tasks", body, {}) == 401
        assert await post("/kommune/329/tasks", body, signed_headers(secret, now - 3600, body, "t:task:1")) == 401
        assert await post("/kommune/329/tasks", body.replace(b'"c"', b'"d"'), good) == 401
        assert await post("/kommune/329/tasks", body, signed_headers(dev_secrets(MASTER)("101"), now, body, "k")) == 401
        assert await post("/kommune/9999/tasks", body, good) == 404
        junk = b"{not json"
        assert await post("/kommune/329/tasks", junk, signed_headers(secret, now, junk, "t:task:1")) == 400
        assert await post("/kommune/329/tasks", body, signed_headers(secret, now, body, "other-key")) == 400
        assert sim.received == {}
        assert await post("/kommune/329/tasks", body, good) == 200
        assert (await http.get("/sim/stats")).json()["received"] == {"task": 1}
    assert sim.stats.rejected == {"bad_signature": 4, "unknown_kommune": 1, "bad_body": 1, "wrong_kommune_or_key": 1}
