"""The simulator's real-time driver over HTTP, playing the kommune systems against our real API: the worker as
`sagsflow worker` runs it pushes tasks (or stores them in the PostgreSQL inbox, which a kommune polls), and the
simulator answers with the kommune's own API key through the app `sagsflow api` builds (tests/api/conftest.py's
stack, one per module). What it sent is checked where it lands: in the case's event log, in stored documents, and in
what the task accepts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from domain.events import (
    ExtensionRequested,
    OplysningCompleted,
    OplysningPartReceived,
    OplysningReturned,
    OplysningTaskDelivered,
    QuestionAsked,
)
from domain.kommune_protocol import TaskMessage, signed_headers
from eventlog.documents import Documents
from sim.behaviour import ReturnTaskAction, SubmitPartAction
from sim.client import SagsflowApiClient
from sim.server import KommuneSimulator, SimSettings, dev_secrets
from tests.api.conftest import CALM, DAY, Stack, eventually
from tests.api.conftest import stack as stack  # the module's own stack (the fixture, re-exported for pytest)
from tests.kommune.helpers import MASTER, quiet_profiles, served

# 329 answers in parts, with documents. (Not with a question of its own: the real API refuses a final part with 409
# while the kommune's question is unanswered, and the simulator then abandons the task; see the audit report.)
IN_PARTS = {"p_question": 0.0, "p_partial": 1.0, "p_return": 0.0, "median_response_days": 10.0, "sigma": 0.3}


@pytest.fixture(scope="module")
def stack_profiles() -> dict[str, dict[str, Any]]:
    return {"k329": IN_PARTS, "k101": CALM}


async def wait_until(check: Callable[[], bool]) -> None:
    """Poll a condition; the time limit only turns a hang into a failure, it asserts nothing about speed."""
    for _ in range(1500):  # up to ~30 s
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def delivered_task(stack: Stack, case_id: str) -> str:
    """The id of the case's task once its delivery is in the log (pushed or stored in the inbox)."""
    found: list[str] = []

    async def logged() -> bool:
        found[:] = [e.task_id for e in await stack.events(case_id) if isinstance(e, OplysningTaskDelivered)]
        return bool(found)

    await eventually(logged, f"delivery of case {case_id}'s task")
    return found[0]


@contextlib.asynccontextmanager
async def inbox_kommune(stack: Stack, kode: str, **profile: Any) -> AsyncIterator[KommuneSimulator]:
    """A simulator for one of the stack's inbox kommuner: it polls the real API with the kommune's key."""
    settings = SimSettings(compression=20 * DAY, poll_interval_seconds=0.05, api_retry_delay=0.01)
    async with SagsflowApiClient(stack.url, keys={kode: stack.keys[kode]}) as client:
        sim = KommuneSimulator(
            quiet_profiles(**{f"k{kode}": profile}),
            dev_secrets(MASTER),
            api=client,
            settings=settings,
            inbox_kommuner=frozenset({kode}),
        )
        async with served(sim):
            yield sim


async def test_pushed_task_is_answered_through_the_api_with_the_kommunes_key(stack: Stack) -> None:
    case_id = str((await stack.apply("329"))["case_id"])
    task_id = await delivered_task(stack, case_id)
    await wait_until(lambda: f"{task_id}:task:1" in stack.sim.received)
    received = stack.sim.received[f"{task_id}:task:1"]
    assert received.via == "push"
    plan = received.plan

    def done() -> list[tuple[str, int | None]]:
        return [(a.kind, a.status_code) for a in stack.sim.actions if a.task_id == task_id]

    # Every planned action went through, accepted, in order.
    await wait_until(lambda: len(done()) == len(plan))
    assert done() == [(p.action.kind, 200) for p in plan]
    await stack.wait_case(case_id, "ready_for_decision")
    planned = Counter(p.action.kind for p in plan)
    assert planned["submit_part"] == 2

    # And each landed in the case's log as what it was.
    events = [e for e in await stack.events(case_id) if getattr(e, "task_id", None) == task_id]
    parts = [e for e in events if isinstance(e, OplysningPartReceived)]
    assert [p.final for p in parts] == [False] * (planned["submit_part"] - 1) + [True]
    assert len([e for e in events if isinstance(e, QuestionAsked)]) == planned["ask_question"]
    assert len([e for e in events if isinstance(e, ExtensionRequested)]) == planned["request_extension"]
    assert any(isinstance(e, OplysningCompleted) for e in events)
    assert len({p.submission_id for p in parts}) == len(parts)  # one idempotency key per part, none replayed

    document_ids = [d for p in parts for d in p.document_ids]
    sent = [d for p in plan if isinstance(p.action, SubmitPartAction) for d in p.action.documents]
    assert len(document_ids) == len(sent) > 0  # every document the kommune sent, stored
    docs = [await Documents(stack.pool).read(stack.documents, d, kommune_kode="329") for d in document_ids]
    assert all(doc.data.startswith(b"%PDF-") for doc in docs)


async def test_inbox_kommune_polls_with_its_key_and_answers(stack: Stack) -> None:
    async with inbox_kommune(stack, "751", p_question=0.0, p_partial=0.0, p_return=0.0, median_response_days=5) as sim:
        first = str((await stack.apply("751"))["case_id"])
        await stack.wait_case(first, "ready_for_decision")
        first_task = await delivered_task(stack, first)
        second = str((await stack.apply("751"))["case_id"])
        second_task = await delivered_task(stack, second)
        await wait_until(lambda: f"{second_task}:task:1" in sim.received)

    assert sim.received[f"{first_task}:task:1"].via == "inbox"
    parts = [e for e in await stack.events(first) if isinstance(e, OplysningPartReceived)]
    assert [(p.task_id, p.final) for p in parts] == [(first_task, True)]
    # Asking for what follows a message acknowledges it: the first task's message is acknowledged.
    acked = await stack.pool.fetchval(
        "SELECT acked_at IS NOT NULL FROM kommune_inbox WHERE kommune_kode = '751' AND task_id = $1 AND kind = 'task'",
        first_task,
    )
    assert acked


