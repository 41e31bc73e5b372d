"""The one ASGI app: intake, kommune, ops and codec routers, served by uvicorn."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

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

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# Kubernetes' default probe timeout is 1 s; answer before the probe itself gives up.
READINESS_TIMEOUT = 0.8


def load_or_create_token(path: Path) -> str:
    """The dev stack's ops/codec token: generated once into the data dir, readable by its owner only."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    """422 with the field errors: where, what and which rule, never the input itself. The input may be personal
    data, and it may not even be JSON (a NaN or an infinity, which JSON cannot carry back)."""
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": describe(e), "type": str(e["type"])} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": detail})


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
