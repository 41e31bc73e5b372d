"""Input limits at the door: who is calling, and how much they may send, settled before a byte of the body is read.

`InputLimits` is a plain ASGI middleware (not `BaseHTTPMiddleware`, which would hand the route a body it has already
buffered). For every request it

1. authenticates from the Authorization header alone (`api.auth.resolve_principal`) before the first `receive()`:
   a caller with no valid credentials gets 401 without the body being read, let alone parsed (so an unauthenticated
   body can neither exhaust memory nor learn from a 422 what the route expects). Unknown routes answer 401 as well,
   so nothing tells an outsider which routes exist. Only the public pages and CORS preflights pass without;
2. refuses a `Content-Length` over the route's limit at once (413), and counts the bytes of the body as the route
   reads them, chunked or not, cutting it off with 413 at the limit.

Every refusal of a request that still has a body on the wire says `Connection: close`, so the server hangs up
instead of reading (draining) the rest of what the caller sends.

Which route may take how much: 1 MiB everywhere, 300 MiB on the kommune's document submission, whose JSON carries
its documents base64-encoded (`eventlog.documents` allows up to 20 documents of 10 MB).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import CALLER_KEY, CallerUnknowable, resolve_principal
from api.state import ApiDeps

MiB = 1024 * 1024
SMALL_BODY_BYTES = 1 * MiB
UPLOAD_BODY_BYTES = 300 * MiB
# (method, path) of the routes that take documents; every other route takes SMALL_BODY_BYTES.
UPLOAD_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (("POST", re.compile(r"/v1/kommune/tasks/[^/]+/submissions")),)
# Served to anyone: liveness, readiness, the scrape endpoint (figures, no personal data) and the API docs.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/docs/",)


def body_limit(method: str, path: str) -> int:
    """How many body bytes a route may be sent."""
    for upload_method, pattern in UPLOAD_ROUTES:
        if method == upload_method and pattern.fullmatch(path):
            return UPLOAD_BODY_BYTES
    return SMALL_BODY_BYTES


def is_public(method: str, path: str, headers: Headers) -> bool:
    # A CORS preflight never carries credentials (browsers leave them out by design); CORSMiddleware answers it.
    if method == "OPTIONS" and "access-control-request-method" in headers:
        return True
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


async def _answer(
    send: Send, status: int, content: dict[str, Any], *, close: bool, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(content).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> dict[str, Any]:
    return {"detail": {"code": "too_large", "message": f"body: at most {limit} bytes on this route"}}


class InputLimits:
    def __init__(self, app: ASGIApp, deps: ApiDeps) -> None:
        self.app = app
        self.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = Headers(scope=scope)
        pending = _has_body(headers)

        if not is_public(method, path, headers):
            try:
                principal = await resolve_principal(self.deps, headers.get("authorization"))
            except CallerUnknowable:
                await _answer(send, 503, {"detail": "authentication is unavailable"}, close=pending)
                return
            if principal is None:
                # The same answer as the routes' own 401: wrong, unknown, revoked and missing all look alike.
                await _answer(
                    send,
                    401,
                    {"detail": "Not authenticated"},
                    close=pending,
                    headers={"www-authenticate": "Bearer"},
                )
                return
            scope.setdefault("state", {})[CALLER_KEY] = principal

        limit = body_limit(method, path)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, {"detail": "Content-Length: not a number"}, close=True)
                return
            if int(length) > limit:
                await _answer(send, 413, _too_large(limit), close=True)
                return

        received = 0
        cut = False  # the body went over the limit: the route reads no more of it
        refused = False  # and we answered 413 ourselves: whatever the route sends after that goes nowhere
        started = False

        async def counted_receive() -> Message:
            nonlocal received, cut, refused
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now, while the route is still reading, and tell it the caller is gone: the route
                    # stops (Starlette raises ClientDisconnect) and nothing more is read or kept. A route that has
                    # begun its answer already keeps it; it only reads no further.
                    cut = True
                    if not started:
                        refused = True
                        await _answer(send, 413, _too_large(limit), close=True)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)
