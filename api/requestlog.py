"""The HTTP access log: one line per request with method, route template, status, duration and who called.

Never the raw path or the query string (a case id is fine, but a CPR number typed into a path or a `purpose` would
not be), never a header or a body: the route *template* (`/v1/ops/cases/{case_id}`) says what was asked, the caller's
actor (`staff:<subject>`, `kommune:<kode>:<key id>`) who asked. Requests refused before routing, or that no
route matched, are logged as "(not routed)".
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import CALLER_KEY, actor_of
from runtime.logs import get_logger

log = get_logger("sagsflow.http")
UNMATCHED = "(not routed)"  # refused at the door (api.limits), or no route matched


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers if the app fails before it starts its response

        async def noted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted_send)
        finally:
            route = scope.get("route")
            caller = (scope.get("state") or {}).get(CALLER_KEY)
            log.info(
                "http request",
                method=scope["method"],
                route=getattr(route, "path", None) or UNMATCHED,
                status=status,
                duration_ms=round((time.perf_counter() - began) * 1000, 1),
                caller=actor_of(caller) if caller is not None else None,
            )
