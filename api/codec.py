"""Codec server for the Temporal Web UI and the `temporal` CLI (the Temporal codec server protocol).

`POST …/decode` and `…/encode` take and return `{"payloads": [...]}` in proto3 JSON. That body and an `X-Namespace`
header are all the clients send (the CLI adds its `--codec-auth` as `Authorization`): nothing names the workflow the
payloads belong to. Only token holders may decode: a bearer token (the stack's ops token, or a person's `sfo.…`
ops token, which the log then names), or, for the dev server's UI, which cannot send headers of its own, the ops
token as a path segment, `/codec/t/<token>/decode`. CORS admits the Web UI's origin only.

Decoding a payload is reading a person's case, so every decode is in the access log before the plain payloads
leave; if the log cannot be written, nothing is returned. Each decrypted payload is attributed by its own content,
never by the payloads sent with it (the UI may send another case's payload in the next request, or in the same
one): to every case whose id it carries in a `case_id` field (case and task inputs, results and summaries, kommune
messages, append requests), or, when it names none (a summary or details text, an update argument, a screening
result), to the namespace.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api.responses import Message
from api.state import ApiDeps, deps_of
from eventlog.access import Access, AccessEntry
from eventlog.db import StoreUnavailable
from runtime.logs import get_logger
from runtime.temporal import ENCODING, EncryptionCodec

log = get_logger(__name__)

STATIC_TOKEN_ACTOR = "codec-token"
JSON_ENCODING = b"json/plain"


@dataclass(frozen=True)
class Caller:
    actor: str
    purpose: str


WEB_UI = "payload decode in the Temporal Web UI"
BEARER = "payload decode through the codec API (e.g. temporal CLI)"


def _canonical_case_id(value: str) -> str | None:
    # Our case ids are canonical uuids (CaseInput insists); anything else in a `case_id` field is not one of ours
    # and must not reach the log, where a CPR-shaped value would be refused and a made-up one would mislead.
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return value if str(parsed) == value else None


def cases_named(payload: Payload) -> frozenset[str]:
    """The case ids a decoded payload carries in `case_id` fields, at any depth. Only JSON payloads carry them."""
    if payload.metadata.get("encoding") != JSON_ENCODING:
        return frozenset()
    try:
        root: Any = json.loads(payload.data)
    except (ValueError, RecursionError):  # not JSON after all, or nested past the parser: names no case we can see
        return frozenset()
    found: set[str] = set()
    pending = [root]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "case_id" and isinstance(value, str):
                    case_id = _canonical_case_id(value)
                    if case_id is not None:
                        found.add(case_id)
                elif isinstance(value, dict | list):
                    pending.append(value)
        elif isinstance(item, list):
            pending.extend(v for v in item if isinstance(v, dict | list))
    return frozenset(found)


def _plural(n: int) -> str:
    return "1 payload" if n == 1 else f"{n} payloads"


async def _audit(deps: ApiDeps, caller: Caller, namespace: str, sent: list[Payload], decoded: list[Payload]) -> None:
    """One access record per case named, and one for the namespace when some payloads name no case."""
    per_case: Counter[str] = Counter()
    unattributed = 0
    for original, plain in zip(sent, decoded, strict=True):
        if original.metadata.get("encoding") != ENCODING:
            continue  # sent in plain text: decoding it revealed nothing
        cases = cases_named(plain)
        per_case.update(cases)
        unattributed += not cases
    if not per_case and not unattributed:
        return
    if deps.database is None:
        raise HTTPException(status_code=503, detail="the access log is not available, so nothing was decoded")
    entries = [
        AccessEntry(f"{_plural(n)} naming this case", case_id=case_id, namespace=namespace)
        for case_id, n in sorted(per_case.items())
    ]
    if unattributed:
        what = f"{_plural(unattributed)} naming no case (a summary, details or an argument)"
        entries.append(AccessEntry(what, namespace=namespace))
    try:
        await deps.database.access.record_all(Access(caller.actor, caller.purpose), entries)
    except StoreUnavailable:
        raise HTTPException(
            status_code=503, detail="the access log could not be written, so nothing was decoded"
        ) from None
    log.info("codec decode", actor=caller.actor, namespace=namespace, cases=len(per_case), unattributed=unattributed)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _is_static_token(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode(), token.encode())


async def _bearer_caller(request: Request, deps: ApiDeps) -> Caller | None:
    presented = _bearer(request)
    if presented is None:
        return None
    if _is_static_token(presented, deps.ops_token):
        return Caller(STATIC_TOKEN_ACTOR, BEARER)
    if deps.database is None:
        return None
    try:
        principal = await deps.database.api_keys.authenticate(presented)
    except StoreUnavailable:
        raise HTTPException(status_code=503, detail="authentication is unavailable") from None
    return Caller(principal.key_id, BEARER) if principal is not None and principal.role == "ops" else None


def _path_caller(path_token: str, deps: ApiDeps) -> Caller | None:
    return Caller(STATIC_TOKEN_ACTOR, WEB_UI) if _is_static_token(path_token, deps.ops_token) else None


async def _payloads(request: Request, deps: ApiDeps) -> tuple[str, list[Payload]]:
    # The clients name the namespace they read from; a codec server holds the keys of one namespace only.
    namespace = request.headers.get("x-namespace") or deps.namespace
    if namespace != deps.namespace:
        raise HTTPException(
            status_code=400, detail=f"X-Namespace: this codec server serves namespace {deps.namespace!r} only"
        )
    try:
        body: Any = await request.json()
        return namespace, list(json_format.ParseDict(body, Payloads()).payloads)
    except Exception:
        raise HTTPException(status_code=400, detail='body must be {"payloads": [...]} in proto3 JSON') from None


async def _decode(request: Request, caller: Caller | None) -> dict[str, Any]:
    if caller is None:
        raise HTTPException(status_code=401, detail="a valid codec token is required to decode")
    deps = deps_of(request)
    namespace, sent = await _payloads(request, deps)
    try:
        decoded = await EncryptionCodec(deps.payload_ring).decode(sent)
    except Exception:
        raise HTTPException(status_code=422, detail="payloads could not be decrypted with the known keys") from None
    await _audit(deps, caller, namespace, sent, decoded)
    return json_format.MessageToDict(Payloads(payloads=decoded))


async def _encode(request: Request, caller: Caller | None) -> dict[str, Any]:
    if caller is None:
        raise HTTPException(status_code=401, detail="a valid codec token is required to encode")
    deps = deps_of(request)
    _, sent = await _payloads(request, deps)
    return json_format.MessageToDict(Payloads(payloads=await EncryptionCodec(deps.payload_ring).encode(sent)))


def codec_router() -> APIRouter:
    router = APIRouter(tags=["codec"])
    declared: dict[int | str, dict[str, Any]] = {
        400: {
            "model": Message,
            "description": "The body is not Temporal payloads in proto3 JSON, or another namespace",
        },
        401: {"model": Message, "description": "No valid codec token"},
        422: {"model": Message, "description": "The payloads cannot be decrypted with the known keys"},
        503: {"model": Message, "description": "The access log cannot be written: nothing is decoded"},
    }

    @router.post("/codec/decode", responses=declared)
    async def decode(request: Request) -> dict[str, Any]:
        """Decrypt payloads for the `temporal` CLI (`--codec-endpoint …/codec --codec-auth "Bearer <token>"`)."""
        return await _decode(request, await _bearer_caller(request, deps_of(request)))

    @router.post("/codec/encode", responses=declared)
    async def encode(request: Request) -> dict[str, Any]:
        return await _encode(request, await _bearer_caller(request, deps_of(request)))

    @router.post("/codec/t/{path_token}/decode", include_in_schema=False)
    async def decode_path_token(path_token: str, request: Request) -> dict[str, Any]:
        return await _decode(request, _path_caller(path_token, deps_of(request)))

    @router.post("/codec/t/{path_token}/encode", include_in_schema=False)
    async def encode_path_token(path_token: str, request: Request) -> dict[str, Any]:
        return await _encode(request, _path_caller(path_token, deps_of(request)))

    return router
