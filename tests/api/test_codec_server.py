"""The codec server as `sagsflow api` serves it (`build_app(settings)`: real PostgreSQL, real Temporal, real HTTP),
asked exactly as the Web UI 2.54 (through the dev stack's login gateway, which adds the person's token and purpose)
and the `temporal` CLI ask: a `{"payloads": [...]}` body, `X-Namespace`, a person's token in `Authorization` (the
CLI's `--codec-auth`) and, from the gateway, `X-Purpose`. Nothing names the workflow.

Every decode is in the access log under the person who asked and why, attributed by each payload's own content; only
a person with a role that reads cases decodes; a decode the log cannot record returns nothing.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.testing import WorkflowEnvironment

from api.limits import SMALL_BODY_BYTES
from cli.api import build_app
from domain.state import CaseState
from eventlog.access import AccessLog, AccessRecord
from eventlog.api_keys import ApiKeys
from eventlog.store import create_pool
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.httpserve import serve
from runtime.identity import LOCAL_KEY_FILE, LocalIssuer, Role
from runtime.temporal import EncryptionCodec, data_converter
from tests.domain.factories import application
from workflows.models import AppendRequest, CaseInput, DecisionRequest, KommuneMessage, TaskResult

UI_PORT = 18233  # only named in CORS headers: nothing binds it
UI = f"http://127.0.0.1:{UI_PORT}"
NO_AUTH = {"Content-Type": "application/json", "X-Namespace": "default"}
UI_DECODE = "/codec/decode?preserveStorageRefs=true"
UI_PURPOSE = "Forbereder afgørelse i Web UI"


@dataclass
class Codec:
    http: httpx.AsyncClient
    url: str
    pool: asyncpg.Pool
    ring: KeyRing
    issuer: LocalIssuer

    def person(self, name: str, *roles: Role, purpose: str | None = None) -> dict[str, str]:
        """Headers as a person's client sends them (the CLI states no purpose)."""
        headers = {**NO_AUTH, "Authorization": f"Bearer {self.issuer.mint(name, roles)}"}
        if purpose is not None:
            headers["X-Purpose"] = purpose
        return headers

    async def body(self, *values: Any) -> dict[str, Any]:
        """What the UI sends: payloads as the workers' data converter wrote them into the history."""
        payloads = await data_converter(self.ring).encode(list(values))
        return json_format.MessageToDict(Payloads(payloads=payloads))

    async def log(self, **where: Any) -> list[AccessRecord]:
        return await AccessLog(self.pool).find(**where)


