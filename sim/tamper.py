"""A network hop that damages pushes in transit: what a kommune's receiver must refuse, and what we must resend.

`create_tamper_app(target, damage=1)` forwards every `POST` to the same path under `target` with its headers, and
changes one byte of the body of the first `damage` requests, leaving the signature as it was. The kommune system
behind it (the simulator) then sees a body that does not match its signature, as after a faulty proxy or an
attacker on the path. Tests put it between the delivery activity and the simulator.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request, Response

# Hop-by-hop or recomputed by the client: never forwarded as they came.
_DROP = frozenset({"host", "content-length", "connection", "transfer-encoding"})


def damaged(body: bytes) -> bytes:
    """The body with its last byte changed (a JSON body then differs in its closing brace)."""
    if not body:
        return b"x"
    return body[:-1] + bytes([body[-1] ^ 0x01])


def create_tamper_app(target: str, *, damage: int = 1) -> FastAPI:
    state = {"left": damage, "forwarded": 0, "damaged": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=target.rstrip("/")) as client:
            app.state.client = client
            yield

    app = FastAPI(title="Sagsflow tampering hop", lifespan=lifespan)
    app.state.counts = state

    @app.post("/{path:path}")
    async def forward(path: str, request: Request) -> Response:
        body = await request.body()
        if state["left"] > 0:
            state["left"] -= 1
            state["damaged"] += 1
            body = damaged(body)
        state["forwarded"] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        upstream = await app.state.client.post(f"/{path}", content=body, headers=headers)
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    return app
