"""One walk over an activation's payloads instead of six, for the simulation's shard processes.

temporalio 1.35 walks every workflow activation three times to decode its payloads (external-storage references,
external storage, then the codec) and every completion three times to encode them, each walk a full traversal of
the protobuf in Python. Without external storage the first two steps of each trio change nothing, yet the walks
took a tenth of a simulation worker's CPU (py-spy). Applying the same three steps to each payload sequence in one
walk gives exactly the same payloads; with external storage configured the SDK's own functions run unchanged.

Only `sagsflow simulate` installs this, in its shard processes, where the worker's CPU is the run's limit (a
year-long shard: 13% less worker CPU, paired runs). Production workers run the SDK as shipped. Bound to the pinned
SDK version: with any other version `install` leaves the SDK alone and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import temporalio
import temporalio.bridge.worker as bridge_worker
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter
from temporalio.converter._extstore import StorageOperationMetrics
from temporalio.worker._command_aware_visitor import CommandAwarePayloadVisitor

from runtime.logs import get_logger

log = get_logger(__name__)

SDK_VERSION = "1.35.0"
_sdk_decode = bridge_worker.decode_activation
_sdk_encode = bridge_worker.encode_completion


Step = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


async def _walk(message: Message, steps: tuple[Step, ...], headers: bool) -> StorageOperationMetrics:
    async def each(payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for step in steps:
            out = await step(out)
        return out

    visitor = CommandAwarePayloadVisitor(skip_search_attributes=True, skip_headers=not headers)
    await visitor.visit(bridge_worker._Visitor(each), message)
    return StorageOperationMetrics()  # nothing went to or came from external storage


async def decode_activation(
    activation: WorkflowActivation,
    data_converter: DataConverter,
    decode_headers: bool,
    storage_concurrency_limit: int,
) -> StorageOperationMetrics:
    if data_converter.external_storage is not None:
        return await _sdk_decode(activation, data_converter, decode_headers, storage_concurrency_limit)
    steps = (
        data_converter._decode_reference_payload_sequence,
        data_converter._external_retrieve_payload_sequence,
        data_converter._decode_payload_sequence,
    )
    return await _walk(activation, steps, decode_headers)


async def encode_completion(
    completion: WorkflowActivationCompletion,
    data_converter: DataConverter,
    encode_headers: bool,
    storage_concurrency_limit: int,
) -> StorageOperationMetrics:
    if data_converter.external_storage is not None:
        return await _sdk_encode(completion, data_converter, encode_headers, storage_concurrency_limit)
    steps = (
        data_converter._encode_payload_sequence,
        data_converter._external_store_payload_sequence,
        data_converter._encode_reference_payload_sequence,
    )
    return await _walk(completion, steps, encode_headers)


def install() -> bool:
    """Make this process's workflow workers use the single walk; False (and a warning) on another SDK version."""
    if temporalio.__version__ != SDK_VERSION:
        log.warning("payload walk left as shipped: written for another SDK", sdk=temporalio.__version__)
        return False
    bridge_worker.decode_activation = decode_activation
    bridge_worker.encode_completion = encode_completion
    return True