def utf8(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """As the gateway sends them: UTF-8 bytes, so a Danish purpose arrives as itself."""
    return [(k.encode(), v.encode()) for k, v in headers.items()]


@pytest.fixture
async def codec(dev_env: WorkflowEnvironment, db_url: str, key_ring: KeyRing, tmp_path: Path) -> AsyncIterator[Codec]:
    key_file = tmp_path / "codec-keys.json"
    key_file.write_text(key_ring.to_json())
    settings = Settings(
        TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        DATABASE_URL=db_url,
        SAGSFLOW_DATA_DIR=tmp_path,
        codec_key_file=key_file,
        temporal_ui_port=UI_PORT,
    )
    pool = await create_pool(db_url, max_size=2)
    # The API's own staff verifier (the embedded default's local issuer in the data dir) checks what this mints.
    issuer = LocalIssuer(tmp_path / LOCAL_KEY_FILE)
    try:
        async with serve(build_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Codec(http, url, pool, key_ring, issuer)
    finally:
        await pool.close()


def case_input(case_id: str) -> CaseInput:
    return CaseInput(case_id=case_id, subject_id="subj-codec", application=application(kommune_kode="329"))


def plain(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [base64.b64decode(p["data"]) for p in response.json()["payloads"]]


async def test_the_ui_and_the_cli_decode_and_each_read_is_logged_for_the_person_and_the_case_it_names(
    codec: Codec,
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    karin = utf8(codec.person("Karin Sagsbehandler", "caseworker", purpose=UI_PURPOSE))

    # The UI (through the gateway): one payload per request, the person's purpose, no workflow id anywhere.
    r = await codec.http.post(UI_DECODE, json=await codec.body(case_input(a)), headers=karin)
    (decoded,) = plain(r)
    assert b"150562-1234" in decoded  # the applicant, for the person who may read it
    (read,) = await codec.log(case_id=a)
    assert (read.actor, read.purpose, read.what, read.namespace) == (
        "staff:karin-sagsbehandler",
        UI_PURPOSE,
        "1 payload naming this case",
        "default",
    )

    # The CLI: a batch of one history's payloads, no purpose stated. Each is attributed by what it names, never by
    # its neighbours.
    cli = codec.person("Lone Læser", "reader")
    message = KommuneMessage(task_id="t-1", case_id=b, kommune_kode="329", kind="task")
    task_result = TaskResult(outcome="completed", state=CaseState(case_id=a, version=3))  # names the case nested
    batch = await codec.body(
        AppendRequest(case_id=a, expected_version=0, events=()),
        message,
        task_result,
        "seniorpension case, kommune 329",  # a summary: names no case
        DecisionRequest(request_id="d-1", outcome="granted", decided_by="cw-1"),  # an update argument: neither
    )
    r = await codec.http.post("/codec/decode", json=batch, headers=cli)
    assert len(plain(r)) == 5
    cli_reads = [x for x in await codec.log(case_id=a) if x.actor == "staff:lone-laeser"]
    assert [(x.purpose, x.what) for x in cli_reads] == [
        ("payload decode through the codec API (e.g. temporal CLI)", "2 payloads naming this case")
    ]
    assert [(x.case_id, x.what) for x in await codec.log(case_id=b)] == [(b, "1 payload naming this case")]
    unattributed = [x for x in await codec.log(actor="staff:lone-laeser") if x.case_id is None]
    assert [(x.namespace, x.subject_id, x.what) for x in unattributed] == [
        ("default", None, "2 payloads naming no case (a summary, details or an argument)")
    ]


async def test_a_case_id_that_is_not_one_of_ours_is_not_attributed_and_not_logged_as_such(codec: Codec) -> None:
    since = datetime.now(UTC)
    odd = {"case_id": "010357-1234", "nested": [{"case_id": "c-1"}, {"case_id": str(uuid.uuid4()).upper()}]}
    as_the_ui = utf8(codec.person("Karin Sagsbehandler", "caseworker", purpose=UI_PURPOSE))
    r = await codec.http.post(UI_DECODE, json=await codec.body(odd), headers=as_the_ui)
    assert len(plain(r)) == 1
    # JSON nested deeper than the parser goes still decodes (it names no case we can see), never a 500.
    deep = Payload(metadata={"encoding": b"json/plain"}, data=b"[" * 100_000 + b"]" * 100_000)
    body = json_format.MessageToDict(Payloads(payloads=await EncryptionCodec(codec.ring).encode([deep])))
    assert len(plain(await codec.http.post(UI_DECODE, json=body, headers=as_the_ui))) == 1
    reads = await codec.log(since=since)
    assert [(x.case_id, x.subject_id, x.namespace) for x in reads] == [(None, None, "default")] * 2
    assert "010357" not in repr(reads)


async def test_refusals_decode_nothing_and_log_nothing(codec: Codec, key_ring: KeyRing) -> None:
    since = datetime.now(UTC)
    body = await codec.body(case_input(str(uuid.uuid4())))
    kommune_key = await ApiKeys(codec.pool).create_kommune_key("329")
    for headers, status in (
        (NO_AUTH, 401),
        ({**NO_AUTH, "Authorization": "Bearer nope"}, 401),
        # A token our issuer did not sign (e.g. a shared ops token) names no person: a decode must say who read.
        ({**NO_AUTH, "Authorization": "Bearer ops-token-for-tests-0123456789"}, 401),
        (codec.person("Karin Sagsbehandler", "caseworker") | {"Authorization": "Basic x"}, 401),
        ({**NO_AUTH, "Authorization": f"Bearer {kommune_key}"}, 403),
        (codec.person("Ida Intake", "intake"), 403),
        (codec.person("Anne Auditor", "auditor"), 403),
        (codec.person("Karin Sagsbehandler", "caseworker", purpose="for 010357-1234"), 400),
    ):
        r = await codec.http.post("/codec/decode", json=body, headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert "150562" not in r.text and "010357" not in r.text
    # The old path-token routes are gone: a token in a URL ends up in logs and `ps`.
    r = await codec.http.post("/codec/t/ops-token-for-tests-0123456789/decode", json=body, headers=NO_AUTH)
    assert r.status_code in (401, 404, 405)
    karin = codec.person("Karin Sagsbehandler", "caseworker")
    r = await codec.http.post(UI_DECODE, json=body, headers={**karin, "X-Namespace": "010357-1234"})
    assert r.status_code == 400
    assert r.json()["detail"] == "X-Namespace: this codec server serves namespace 'default' only"
    r = await codec.http.post(UI_DECODE, content=b"{nope", headers=karin)
    assert r.status_code == 400
    other = KeyRing.generate("someone-else")
    foreign = json_format.MessageToDict(Payloads(payloads=await data_converter(other).encode(["secret"])))
    r = await codec.http.post(UI_DECODE, json=foreign, headers=karin)
    assert r.status_code == 422
    # Payloads that were never encrypted reveal nothing: passed through, no record.
    clear = json_format.MessageToDict(
        Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'{"seq": 1}')])
    )
    assert plain(await codec.http.post(UI_DECODE, json=clear, headers=karin)) == [b'{"seq": 1}']
    assert await codec.log(since=since) == []


async def test_a_decode_the_access_log_cannot_record_returns_nothing(codec: Codec) -> None:
    body = await codec.body(case_input(str(uuid.uuid4())))
    karin = utf8(codec.person("Karin Sagsbehandler", "caseworker", purpose=UI_PURPOSE))
    await codec.pool.execute("ALTER TABLE access_log RENAME TO access_log_away")
    try:
        r = await codec.http.post(UI_DECODE, json=body, headers=karin)
    finally:
        await codec.pool.execute("ALTER TABLE access_log_away RENAME TO access_log")
    assert r.status_code == 503
    assert r.json() == {"detail": "the access log could not be written, so nothing was decoded"}
    assert "150562" not in r.text


async def test_cors_admits_the_web_ui_only(codec: Codec) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    pre = await codec.http.options(UI_DECODE, headers={"Origin": UI, **asked})
    assert pre.status_code == 200
    assert pre.headers.get("access-control-allow-origin") == UI
    evil = await codec.http.options(UI_DECODE, headers={"Origin": "http://evil.example", **asked})
    assert evil.headers.get("access-control-allow-origin") is None


async def test_encode_round_trips(codec: Codec) -> None:
    body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": "Ingi"}]}
    as_the_cli = codec.person("Karin Sagsbehandler", "team-lead")
    encoded = (await codec.http.post("/codec/encode", json=body, headers=as_the_cli)).json()
    assert base64.b64decode(encoded["payloads"][0]["metadata"]["encoding"]) == b"binary/encrypted"
    assert (await codec.http.post("/codec/decode", json=encoded, headers=as_the_cli)).json() == body
    assert (await codec.http.post("/codec/encode", json=body, headers=NO_AUTH)).status_code == 401


async def test_oversized_body_is_refused_before_it_is_read(codec: Codec) -> None:
    # Only the header announces the size: the server must answer without waiting for the body.
    target = urlparse(codec.url)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    writer.write(
        (
            f"POST /codec/decode HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {codec.issuer.mint('K', ['reader'])}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {SMALL_BODY_BYTES + 1}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status_line.split()[1] == b"413"
