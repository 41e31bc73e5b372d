"""`deliver_task` against the real simulator over HTTP, the inbox in PostgreSQL, and through a Temporal worker."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.kommune_delivery import (
    RATE_LIMITED,
    REJECTED,
    SIGNATURE_REFUSED_ATTEMPTS,
    TEMPORARY,
    KommuneDelivery,
    KommuneRateLimiter,
)
from domain.events import Channel
from eventlog.inbox import InboxStore
from runtime.kommune_config import (
    ChannelConfig,
    InboxChannel,
    PushChannel,
    StaticChannels,
    derive_push_secret,
    dev_channel_config,
)
from runtime.temporal import sandbox_runner
from sim.server import SimSettings
from tests.kommune.delivery_workflow import DeliverOnce
from tests.kommune.helpers import MASTER, quiet_profiles, receive_only, served
from workflows.models import DeliveryReceipt, KommuneMessage

DEADLINE = datetime(2021, 6, 2, 22, 0, tzinfo=UTC)


def task_input(kode: str = "329", kind: str = "task", **kw: object) -> KommuneMessage:
    return KommuneMessage.model_validate(
        {
            "task_id": f"task-{uuid.uuid4().hex[:8]}",
            "case_id": "case-1",
            "kommune_kode": kode,
            "kind": kind,
            "deadline_at": DEADLINE,
            "requested_documents": ("work_history", "health_records"),
            **kw,
        }
    )


def push(url: str, kode: str, *, secret: str | None = None, timeout: float = 5.0) -> PushChannel:
    return PushChannel(
        url=f"{url}/kommune/{kode}/tasks",
        secret=SecretStr(secret or derive_push_secret(MASTER, kode)),
        timeout_seconds=timeout,
        rate_per_second=1000,
        burst=1000,
    )


async def run_activity(delivery: KommuneDelivery, inp: KommuneMessage) -> DeliveryReceipt:
    result: DeliveryReceipt = await ActivityEnvironment().run(delivery.deliver_task, inp)
    return result


async def test_push_is_signed_and_accepted_without_personal_data() -> None:
    sim = receive_only(quiet_profiles())
    async with served(sim) as url, httpx.AsyncClient() as http:
        channels = StaticChannels(dev_channel_config(url, MASTER))
        delivery = KommuneDelivery(None, channels, http)
        inp = task_input()
        result = await run_activity(delivery, inp)

    assert result == DeliveryReceipt(channel=Channel.PUSH, status_code=200)
    (received,) = sim.received.values()
    assert received.message.message_id == f"{inp.task_id}:task:1"
    assert received.message.task_id == inp.task_id
    assert received.message.deadline_at == DEADLINE
    assert received.message.requested_documents == ("work_history", "health_records")
    # The body has ids, the deadline, the document list and where to fetch the person: nothing that identifies them.
    assert set(received.message.model_dump()) == {
        "message_id", "task_id", "case_id", "kommune_kode", "kind", "deadline_at", "requested_documents", "notice",
        "citizen_path",
    }  # fmt: skip
    assert received.message.citizen_path == f"/v1/kommune/tasks/{inp.task_id}/citizen"
    assert sim.stats.rejected == {}


async def test_wrong_secret_is_refused_by_the_receiver_retried_a_few_times_then_rejected() -> None:
    sim = receive_only(quiet_profiles())
    async with served(sim) as url, httpx.AsyncClient() as http:
        bad = ChannelConfig(kommuner={"329": push(url, "329", secret="not-the-kommunes-secret")})
        delivery = KommuneDelivery(None, StaticChannels(bad), http)
        # A refused signature may heal (a rotation's cut-over, a body damaged on the way): retried at first ...
        with pytest.raises(ApplicationError) as first:
            await run_activity(delivery, task_input())
        assert first.value.type == TEMPORARY
        assert not first.value.non_retryable
        assert first.value.message == "kommune 329: push signature refused (HTTP 401)"
        # ... but a secret that stays wrong fails for good, for operations to see.
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, attempt=SIGNATURE_REFUSED_ATTEMPTS)
        with pytest.raises(ApplicationError) as last:
            await env.run(delivery.deliver_task, task_input())
    assert last.value.non_retryable
    assert last.value.type == REJECTED
    assert "HTTP 401" in last.value.message
    assert sim.stats.rejected["bad_signature"] == 2
    assert sim.received == {}


async def test_5xx_is_a_retryable_error() -> None:
    sim = receive_only(quiet_profiles(k329={"push_5xx_rate": 1.0}))
    async with served(sim) as url, httpx.AsyncClient() as http:
        delivery = KommuneDelivery(None, StaticChannels(ChannelConfig(kommuner={"329": push(url, "329")})), http)
        with pytest.raises(ApplicationError) as caught:
            await run_activity(delivery, task_input())
    assert not caught.value.non_retryable
    assert caught.value.type == TEMPORARY
    assert caught.value.message == "kommune 329: push answered HTTP 503"


async def test_400_is_non_retryable_with_a_technical_reason() -> None:
    """Kommune 329's URL points at kommune 101's endpoint (with 101's secret): the receiver answers 400."""
    sim = receive_only(quiet_profiles())
    async with served(sim) as url, httpx.AsyncClient() as http:
        misrouted = PushChannel(
            url=f"{url}/kommune/101/tasks", secret=SecretStr(derive_push_secret(MASTER, "101")), rate_per_second=100
        )
        delivery = KommuneDelivery(None, StaticChannels(ChannelConfig(kommuner={"329": misrouted})), http)
        with pytest.raises(ApplicationError) as caught:
            await run_activity(delivery, task_input())
    assert caught.value.non_retryable
    assert caught.value.type == REJECTED
    assert caught.value.message == "kommune 329: push rejected with HTTP 400"
    assert caught.value.details == ({"kommune_kode": "329", "status_code": 400},)


async def test_timeout_is_retryable_and_the_retry_is_deduplicated_by_idempotency_key() -> None:
    profiles = quiet_profiles(k561={"push_timeout_rate": 1.0})
    sim = receive_only(profiles, SimSettings(act=False, timeout_hang_seconds=1.0))
    async with served(sim) as url, httpx.AsyncClient() as http:
        channels = StaticChannels(ChannelConfig(kommuner={"561": push(url, "561", timeout=0.3)}))
        delivery = KommuneDelivery(None, channels, http)
        inp = task_input("561")
        with pytest.raises(ApplicationError) as caught:
            await run_activity(delivery, inp)
        assert caught.value.type == TEMPORARY
        assert not caught.value.non_retryable
        # The kommune's system processed the message although its answer came too late; the retry must not
        # create a second task there.
        sim.profiles["561"] = profiles["561"].model_copy(update={"push_timeout_rate": 0.0})
        assert await run_activity(delivery, inp) == DeliveryReceipt(channel=Channel.PUSH, status_code=200)
    assert list(sim.received) == [f"{inp.task_id}:task:1"]
    assert sim.stats.duplicates == 1
    assert sim.attempts[f"{inp.task_id}:task:1"] == 2


async def test_unreachable_kommune_is_retryable() -> None:
    async with httpx.AsyncClient() as http:
        dead = PushChannel(url="http://127.0.0.1:9/kommune/329/tasks", secret=SecretStr("x" * 32), timeout_seconds=2)
        delivery = KommuneDelivery(None, StaticChannels(ChannelConfig(kommuner={"329": dead})), http)
        with pytest.raises(ApplicationError) as caught:
            await run_activity(delivery, task_input())
    assert caught.value.type == TEMPORARY
    assert not caught.value.non_retryable


async def test_no_channel_is_rejected() -> None:
    async with httpx.AsyncClient() as http:
        delivery = KommuneDelivery(None, StaticChannels(ChannelConfig()), http)
        with pytest.raises(ApplicationError) as caught:
            await run_activity(delivery, task_input())
    assert caught.value.non_retryable
    assert caught.value.type == REJECTED


async def test_idempotency_keys_per_kind() -> None:
    async with httpx.AsyncClient() as http:
        delivery = KommuneDelivery(None, StaticChannels(ChannelConfig()), http)
        assert delivery.message_for(task_input(kind="reminder", seq=2, task_id="t1")).message_id == "t1:reminder:2"
        notice = task_input(kind="notice", notice="withdrawn", task_id="t1")
        assert delivery.message_for(notice).message_id == "t1:notice:withdrawn"
        # A notice comes when the task has closed or is closing: it names no path to a person it no longer gives.
        assert delivery.message_for(notice).citizen_path is None
        reminder = delivery.message_for(task_input(kind="reminder", seq=2, task_id="t1"))
        assert reminder.citizen_path == "/v1/kommune/tasks/t1/citizen"
        # Without a seq, a reminder's key comes from the activity's identity: stable over that activity's retries.
        env = ActivityEnvironment()
        derived = task_input(kind="reminder", task_id="t1")
        first = env.run(lambda: delivery.message_for(derived).message_id)
        again = env.run(lambda: delivery.message_for(derived).message_id)
    assert first == again
    assert first.startswith("t1:reminder:a")


async def test_inbox_delivery_is_stored_once_in_postgres(pool: asyncpg.Pool) -> None:
    channels = StaticChannels(ChannelConfig(kommuner={"101": InboxChannel()}))
    async with httpx.AsyncClient() as http:
        delivery = KommuneDelivery(InboxStore(pool), channels, http)
        inp = task_input("101")
        assert await run_activity(delivery, inp) == DeliveryReceipt(channel=Channel.INBOX)
        # A retry after a lost completion stores nothing new.
        assert await run_activity(delivery, inp) == DeliveryReceipt(channel=Channel.INBOX)
        reminder = task_input("101", kind="reminder", seq=1, task_id=inp.task_id)
        await run_activity(delivery, reminder)

    rows = await pool.fetch("SELECT * FROM kommune_inbox ORDER BY seq")
    assert [(r["kommune_kode"], r["seq"], r["kind"], r["task_id"]) for r in rows] == [
        ("101", 1, "task", inp.task_id),
        ("101", 2, "reminder", inp.task_id),
    ]
    body = json.loads(rows[0]["body"])
    assert body["requested_documents"] == ["work_history", "health_records"]
    assert rows[0]["acked_at"] is None

    inbox = InboxStore(pool)
    page = await inbox.poll("101")
    assert [m.seq for m in page.messages] == [1, 2]
    assert page.messages[0].message.task_id == inp.task_id
    assert (await inbox.poll("329")).messages == []
    # Asking for what comes after 1 acknowledges 1.
    after = await inbox.poll("101", after=1)
    assert [m.seq for m in after.messages] == [2]
    acked = await pool.fetch("SELECT seq FROM kommune_inbox WHERE acked_at IS NOT NULL")
    assert [r["seq"] for r in acked] == [1]


class FakeClock:
    """Virtual time for the token bucket: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_per_kommune_gives_each_waiting_call_its_place() -> None:
    clock = FakeClock()
    limiter = KommuneRateLimiter(clock=clock)
    # Burst 2 at 2/s: two at once, then one every half second, each waiting call with a place of its own.
    waits = [limiter.reserve("329", rate=2.0, burst=2, key=f"m{i}") for i in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5])
    # Another kommune has its own limit: no wait.
    assert limiter.reserve("101", rate=2.0, burst=2, key="m0") == 0.0
    # Asking again before its place is due says how long is left; once due, the call goes on its place.
    clock.now = 0.75
    assert limiter.reserve("329", rate=2.0, burst=2, key="m3") == pytest.approx(0.25)
    clock.now = 1.0
    assert limiter.reserve("329", rate=2.0, burst=2, key="m3") == 0.0
    # A newcomer queues behind every place given out, not in front of it.
    assert limiter.reserve("329", rate=2.0, burst=2, key="m5") == pytest.approx(1.0)
    # After a quiet spell the limit refills up to the burst, not beyond.
    clock.now += 100
    waits = [limiter.reserve("329", rate=2.0, burst=2, key=f"n{i}") for i in range(3)]
    assert waits == pytest.approx([0.0, 0.0, 0.5])


async def test_a_long_wait_for_the_rate_limit_gives_the_slot_back_and_keeps_the_place() -> None:
    clock = FakeClock()
    sim = receive_only(quiet_profiles())
    async with served(sim) as url, httpx.AsyncClient() as http:
        slow = push(url, "329").model_copy(update={"rate_per_second": 0.5, "burst": 1})
        channels = StaticChannels(ChannelConfig(kommuner={"329": slow}))
        limiter = KommuneRateLimiter(clock=clock)
        delivery = KommuneDelivery(None, channels, http, limiter=limiter, sleep=clock.sleep)
        first, second = task_input(), task_input()
        await run_activity(delivery, first)
        # Two seconds to wait: no sleeping in the activity, a retry when the place is due instead.
        with pytest.raises(ApplicationError) as waiting:
            await run_activity(delivery, second)
        assert waiting.value.type == RATE_LIMITED and not waiting.value.non_retryable
        assert waiting.value.next_retry_delay == timedelta(seconds=2)
        assert len(sim.received) == 1 and clock.slept == []
        clock.now += 2.0
        await run_activity(delivery, second)
        # A short wait is slept in place.
        clock.now += 1.5
        await run_activity(delivery, task_input())
    assert clock.slept == pytest.approx([0.5])
    assert len(sim.received) == 3


async def test_through_a_worker_5xx_retries_until_accepted_and_4xx_fails_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    profiles = quiet_profiles(k329={"reject_first_deliveries": 2})
    sim = receive_only(profiles)
    queue = f"delivery-{uuid.uuid4().hex[:8]}"
    async with served(sim) as url, httpx.AsyncClient() as http:
        # Kommune 101's URL points at 810's endpoint: a 400, which no retry can cure.
        config = ChannelConfig(kommuner={"329": push(url, "329"), "101": push(url, "810")})
        delivery = KommuneDelivery(None, StaticChannels(config), http)
        client = time_skipping_env.client
        async with Worker(
            client,
            task_queue=queue,
            workflows=[DeliverOnce],
            activities=[delivery.deliver_task],
            workflow_runner=sandbox_runner(),
        ):
            ok = task_input("329")
            result = await client.execute_workflow(
                DeliverOnce.run, ok, id=f"wf-{ok.task_id}", task_queue=queue, execution_timeout=timedelta(minutes=5)
            )
            assert result == DeliveryReceipt(channel=Channel.PUSH, status_code=200)
            assert sim.attempts[f"{ok.task_id}:task:1"] == 3

            refused = task_input("101")
            with pytest.raises(WorkflowFailureError) as caught:
                await client.execute_workflow(DeliverOnce.run, refused, id=f"wf-{refused.task_id}", task_queue=queue)
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    app_error = activity_error.cause
    assert isinstance(app_error, ApplicationError)
    assert app_error.type == REJECTED
    assert app_error.non_retryable
    assert sim.stats.rejected["wrong_kommune_or_key"] == 1  # one attempt only
