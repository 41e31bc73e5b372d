"""A backlog to one slow kommune must not hold the worker: 500 queued messages to a kommune that takes two a second
(four minutes of backlog), through a real worker with few activity slots on the dev server, while another kommune's
messages go out as they come. Waiting for a rate limit gives the slot back (a retry when the message's place is
due), so the others never queue behind the backlog; the event-log appends share the same slots and flow the same
way. Before, every slot slept inside the activity and nothing else ran until the backlog had drained."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.kommune_delivery import KommuneDelivery
from runtime.kommune_config import ChannelConfig, StaticChannels
from runtime.temporal import sandbox_runner
from tests.kommune.delivery_workflow import DeliverOnce
from tests.kommune.helpers import quiet_profiles, receive_only, served
from tests.kommune.test_delivery import push, task_input
from workflows.models import DeliveryReceipt

BACKLOG = 500
OTHERS = 20
SLOW_RATE = 2.0


@pytest.mark.slow
async def test_a_backlog_to_one_slow_kommune_leaves_the_other_kommuner_flowing(dev_env: WorkflowEnvironment) -> None:
    sim = receive_only(quiet_profiles())
    queue = f"backlog-{uuid.uuid4().hex[:8]}"
    client = dev_env.client

    def sent_to(kode: str) -> int:
        return sum(1 for r in sim.received.values() if r.message.kommune_kode == kode)

    async with served(sim) as url, httpx.AsyncClient() as http:
        slow = push(url, "329").model_copy(update={"rate_per_second": SLOW_RATE, "burst": 1})
        channels = StaticChannels(ChannelConfig(kommuner={"329": slow, "101": push(url, "101")}))
        async with Worker(
            client,
            task_queue=queue,
            workflows=[DeliverOnce],
            activities=[KommuneDelivery(None, channels, http).deliver_task],
            workflow_runner=sandbox_runner(),
            # Few slots, so a delivery that waited in its slot would stall everything behind it.
            max_concurrent_activities=4,
        ):

            async def start(kode: str) -> WorkflowHandle[DeliverOnce, DeliveryReceipt]:
                inp = task_input(kode)
                return await client.start_workflow(
                    DeliverOnce.run,
                    inp,
                    id=f"wf-{inp.task_id}",
                    task_queue=queue,
                    execution_timeout=timedelta(minutes=10),
                )

            backlog = await asyncio.gather(*(start("329") for _ in range(BACKLOG)))
            others = await asyncio.gather(*(start("101") for _ in range(OTHERS)))
            try:
                # The limit only turns a stall into a failure; the backlog alone would take BACKLOG / SLOW_RATE s.
                await asyncio.wait_for(asyncio.gather(*(h.result() for h in others)), timeout=120)
                slow_sent = sent_to("329")
            finally:
                await asyncio.gather(*(h.terminate("test over") for h in backlog), return_exceptions=True)

    assert sent_to("101") == OTHERS
    # The other kommune's messages went out while the slow kommune's backlog was still almost all waiting.
    assert 0 < slow_sent < BACKLOG // 4, slow_sent
