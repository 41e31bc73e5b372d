"""Input limits as a caller meets them: `sagsflow api` started as a process exactly as an operator starts it (uvicorn,
its real PostgreSQL and Temporal), asked over HTTP with httpx.

Who is calling is settled from the headers before any of the body is read, and bodies are counted while they stream:
an unauthenticated caller cannot make the API hold hundreds of MiB, nor learn from a 422 what a route expects. Sizes
are asserted in chunks sent and bytes of memory, never in seconds.

Bodies the API refuses part-way are sent with httpx's sync client (in a thread): the server answers and hangs up
while the client is still writing, and the sync transport then reads the answer waiting on the socket (httpcore's
handling of a failed write, as curl and browsers read it too), whereas the async (anyio) transport discards it and
reports a ReadError.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.limits import SMALL_BODY_BYTES, UPLOAD_BODY_BYTES
from eventlog.api_keys import ApiKeys
from eventlog.store import create_pool
from runtime.embedded import free_port, venv_binary
from tests.api.conftest import fresh_database

MiB = 1024 * 1024
CHUNK = b"0" * MiB  # one buffer sent again and again: the test's own memory stays flat
# What may be in flight before the server's refusal stops the sender: the kernel's socket buffers on both ends of
# a loopback connection (a few MiB each at most) and uvicorn's read buffer. A server that read the body would take
# all of it.
IN_FLIGHT_CHUNKS = 32


@dataclass
class Api:
    url: str
    pid: int
    kommune_key: str

    def rss(self) -> int:
        """The API process's resident memory in bytes (VmRSS, as the kernel counts it)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for the API process")


@pytest.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, pg_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    data_dir = tmp_path_factory.mktemp("limits")
    port = free_port()
    async with fresh_database(pg_server_url) as db_url:
        pool = await create_pool(db_url, max_size=2)
        try:
            kommune_key = await ApiKeys(pool).create_kommune_key("461", label="limits")
        finally:
            await pool.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL"))}
        env.update(
            TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
            DATABASE_URL=db_url,
            SAGSFLOW_DATA_DIR=str(data_dir),
            SAGSFLOW_API_PORT=str(port),
            SAGSFLOW_LOG_LEVEL="WARNING",
            SAGSFLOW_ENV="development",
        )
        log = (data_dir / "api.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            venv_binary("sagsflow"), "api", env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await _ready(url, proc, data_dir / "api.log")
            yield Api(url, proc.pid, kommune_key)
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log.close()


async def _ready(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(600):  # a bound that turns a hang into a failure, not a claim about speed
            if proc.returncode is not None:
                raise AssertionError(f"`sagsflow api` exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"`sagsflow api` did not come up:\n{log.read_text()}")


class Body:
    """A chunked body of `total` bytes that counts what the client actually took from it."""

    def __init__(self, total: int, chunk: bytes = CHUNK) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            piece = self.chunk[: self.total - self.sent]
            self.sent += len(piece)
            yield piece

    @property
    def chunks(self) -> int:
        return -(-self.sent // len(self.chunk))


async def post_streaming(api: Api, path: str, body: Body, headers: dict[str, str]) -> httpx.Response:
    def post() -> httpx.Response:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            response = http.post(path, content=body, headers={**JSON, **headers})
            response.read()
            return response

    return await asyncio.to_thread(post)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


JSON = {"Content-Type": "application/json"}


def task_path(what: str = "returns", task_id: uuid.UUID | None = None) -> str:
    return f"/v1/kommune/tasks/{task_id or uuid.uuid4()}/{what}"


# Parametrized paths are fixed: pytest-xdist's workers must collect the same test ids.
NO_SUCH_ID = uuid.UUID("00000000-0000-4000-8000-00000000dead")


async def test_unauthenticated_400_mib_is_refused_after_a_few_chunks_and_no_memory(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        # Warm up the paths a refusal takes (imports, the key lookup), so what is measured is the body alone.
        for _ in range(3):
            assert (await http.post(task_path(), content=b"{}", headers=JSON)).status_code == 401
        before = api.rss()
        body = Body(400 * MiB)
        r = await post_streaming(api, task_path("submissions"), body, {})
        grown = api.rss() - before
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.headers["connection"] == "close"
    assert body.chunks < IN_FLIGHT_CHUNKS, f"{body.chunks} MiB sent before the refusal"
    assert grown < 20 * MiB, f"the API grew by {grown / MiB:.1f} MiB"


@pytest.mark.parametrize(
    "path",
    [
        task_path("submissions", NO_SUCH_ID),  # the upload route: its larger limit is for callers it knows
        task_path(task_id=NO_SUCH_ID),
        "/v1/applications",
        f"/v1/ops/cases/{NO_SUCH_ID}/decision",
        "/codec/decode",
        "/codec/t/not-the-token/decode",
        "/no/such/route",  # unknown routes answer alike: nothing tells which exist
    ],
)
async def test_broken_json_without_credentials_is_401_not_422(api: Api, path: str) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for headers in ({}, bearer("sfk.nope.nope"), {"Authorization": api.kommune_key}):  # none, unknown, no scheme
            r = await http.post(path, content=b'{"idempotency_key": ', headers={**JSON, **headers})
            assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"}), (path, headers, r.text)


async def test_broken_json_with_credentials_is_422(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        r = await http.post(task_path(), content=b'{"idempotency_key": ', headers={**JSON, **bearer(api.kommune_key)})
    assert r.status_code == 422, r.text
    assert [e["loc"][0] for e in r.json()["detail"]] == ["body"]


async def test_public_pages_need_no_credentials(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for path in ("/healthz", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"):
            assert (await http.get(path)).status_code == 200, path


async def test_a_chunked_body_over_the_small_limit_is_cut_off(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        # A 2 MiB JSON body, sent chunked (no Content-Length), from a kommune whose key is good.
        body = Body(2 * MiB, b" " * (64 * 1024))
        r = await post_streaming(api, task_path(), body, bearer(api.kommune_key))
        assert (r.status_code, r.json()["detail"]["code"]) == (413, "too_large"), r.text
        assert r.json()["detail"]["message"] == f"body: at most {SMALL_BODY_BYTES} bytes on this route"
        assert r.headers["connection"] == "close"
        # Just under the limit is read through: the route itself answers (422, a body of blanks is no JSON).
        r = await post_streaming(api, task_path(), Body(SMALL_BODY_BYTES, b" " * 4096), bearer(api.kommune_key))
        assert r.status_code == 422, r.text
        # The connection closed by a refusal leaves the API serving the next caller.
        assert (await http.get("/healthz")).status_code == 200


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(api: Api) -> None:
    for path, limit in ((task_path("submissions"), UPLOAD_BODY_BYTES), (task_path(), SMALL_BODY_BYTES)):
        body = Body(limit + 1)
        r = await post_streaming(api, path, body, {**bearer(api.kommune_key), "Content-Length": str(limit + 1)})
        assert (r.status_code, r.json()["detail"]["code"]) == (413, "too_large"), (path, r.text)
        assert r.headers["connection"] == "close"
        assert body.chunks < IN_FLIGHT_CHUNKS, (path, f"{body.chunks} MiB sent before the refusal")