async def test_return_names_another_kommune_and_ends_the_plan(stack: Stack) -> None:
    async with inbox_kommune(stack, "561", p_return=1.0) as sim:
        case_id = str((await stack.apply("561"))["case_id"])
        task_id = await delivered_task(stack, case_id)

        async def returned() -> bool:
            return any(isinstance(e, OplysningReturned) for e in await stack.events(case_id))

        await eventually(returned, f"the return of case {case_id}'s task in the log")
        await wait_until(lambda: bool(sim.actions))

    (planned,) = sim.received[f"{task_id}:task:1"].plan
    assert isinstance(planned.action, ReturnTaskAction)
    assert [(a.kind, a.status_code) for a in sim.actions] == [("return_task", 200)]
    (event,) = [e for e in await stack.events(case_id) if isinstance(e, OplysningReturned)]
    assert (event.task_id, event.kommune_kode) == (task_id, "561")
    assert event.correct_kommune_kode == planned.action.correct_kommune_kode
    assert event.correct_kommune_kode in sim.profiles["561"].return_candidates


async def test_a_closed_task_stops_the_plan(stack: Stack) -> None:
    case_id = str((await stack.apply("851"))["case_id"])
    task_id = await stack.open_task(case_id)
    # The citizen withdraws before the kommune has answered: the task accepts no more answers.
    r = await stack.http.post(
        f"/v1/ops/cases/{case_id}/withdrawal", json={"idempotency_key": "w-1"}, headers=stack.ops_headers
    )
    assert r.status_code == 200, r.text
    await stack.wait_case(case_id, "withdrawn")

    async with inbox_kommune(stack, "851", p_question=0.0, p_partial=1.0, p_return=0.0, median_response_days=5) as sim:
        # A 409 ends the plan at once: the final part is never attempted.
        await wait_until(lambda: sim.stats.actions.get("submit_part:409") == 1)
    plan = sim.received[f"{task_id}:task:1"].plan
    assert [type(p.action) for p in plan] == [SubmitPartAction, SubmitPartAction]
    assert sim.stats.actions == {"submit_part:409": 1}  # the final part was never sent
    assert not [e for e in await stack.events(case_id) if isinstance(e, OplysningPartReceived)]


class OverloadedIntake:
    """A stand-in for our API's submission route, kept on purpose: it answers 503 once and then 200, which the real
    API cannot be made to do on demand. It checks only the simulator's own client behaviour (a retry under the same
    idempotency key); what the real API does with the simulator's writes is tested above."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/kommune/tasks/{task_id}/submissions")
        async def submissions(task_id: str, request: Request) -> JSONResponse:
            self.keys.append((await request.json())["idempotency_key"])
            if len(self.keys) == 1:
                return JSONResponse(status_code=503, content={"detail": "try again"})
            return JSONResponse(status_code=200, content={})

        return app


async def test_a_503_is_retried_under_the_same_key() -> None:
    intake = OverloadedIntake()
    profiles = quiet_profiles(k329={"p_question": 0.0, "p_partial": 0.0, "p_return": 0.0, "median_response_days": 1})
    settings = SimSettings(compression=20 * DAY, api_retry_delay=0.01)
    async with served(intake.app()) as url, SagsflowApiClient(url, keys={"329": "sfk.unused.key"}) as client:
        sim = KommuneSimulator(profiles, dev_secrets(MASTER), api=client, settings=settings)
        message = TaskMessage(
            message_id="t-1:task:1",
            task_id="t-1",
            case_id="case-1",
            kommune_kode="329",
            kind="task",
            deadline_at=None,
            requested_documents=("work_history",),
        )
        assert sim.accept(message, via="push")
        await wait_until(lambda: not sim._tasks)
    assert len(intake.keys) == 2
    assert intake.keys[0] == intake.keys[1]
    assert sim.stats.actions == {"submit_part:200": 1}


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

        good = signed_headers([secret], "t:task:1", now, body)
        assert await post("/kommune/329/tasks", body, {}) == 401
        assert await post("/kommune/329/tasks", body, signed_headers([secret], "t:task:1", now - 3600, body)) == 401
        assert await post("/kommune/329/tasks", body.replace(b'"c"', b'"d"'), good) == 401
        assert (
            await post("/kommune/329/tasks", body, signed_headers([dev_secrets(MASTER)("101")], "k", now, body)) == 401
        )
        # Malformed signatures and bodies the reference library chokes on are refused, never a 500.
        assert await post("/kommune/329/tasks", body, {**good, "webhook-signature": "v1-no-comma"}) == 401
        assert (
            await post("/kommune/329/tasks", b"\xff\xfe", signed_headers([secret], "t:task:1", now, b"\xff\xfe")) == 401
        )
        assert await post("/kommune/9999/tasks", body, good) == 404
        junk = b"{not json"
        assert await post("/kommune/329/tasks", junk, signed_headers([secret], "t:task:1", now, junk)) == 400
        assert await post("/kommune/329/tasks", body, signed_headers([secret], "other-key", now, body)) == 400
        assert sim.received == {}
        assert await post("/kommune/329/tasks", body, good) == 200
        assert (await http.get("/sim/stats")).json()["received"] == {"task": 1}
    assert sim.stats.rejected == {"bad_signature": 6, "unknown_kommune": 1, "bad_body": 1, "wrong_kommune_or_key": 1}
