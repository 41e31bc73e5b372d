"""The login gateway in front of the dev stack's Temporal Web UI: a person signs in, and every read is theirs.

The Temporal dev server's UI has no login of its own, and its codec endpoint is a URL it hands to anyone who asks
`/api/v1/settings`. So `sagsflow dev up` starts the real UI on a loopback port nobody is told about, and this
gateway on the public UI port:

- `/login` takes a person's bearer token (from `sagsflow staff add`, or the identity provider) and the purpose of
  their reading, checks the token with the API's `GET /v1/whoami` (the API is the one judge of who is calling), and
  keeps both in HttpOnly, SameSite=Strict cookies: page scripts cannot read the token, and no other site's page can
  make the browser send it. `/logout` drops them.
- `/codec/decode|encode` (the UI's codec endpoint, same origin, so the browser sends the cookies) forwards to the
  API's codec server with the person's token as `Authorization` and their purpose as `X-Purpose`: the access log
  names the person and why, and no token is in a URL, a process argument or the UI's settings.
- everything else is proxied to the real UI, for a signed-in person only. The token is re-checked with the API at
  most every `RECHECK_SECONDS`, so a cookie someone made up opens nothing and an expired token stops working.
"""

from __future__ import annotations

import hashlib
import html
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import httpx
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from api.codec import DECODE_ROLES
from domain.boundary import Purpose
from runtime.logs import get_logger

log = get_logger(__name__)

TOKEN_COOKIE = "sagsflow_token"
PURPOSE_COOKIE = "sagsflow_purpose"
RECHECK_SECONDS = 30.0
# A login form and the UI's own API calls are small; nothing bigger has a reason to pass through.
MAX_REQUEST_BYTES = 1024 * 1024
MAX_SESSIONS = 1000
# Per RFC 9110 these describe one connection, not the message: never forwarded by a proxy.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_PURPOSE: TypeAdapter[str] = TypeAdapter(Purpose)

Verdict = Literal["ok", "invalid", "no-role", "unavailable"]


@dataclass(frozen=True)
class GatewayConfig:
    ui_url: str  # the real Temporal UI, on a loopback port only this gateway is told about
    api_url: str  # our API: /v1/whoami and the codec server


@dataclass
class _Sessions:
    """Whom the API said a token names, remembered briefly: the UI fires dozens of requests per page."""

    checked: dict[str, tuple[Verdict, float]] = field(default_factory=dict)

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()  # the token itself is not kept in memory longer than needed

    def get(self, token: str) -> Verdict | None:
        entry = self.checked.get(self.key(token))
        if entry is None or time.monotonic() - entry[1] > RECHECK_SECONDS:
            return None
        return entry[0]

    def put(self, token: str, verdict: Verdict) -> None:
        if verdict == "unavailable":
            return  # ask again next time: the API may be back
        if len(self.checked) >= MAX_SESSIONS:
            self.checked.clear()
        self.checked[self.key(token)] = (verdict, time.monotonic())

    def forget(self, token: str) -> None:
        self.checked.pop(self.key(token), None)


async def _whoami(api: httpx.AsyncClient, token: str) -> Verdict:
    try:
        r = await api.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return "unavailable"
    if r.status_code == 401:
        return "invalid"
    if r.status_code != 200:
        return "unavailable"
    body = r.json()
    if body.get("kind") != "staff":
        return "no-role"
    return "ok" if set(body.get("roles", [])) & set(DECODE_ROLES) else "no-role"


def _safe_next(target: str | None) -> str:
    # Only a path on this gateway: `next=//evil.example` or a full URL would make the login an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


_PAGE = """<!doctype html>
<html lang="da"><head><meta charset="utf-8"><title>Sagsflow: log ind</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 4rem auto; padding: 0 1rem; }}
label {{ display: block; margin-top: 1rem; font-weight: 600; }}
input {{ width: 100%; padding: .5rem; box-sizing: border-box; }}
button {{ margin-top: 1.5rem; padding: .5rem 1.5rem; }}
.error {{ color: #a00; }}
code {{ background: #eee; padding: 0 .2rem; }}
</style></head>
<body>
<h1>Sagsflow: Temporal Web UI</h1>
<p>Every payload you open is decoded in your name and written to the access log with your purpose.</p>
{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="token">Your token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<label for="purpose">Why you read (shown to auditors; no CPR number)</label>
<input id="purpose" name="purpose" type="text" minlength="3" maxlength="200" required
 placeholder="Forbereder afgørelser">
<button type="submit">Log ind</button>
</form>
<p>No token? In the dev stack:
<code>sagsflow staff add 'Karin Sagsbehandler' --role caseworker</code> prints one.</p>
</body></html>
"""


