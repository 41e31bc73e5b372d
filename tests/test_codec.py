"""Payloads and failures leave the process encrypted: no CPR number in the server's history."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.crypto import KeyRing, KeyRingError
from runtime.temporal import ENCODING, EncryptionCodec, sandbox_runner

CPR = "010155-1234"


@activity.defn
async def echo_person(cpr: str) -> str:
    return f"processed {cpr}"


@workflow.defn
class PersonWorkflow:
    @workflow.run
    async def run(self, cpr: str) -> str:
        workflow.set_current_details(f"details about {cpr}")
        out = await workflow.execute_activity(echo_person, cpr, start_to_close_timeout=timedelta(seconds=10))
        if cpr.endswith("9999"):
            raise ApplicationError(f"cannot handle {cpr}", non_retryable=True)
        return out


async def test_cpr_never_in_plain_history(time_skipping_env: WorkflowEnvironment) -> None:
    client = time_skipping_env.client
    async with Worker(
        client,
        task_queue="codec-test",
        workflows=[PersonWorkflow],
        activities=[echo_person],
        workflow_runner=sandbox_runner(),
    ):
        handle = await client.start_workflow(
            PersonWorkflow.run,
            CPR,
            id=f"codec-{uuid.uuid4()}",
            task_queue="codec-test",
            static_summary=f"summary {CPR}",
        )
        assert await handle.result() == f"processed {CPR}"
        history = await handle.fetch_history()
    raw = history.to_json()
    assert CPR not in raw
    assert CPR.replace("-", "") not in raw
    assert ENCODING.decode() in raw or "YmluYXJ5L2VuY3J5cHRlZA" in raw  # encoding metadata is base64 in JSON


async def test_failure_message_is_encrypted(time_skipping_env: WorkflowEnvironment) -> None:
    client = time_skipping_env.client
    bad = "010155-9999"
    async with Worker(
        client,
        task_queue="codec-test-2",
        workflows=[PersonWorkflow],
        activities=[echo_person],
        workflow_runner=sandbox_runner(),
    ):
        handle = await client.start_workflow(
            PersonWorkflow.run, bad, id=f"codec-{uuid.uuid4()}", task_queue="codec-test-2"
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        # Our own client decodes the message...
        assert isinstance(info.value.cause, ApplicationError)
        assert bad in info.value.cause.message
        history = await handle.fetch_history()
    # ...but the server only ever held ciphertext.
    assert bad not in history.to_json()


async def test_key_rotation_reads_old_payloads() -> None:
    old = KeyRing.generate("k1")
    new_ring = KeyRing(active="k2", keys={**old.keys, "k2": KeyRing.generate("k2").keys["k2"]})
    from temporalio.api.common.v1 import Payload

    encoded = await EncryptionCodec(old).encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])
    assert encoded[0].metadata["encryption-key-id"] == b"k1"
    decoded = await EncryptionCodec(new_ring).decode(encoded)
    assert decoded[0].data == b'"x"'
    fresh = await EncryptionCodec(new_ring).encode([Payload(data=b"y")])
    assert fresh[0].metadata["encryption-key-id"] == b"k2"
    with pytest.raises(KeyRingError):
        await EncryptionCodec(KeyRing.generate("k3")).decode(fresh)
