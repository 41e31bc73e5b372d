"""The HTTP access log: one line per request with the route template, status, duration and caller, and nothing of
what was sent (a CPR number in a path or a query string never reaches it)."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from api.app import create_app
from api.state import ApiDeps
from runtime.crypto import KeyRing
from runtime.identity import LocalIssuer


def _lines(logs: list[MutableMapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(entry) for entry in logs if entry.get("event") == "http request"]


async def test_each_request_is_one_line_with_route_template_status_and_caller(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path / "key.pem")
    deps = ApiDeps(client=None, database=None, payload_ring=KeyRing.generate(), staff_verifier=issuer)
    token = {"Authorization": f"Bearer {issuer.mint('Karin Sagsbehandler', ['caseworker'])}"}
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        with capture_logs() as logs:
            assert (await http.get("/v1/whoami", headers=token)).status_code == 200
            read = await http.get("/v1/ops/cases/010170-1234", params={"purpose": "0101701234"}, headers=token)
            refused = await http.post("/v1/applications", content=b"{}")
    whoami, case_read, at_the_door = _lines(logs)
    assert {k: whoami[k] for k in ("method", "route", "status", "caller")} == {
        "method": "GET",
        "route": "/v1/whoami",
        "status": 200,
        "caller": "staff:karin-sagsbehandler",
    }
    assert isinstance(whoami["duration_ms"], float)
    assert case_read["route"] == "/v1/ops/cases/{case_id}" and case_read["status"] == read.status_code
    assert at_the_door == {**at_the_door, "route": "(not routed)", "status": refused.status_code, "caller": None}
    assert refused.status_code == 401
    for line in _lines(logs):
        assert "010170" not in repr(line) and "0101701234" not in repr(line)