def _login_page(next_path: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(_PAGE.format(error=shown, next=html.escape(next_path, quote=True)), status_code=status)


async def _small_body(request: Request) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return None
    return bytes(body)


def create_gateway(config: GatewayConfig) -> Starlette:
    sessions = _Sessions()
    clients: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # No timeout on reading the UI's answers: they are streamed, and a long poll is the UI's own business.
        async with (
            httpx.AsyncClient(base_url=config.ui_url, timeout=httpx.Timeout(30, read=None)) as ui,
            httpx.AsyncClient(base_url=config.api_url, timeout=30) as api,
        ):
            clients.update(ui=ui, api=api)
            yield

    async def signed_in(request: Request) -> Verdict:
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return "invalid"
        verdict = sessions.get(token)
        if verdict is None:
            verdict = await _whoami(clients["api"], token)
            sessions.put(token, verdict)
        return verdict

    async def login_form(request: Request) -> Response:
        return _login_page(_safe_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        raw = await _small_body(request)
        if raw is None:
            return Response(status_code=413)
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
        next_path = _safe_next(form.get("next", ["/"])[0])
        token = form.get("token", [""])[0].strip()
        try:
            purpose = _PURPOSE.validate_python(form.get("purpose", [""])[0].strip())
        except ValidationError:
            # Not echoed back: a purpose that fails the check may hold the very CPR number it must not.
            return _login_page(next_path, "The purpose must be 3-200 characters on one line, no CPR number.", 400)
        verdict = await _whoami(clients["api"], token) if token else "invalid"
        if verdict == "unavailable":
            return _login_page(next_path, "The Sagsflow API cannot check tokens right now; try again.", 503)
        if verdict == "invalid":
            return _login_page(next_path, "That token is not valid (unknown, expired or mistyped).", 401)
        if verdict == "no-role":
            roles = ", ".join(DECODE_ROLES)
            return _login_page(next_path, f"That token holds none of the roles that read cases ({roles}).", 403)
        sessions.put(token, verdict)
        response = RedirectResponse(next_path, status_code=303)
        # Session cookies: gone with the browser; the token's own expiry ends them sooner if it comes first.
        for name, value in ((TOKEN_COOKIE, token), (PURPOSE_COOKIE, urllib.parse.quote(purpose))):
            response.set_cookie(name, value, httponly=True, samesite="strict", path="/")
        log.info("web ui login")
        return response

    async def logout(request: Request) -> Response:
        token = request.cookies.get(TOKEN_COOKIE)
        if token:
            sessions.forget(token)
        response = RedirectResponse("/login", status_code=303)
        for name in (TOKEN_COOKIE, PURPOSE_COOKIE):
            response.delete_cookie(name, path="/", httponly=True, samesite="strict")
        return response

    async def codec(request: Request) -> Response:
        if request.path_params["op"] not in ("decode", "encode"):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return JSONResponse({"detail": "log in at /login first"}, status_code=401)
        raw = await _small_body(request)
        if raw is None:
            return Response(status_code=413)
        purpose = urllib.parse.unquote(request.cookies.get(PURPOSE_COOKIE, ""))
        headers = [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", request.headers.get("content-type", "application/json").encode("latin-1")),
        ]
        if purpose:
            headers.append((b"x-purpose", purpose.encode()))  # UTF-8: the codec server reads it so
        if "x-namespace" in request.headers:
            headers.append((b"x-namespace", request.headers["x-namespace"].encode("latin-1")))
        url = httpx.URL(f"/codec/{request.path_params['op']}", query=request.url.query.encode())
        try:
            r = await clients["api"].post(url, content=raw, headers=headers)
        except httpx.HTTPError:
            return JSONResponse({"detail": "the Sagsflow API is not reachable"}, status_code=502)
        return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))

    async def proxy(request: Request) -> Response:
        verdict = await signed_in(request)
        if verdict == "unavailable":
            return HTMLResponse("The Sagsflow API cannot check your login right now; reload in a moment.", 503)
        if verdict != "ok":
            if request.method in ("GET", "HEAD") and not request.url.path.startswith("/api/"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/login?" + urllib.parse.urlencode({"next": target}), status_code=303)
            return JSONResponse({"detail": "log in at /login first"}, status_code=401)
        body = b""
        if request.method not in ("GET", "HEAD"):
            small = await _small_body(request)
            if small is None:
                return Response(status_code=413)
            body = small
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP and k.lower() != b"cookie"
        ]
        # The UI keeps cookies of its own (its CSRF token): those pass; ours never leave the gateway.
        theirs = [f"{k}={v}" for k, v in request.cookies.items() if k not in (TOKEN_COOKIE, PURPOSE_COOKIE)]
        if theirs:
            headers.append((b"cookie", "; ".join(theirs).encode("latin-1")))
        ui = clients["ui"]
        upstream = ui.build_request(
            request.method,
            httpx.URL(request.url.path, query=request.url.query.encode()),
            headers=headers,
            content=body or None,
        )
        try:
            answer = await ui.send(upstream, stream=True)
        except httpx.HTTPError:
            return HTMLResponse("The Temporal Web UI is not reachable.", status_code=502)
        response = StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
        )
        # Raw headers, so repeated ones (Set-Cookie) survive; the body passes as sent, compressed or not.
        response.raw_headers = [
            (k, v) for k, v in answer.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP - {"content-length"}
        ]
        return response

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["GET", "POST"]),
            Route("/codec/{op:str}", codec, methods=["POST"]),
            Route("/{path:path}", proxy, methods=methods),
        ],
        lifespan=lifespan,
    )
