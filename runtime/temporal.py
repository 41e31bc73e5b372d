"""The one place that builds Temporal clients and data converters.

Every payload (inputs, results, update arguments, UI summaries) and every failure message is AES-GCM encrypted
before it leaves the process, so the Temporal server and its database never hold personal data in plain text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec
from temporalio.runtime import Runtime
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from runtime.config import Settings
from runtime.crypto import KeyRing, KeyRingError, load_or_create_key_ring

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            key_id, blob = self.ring.encrypt(p.SerializeToString())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID_META: key_id.encode()}, data=blob))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            key_id = p.metadata.get(KEY_ID_META, b"").decode()
            try:
                plain = self.ring.decrypt(key_id, p.data)
            except KeyRingError:
                raise
            except Exception as exc:  # cryptography raises InvalidTag without a message
                raise KeyRingError(f"payload could not be decrypted with key {key_id!r}") from exc
            decoded = Payload()
            decoded.ParseFromString(plain)
            out.append(decoded)
        return out


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter, one instance per process.

    The SDK builds a new data converter, and with it a new payload converter, for every workflow activation it
    encodes or decodes. A new pydantic converter starts with an empty type-adapter cache and costs more to build
    than the activation's own work. It holds no per-context state, so all of them can be the same one.
    """

    _shared: SharedPydanticPayloadConverter | None = None

    def __new__(cls) -> SharedPydanticPayloadConverter:
        if cls._shared is None:
            shared = super().__new__(cls)
            PydanticPayloadConverter.__init__(shared)
            cls._shared = shared
        return cls._shared

    def __init__(self) -> None:
        pass  # built once, in __new__


# Modules the workflow sandbox shares with the host instead of re-importing per run: our pure domain (deterministic,
# no I/O) and libraries that are either native (re-importing breaks them) or slow to import.
PASSTHROUGH_MODULES = (
    "domain",
    "runtime",
    # Pure name/type constants the workflows set; shared as the old `sagsflow` package shared them.
    "workflows.search_attributes",
    "pydantic",
    "pydantic_core",
    "holidays",
    "stdnum",
    "cryptography",
    "structlog",
    "zoneinfo",
)


def sandbox_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def data_converter(ring: KeyRing) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SharedPydanticPayloadConverter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def key_ring(settings: Settings) -> KeyRing:
    # A configured key file must exist; only the embedded default may invent a key.
    if settings.codec_key_file is None:
        settings.dev_fallback("SAGSFLOW_CODEC_KEY_FILE")
    return load_or_create_key_ring(settings.key_file, create=settings.codec_key_file is None)


def temporal_address(settings: Settings) -> str:
    """TEMPORAL_ADDRESS, else the embedded dev stack's server on loopback."""
    return settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"


async def connect(
    settings: Settings,
    *,
    address: str | None = None,
    runtime: Runtime | None = None,
) -> Client:
    target = address or temporal_address(settings)
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(key_ring(settings)),
        runtime=runtime,
    )
