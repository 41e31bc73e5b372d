"""The simulation's single payload walk gives exactly the SDK's payloads, for activations and completions alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import temporalio
import temporalio.bridge.worker as bridge_worker
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter, PayloadCodec

from sim import payload_visits


class Reversing(PayloadCodec):
    """Deterministic, so the two walks' outputs can be compared byte for byte (AES-GCM draws a nonce)."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata={"encoding": b"reversed"}, data=p.SerializeToString()[::-1]) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            inner = Payload()
            inner.ParseFromString(p.data[::-1])
            out.append(inner)
        return out


CONVERTER = dataclasses.replace(DataConverter.default, payload_codec=Reversing())


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def _encoded(text: str) -> Payload:
    (payload,) = await Reversing().encode([_payload(text)])
    return payload


def _completion() -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id="r")
    schedule = completion.successful.commands.add().schedule_activity
    schedule.activity_type = "append_events"
    schedule.arguments.extend([_payload("events"), _payload("more")])
    schedule.headers["h"].CopyFrom(_payload("header"))
    completion.successful.commands.add().complete_workflow_execution.result.CopyFrom(_payload("result"))
    return completion


async def _activation() -> WorkflowActivation:
    activation = WorkflowActivation(run_id="r")
    start = activation.jobs.add().initialize_workflow
    start.arguments.extend([await _encoded("input")])
    start.headers["h"].CopyFrom(await _encoded("header"))
    resolved = activation.jobs.add().resolve_activity.result.completed.result
    resolved.CopyFrom(await _encoded("appended"))
    activation.jobs.add().signal_workflow.input.extend([await _encoded("signal")])
    return activation


async def test_one_walk_encodes_a_completion_exactly_as_the_sdk_does() -> None:
    for headers in (True, False):
        ours, sdks = _completion(), _completion()
        await payload_visits.encode_completion(ours, CONVERTER, headers, 4)
        await payload_visits._sdk_encode(sdks, CONVERTER, headers, 4)
        assert ours.SerializeToString(deterministic=True) == sdks.SerializeToString(deterministic=True)
        assert ours != _completion()  # it did encode


async def test_one_walk_decodes_an_activation_exactly_as_the_sdk_does() -> None:
    for headers in (True, False):
        ours, sdks = await _activation(), await _activation()
        await payload_visits.decode_activation(ours, CONVERTER, headers, 4)
        await payload_visits._sdk_decode(sdks, CONVERTER, headers, 4)
        assert ours.SerializeToString(deterministic=True) == sdks.SerializeToString(deterministic=True)
        assert ours.jobs[0].initialize_workflow.arguments[0] == _payload("input")


def test_install_replaces_the_sdk_walks_for_this_sdk_version_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_worker, "decode_activation", payload_visits._sdk_decode)
    monkeypatch.setattr(bridge_worker, "encode_completion", payload_visits._sdk_encode)
    monkeypatch.setattr(temporalio, "__version__", "9.9.9")
    assert not payload_visits.install()
    assert bridge_worker.decode_activation is payload_visits._sdk_decode
    monkeypatch.setattr(temporalio, "__version__", payload_visits.SDK_VERSION)
    assert payload_visits.install()
    assert bridge_worker.decode_activation is payload_visits.decode_activation
    assert bridge_worker.encode_completion is payload_visits.encode_completion
