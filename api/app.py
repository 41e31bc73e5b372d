"""The one ASGI app: intake, kommune, ops and codec routers, served by uvicorn."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from temporalio.client import Client

from api import intake, kommune_routes, metrics, ops, whoami
from api.codec import codec_router
from api.docs import mount_docs
from api.limits import InputLimits
from api.requestlog import RequestLog
from api.state import ApiDeps
from domain.boundary import describe
from runtime.logs import contains_cpr

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# Kubernetes' default probe timeout is 1 s; answer before the probe itself gives up.
READINESS_TIMEOUT = 0.8


# Error types whose pydantic message quotes what was sent: a union's tag, a parser's "found `x`" (uuid), a
# decoder's complaint about a symbol. Their message is replaced by the rule alone.
_QUOTING_TYPES: dict[str, str] = {
    "union_tag_invalid": "not one of the allowed values",
    "union_tag_not_found": "the field that says which kind this is is missing",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
    "url_parsing": "must be a valid URL",
    "url_syntax_violation": "must be a valid URL",
    "base64_decode": "must be valid base64",
    "json_invalid": "not valid JSON",
    "is_instance_of": "not of the expected type",
}
UNKNOWN_FIELD = "(unknown field)"
# Error types whose messages api/params.py words itself: they quote examples (an instant "e.g. 2021-03-02T00:00:00
# +01:00"), which a caller's near-miss can be part of, and never the input.
_OUR_WORDING = frozenset({"instant", "case_id", "task_id"})


def public_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as a client may see it: where, what and which rule, never the input itself.

    pydantic's messages are templates over the rule, but a few quote the input, an unknown key appears in the
    location (and a key can be a CPR number as easily as a value), and our own validators' messages are only as
    careful as their authors: so the message is checked against the input as a last line of defence."""
    kind = str(error.get("type", "invalid"))
    loc: list[Any] = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
    if kind == "extra_forbidden" and loc:
        loc[-1] = UNKNOWN_FIELD
    # A caller's key can reach the location through other rules too (a mapping's keys): only what reads as one of
    # our names is repeated.
    loc = [p if isinstance(p, int) or _is_our_name(p) else UNKNOWN_FIELD for p in loc]
    msg = _QUOTING_TYPES.get(kind) or describe(error)
    if contains_cpr(msg) or (kind not in _OUR_WORDING and _echoes(msg, error.get("input"))):
        msg = f"invalid value ({kind})"
    return {"loc": loc, "msg": msg, "type": kind}


_DIGIT_RUN = re.compile(r"\d{4}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# pydantic names a union member in the location by its type: `function-after[_no_cpr(), constrained-str]`.
_TYPE_PART = re.compile(r"[a-z][a-z0-9_-]*\[.*\]")


def _is_our_name(part: str) -> bool:
    """Field, parameter and header names are identifiers with at most two digits in a row (content_base64), and
    pydantic's union members are type names. A caller's key with spaces, other letters or a number in it is
    neither; a key that happens to be a bare word cannot be told from a name, but holds no CPR number."""
    if contains_cpr(part) or _DIGIT_RUN.search(part):
        return False
    return bool(_NAME.fullmatch(part) or _TYPE_PART.fullmatch(part))


def _echoes(msg: str, value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    # Short inputs ("a", "1") appear in any sentence; four characters or more are worth not repeating.
    return isinstance(value, str) and len(value.strip()) >= 4 and value.strip() in msg


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    """422 with the field errors (`public_error`). The input may be personal data, and it may not even be JSON (a
    NaN or an infinity, which JSON cannot carry back)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": [public_error(e) for e in exc.errors()]})


def create_app(deps: ApiDeps, *, lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="Sagsflow API",
        version="1",
        description="Intake of seniorpension applications, the kommune task API, operations, and the codec server.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.deps = deps
    mount_docs(app)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    # Authentication and body limits before any route reads a byte; added first, so CORS wraps it and its
    # refusals carry the CORS headers the Web UI needs to see them.
    app.add_middleware(InputLimits, deps=deps)
    if deps.ui_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=deps.ui_origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-namespace"],
            allow_credentials=True,
        )
    # Outermost, so refusals at the door are logged with the rest.
    app.add_middleware(RequestLog)
    app.include_router(codec_router())
    app.include_router(intake.router)
    app.include_router(kommune_routes.router)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    app.include_router(whoami.router)

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process serves requests")
    async def healthz() -> dict[str, str]:
        # Deliberately no dependency checks: a database outage must not make an orchestrator restart every API
        # replica (that would not bring the database back); /readyz takes them out of the load balancer instead.
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: PostgreSQL and Temporal answer (503 while either does not)",
        responses={503: {"description": "PostgreSQL or Temporal cannot be reached; the body says which"}},
    )
    async def readyz() -> JSONResponse:
        checks = {
            "database": "ok"
            if deps.database is not None and await _answers(deps.database.reachable())
            else "unavailable",
            "temporal": "ok"
            if deps.client is not None and await _answers(_temporal_ok(deps.client))
            else "unavailable",
        }
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            status_code=200 if ready else 503, content={"status": "ok" if ready else "unavailable", **checks}
        )

    return app


async def _answers(check: Awaitable[bool]) -> bool:
    """A readiness check answers within a probe's patience, or counts as a no."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            return await check
    except TimeoutError:
        return False


async def _temporal_ok(client: Client) -> bool:
    try:
        return await client.service_client.check_health()
    except Exception:
        return False
