"""Codec server for the Temporal Web UI and CLI (the Temporal codec server protocol).

`POST /codec/decode` and `/codec/encode` take and return `{"payloads": [...]}` in proto3 JSON. Only authorised staff
may decode: a bearer token in `Authorization`, or (for the dev server's UI, which cannot send headers of its own)
the token as a path segment, `/codec/t/<token>/decode`. CORS admits the Web UI's origin only. Every decode is
reported to `on_decode`, which writes the access log: decoding a payload is reading a person's case.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.responses import Message
from sagsflow.temporal import EncryptionCodec

DecodeHook = Callable[["DecodeAudit"], Awaitable[None]]


@dataclass(frozen=True)
class DecodeAudit:
    actor: str
    namespace: str
    payload_count: int
    workflow_hint: str | None


def _authorised(presented: str | None, token: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


def codec_router(codec: EncryptionCodec, token: str, on_decode: DecodeHook) -> APIRouter:
    router = APIRouter(tags=["codec"])

    async def _parse(request: Request) -> Payloads:
        try:
            body: Any = await request.json()
            return json_format.ParseDict(body, Payloads())
        except Exception:
            raise HTTPException(status_code=400, detail='body must be {"payloads": [...]} in proto3 JSON') from None

    async def _decode(request: Request, presented: str | None) -> dict[str, Any]:
        if not _authorised(presented, token):
            raise HTTPException(status_code=401, detail="a valid codec token is required to decode")
        payloads = await _parse(request)
        try:
            decoded = await codec.decode(list(payloads.payloads))
        except Exception:
            raise HTTPException(status_code=422, detail="payloads could not be decrypted with the known keys") from None
        await on_decode(
            DecodeAudit(
                actor="codec-token",
                namespace=request.headers.get("x-namespace", "default"),
                payload_count=len(decoded),
                workflow_hint=request.headers.get("x-workflow-id"),
            )
        )
        return json_format.MessageToDict(Payloads(payloads=decoded))

    async def _encode(request: Request, presented: str | None) -> dict[str, Any]:
        if not _authorised(presented, token):
            raise HTTPException(status_code=401, detail="a valid codec token is required to encode")
        payloads = await _parse(request)
        return json_format.MessageToDict(Payloads(payloads=await codec.encode(list(payloads.payloads))))

    declared: dict[int | str, dict[str, Any]] = {
        400: {"model": Message, "description": "The body is not Temporal payloads in proto3 JSON"},
        401: {"model": Message, "description": "No valid codec token"},
        422: {"model": Message, "description": "The payloads cannot be decrypted with the known keys"},
    }

    @router.post("/codec/decode", responses=declared)
    async def decode(request: Request) -> dict[str, Any]:
        return await _decode(request, _bearer(request))

    @router.post("/codec/encode", responses=declared)
    async def encode(request: Request) -> dict[str, Any]:
        return await _encode(request, _bearer(request))

    @router.post("/codec/t/{path_token}/decode", include_in_schema=False)
    async def decode_path_token(path_token: str, request: Request) -> dict[str, Any]:
        return await _decode(request, path_token)

    @router.post("/codec/t/{path_token}/encode", include_in_schema=False)
    async def encode_path_token(path_token: str, request: Request) -> dict[str, Any]:
        return await _encode(request, path_token)

    return router
