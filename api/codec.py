"""Codec server for the Temporal Web UI and the `temporal` CLI (the Temporal codec server protocol).

`POST …/decode` and `…/encode` take and return `{"payloads": [...]}` in proto3 JSON. That body and an `X-Namespace`
header are all the clients send (the CLI adds its `--codec-auth` as `Authorization`): nothing names the workflow the
payloads belong to. Only a person may decode: their bearer token (`api.auth.caller_of`, the one "who is calling"
seam) naming a role that reads cases (caseworker, team-lead, reader), and the log names that person. Why they read
comes in `X-Purpose`; without one, a fixed purpose says through which client the decode came. No token ever travels
in the URL: the dev stack's Web UI reaches this server through its login gateway (`api/ui_gateway.py`), which adds
the person's token and purpose from its cookies. CORS admits the Web UI's origin only.

Decoding a payload is reading a person's case, so every decode is in the access log before the plain payloads
leave; if the log cannot be written, nothing is returned. Each decrypted payload is attributed by its own content,
never by the payloads sent with it (the UI may send another case's payload in the next request, or in the same
one): to every case whose id it carries in a `case_id` field (case and task inputs, results and summaries, kommune
messages, append requests), or, when it names none (a summary or details text, an update argument, a screening
result), to the namespace.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from google.protobuf import json_format
from pydantic import TypeAdapter, ValidationError
from temporalio.api.common.v1 import Payload, Payloads

from api.auth import caller_of
from api.responses import Message
from api.state import ApiDeps, deps_of
from domain.boundary import Purpose
from eventlog.access import Access, AccessEntry
from eventlog.db import StoreUnavailable
from runtime.identity import Role, Staff
from runtime.logs import get_logger
from runtime.temporal import ENCODING, EncryptionCodec

log = get_logger(__name__)

JSON_ENCODING = b"json/plain"


@dataclass(frozen=True)
class Caller:
    actor: str
    purpose: str


# The roles that read cases may read them decoded; intake files applications and the auditor reads the log only.
DECODE_ROLES: tuple[Role, ...] = ("caseworker", "team-lead", "reader")
PURPOSE_HEADER = "x-purpose"
# What the log says when the client states no purpose (the `temporal` CLI cannot send one).
BEARER = "payload decode through the codec API (e.g. temporal CLI)"
_PURPOSE: TypeAdapter[str] = TypeAdapter(Purpose)


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


def _stated_purpose(request: Request) -> str:
    raw = request.headers.get(PURPOSE_HEADER)
    if raw is None or not raw.strip():
        return BEARER
    # Header bytes reach us as Latin-1; clients (curl, the gateway) send UTF-8, so "Forbereder afgørelse" arrives
    # as itself. Bytes that are not UTF-8 were meant as Latin-1 after all.
    try:
        text = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        text = raw
    try:
        return _PURPOSE.validate_python(text.strip())
    except ValidationError:
        # Not echoed: a purpose that fails the check may be the very CPR number it must not carry.
        raise HTTPException(status_code=400, detail="X-Purpose: 3-200 characters on one line, no CPR number") from None


async def _staff_caller(request: Request) -> Caller:
    caller = await caller_of(request)
    if caller is None:
        raise HTTPException(
            status_code=401, detail="a person's bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    if not isinstance(caller, Staff) or not caller.has_any(DECODE_ROLES):
        raise HTTPException(status_code=403, detail="decoding needs one of the roles " + ", ".join(DECODE_ROLES))
    return Caller(caller.actor, _stated_purpose(request))


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


async def _decode(request: Request, caller: Caller) -> dict[str, Any]:
    deps = deps_of(request)
    namespace, sent = await _payloads(request, deps)
    try:
        decoded = await EncryptionCodec(deps.payload_ring).decode(sent)
    except Exception:
        raise HTTPException(status_code=422, detail="payloads could not be decrypted with the known keys") from None
    await _audit(deps, caller, namespace, sent, decoded)
    return json_format.MessageToDict(Payloads(payloads=decoded))


async def _encode(request: Request, _caller: Caller) -> dict[str, Any]:
    deps = deps_of(request)
    _, sent = await _payloads(request, deps)
    return json_format.MessageToDict(Payloads(payloads=await EncryptionCodec(deps.payload_ring).encode(sent)))


def codec_router() -> APIRouter:
    router = APIRouter(tags=["codec"])
    declared: dict[int | str, dict[str, Any]] = {
        400: {
            "model": Message,
            "description": "The body is not Temporal payloads in proto3 JSON, another namespace, or a bad X-Purpose",
        },
        401: {"model": Message, "description": "No person's valid bearer token"},
        403: {"model": Message, "description": "The person holds no role that reads cases"},
        422: {"model": Message, "description": "The payloads cannot be decrypted with the known keys"},
        503: {"model": Message, "description": "The access log cannot be written: nothing is decoded"},
    }

    @router.post("/codec/decode", responses=declared)
    async def decode(request: Request) -> dict[str, Any]:
        """Decrypt payloads for a person: the `temporal` CLI (`--codec-endpoint …/codec --codec-auth "Bearer
        <token>"`) or the Web UI through its login gateway. `X-Purpose` states why (the access log records it)."""
        return await _decode(request, await _staff_caller(request))

    @router.post("/codec/encode", responses=declared)
    async def encode(request: Request) -> dict[str, Any]:
        return await _encode(request, await _staff_caller(request))

    return router
