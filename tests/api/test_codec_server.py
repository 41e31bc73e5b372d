"""The codec server over real HTTP: decodes only for the token holder, CORS only for the UI origin."""

from __future__ import annotations

import base64

import httpx
from temporalio.api.common.v1 import Payload

from api.app import create_app
from api.codec import DecodeAudit
from api.state import ApiDeps
from sagsflow.crypto import KeyRing
from sagsflow.httpserve import serve
from sagsflow.temporal import EncryptionCodec

TOKEN = "ops-token-for-tests"
UI = "http://127.0.0.1:8233"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


async def test_decode_needs_token_and_is_audited(key_ring: KeyRing) -> None:
    audits: list[DecodeAudit] = []

    async def on_decode(a: DecodeAudit) -> None:
        audits.append(a)

    app = create_app(
        ApiDeps(client=None, pool=None, payload_ring=key_ring, ops_token=TOKEN, ui_origins=[UI], on_decode=on_decode)
    )
    (enc,) = await EncryptionCodec(key_ring).encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"secret"')])
    body = {"payloads": [{"metadata": {k: _b64(v) for k, v in enc.metadata.items()}, "data": _b64(enc.data)}]}
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        denied = await http.post("/codec/decode", json=body)
        assert denied.status_code == 401
        wrong = await http.post("/codec/decode", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert audits == []

        ok = await http.post(
            "/codec/decode", json=body, headers={"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}
        )
        assert ok.status_code == 200
        (p,) = ok.json()["payloads"]
        assert base64.b64decode(p["data"]) == b'"secret"'
        assert base64.b64decode(p["metadata"]["encoding"]) == b"json/plain"

        via_path = await http.post(f"/codec/t/{TOKEN}/decode", json=body)
        assert via_path.status_code == 200
        assert len(audits) == 2

        bad = await http.post("/codec/decode", content=b"{nope", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bad.status_code == 400

        pre = await http.options("/codec/decode", headers={"Origin": UI, "Access-Control-Request-Method": "POST"})
        assert pre.headers.get("access-control-allow-origin") == UI
        evil = await http.options(
            "/codec/decode", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert evil.headers.get("access-control-allow-origin") is None


async def test_encode_round_trips(key_ring: KeyRing) -> None:
    app = create_app(ApiDeps(client=None, pool=None, payload_ring=key_ring, ops_token=TOKEN))
    body = {"payloads": [{"metadata": {"encoding": _b64(b"json/plain")}, "data": _b64(b'"x"')}]}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(app) as url, httpx.AsyncClient(base_url=url, headers=headers) as http:
        encoded = (await http.post("/codec/encode", json=body)).json()
        assert base64.b64decode(encoded["payloads"][0]["metadata"]["encoding"]) == b"binary/encrypted"
        decoded = (await http.post("/codec/decode", json=encoded)).json()
        assert decoded == body


async def test_oversized_body_is_refused_before_it_is_read(key_ring: KeyRing) -> None:
    import asyncio
    from urllib.parse import urlparse

    from api.app import MAX_BODY_BYTES

    app = create_app(ApiDeps(client=None, pool=None, payload_ring=key_ring, ops_token=TOKEN))
    async with serve(app) as url:
        # Only the header announces the size: the server must answer without waiting for the body.
        target = urlparse(url)
        reader, writer = await asyncio.open_connection(target.hostname, target.port)
        writer.write(
            (
                f"POST /codec/decode HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
    assert status_line.split()[1] == b"413"
