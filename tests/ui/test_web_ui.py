"""Operations in the Temporal Web UI, in a real browser: find a case by KommuneKode, open it, read its input.

The input is decoded by our codec server only for a token holder: with the token the applicant's data shows; with
an endpoint that lacks it the payload stays encrypted (the dev server is restarted on the same database file in
between, which also shows that cases survive a server restart).
"""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path

import asyncpg
from playwright.async_api import Page, async_playwright
from temporalio.client import Client

from activities.kommune import FakeKommuneChannel
from api.app import create_app
from api.codec import DecodeAudit
from api.state import ApiDeps
from eventlog.store import create_pool
from sagsflow.crypto import KeyRing
from sagsflow.embedded import TemporalDevServer, free_port
from sagsflow.httpserve import serve
from sagsflow.temporal import data_converter
from tests.domain.factories import application
from tests.ui.conftest import CHROMIUM_ARGS
from workers.worker import build_worker
from workflows.client import start_case
from workflows.models import CaseInput

TOKEN = "ui-test-token"
NAME = "Karen Testesen"


async def _body_after_load(page: Page, url: str, must_show: str) -> str:
    await page.goto(url)
    await page.get_by_text(must_show).first.wait_for(timeout=30_000)
    await page.wait_for_timeout(1500)  # the UI decodes payloads after the page has rendered
    return await page.inner_text("body")


async def test_find_open_and_decode_a_case(tmp_path: Path, db_url: str, chromium_path: str) -> None:
    ring = KeyRing.generate("ui-test")
    audits: list[DecodeAudit] = []

    async def on_decode(audit: DecodeAudit) -> None:
        audits.append(audit)

    api_port, port, ui_port = free_port(), free_port(), free_port()
    db_file = tmp_path / "temporal.db"
    ui = f"http://127.0.0.1:{ui_port}"
    app = create_app(
        ApiDeps(client=None, pool=None, payload_ring=ring, ops_token=TOKEN, ui_origins=[ui], on_decode=on_decode)
    )

    def dev_server(codec_path: str) -> TemporalDevServer:
        return TemporalDevServer(
            port=port,
            ui_port=ui_port,
            db_file=db_file,
            codec_endpoint=f"http://127.0.0.1:{api_port}{codec_path}",
            log_file=tmp_path / "temporal.log",
        )

    case_id = str(uuid.uuid4())
    server = dev_server("/codec")  # no token: the codec server refuses to decode
    server.start()
    pool: asyncpg.Pool = await create_pool(db_url)
    try:
        async with serve(app, port=api_port), async_playwright() as pw:
            client = await Client.connect(server.address, data_converter=data_converter(ring))
            async with build_worker(client, pool, task_queue="ui-test", kommune=FakeKommuneChannel()):
                app_data = application(kommune_kode="329", applicant={"cpr": "150562-1234", "name": NAME})
                await start_case(
                    client, CaseInput(case_id=case_id, subject_id="s-ui", application=app_data), task_queue="ui-test"
                )
                browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                query = urllib.parse.quote('KommuneKode="329"')
                listing = await _body_after_load(
                    page, f"{ui}/namespaces/default/workflows?query={query}", f"case-{case_id}"
                )
                assert f"case-{case_id}" in listing
                await page.locator(f'a[href*="/workflows/case-{case_id}"]').first.click()
                await page.wait_for_url(f"**/workflows/case-{case_id}/**", timeout=30_000)
                await page.wait_for_timeout(3000)
                await page.screenshot(path=str(tmp_path / "encrypted.png"), full_page=True)
                encrypted = await page.inner_text("body")
                assert "Input" in encrypted
                assert NAME not in encrypted
                assert "150562" not in encrypted
                assert audits == []
                await browser.close()

            server.stop()
            server = dev_server(f"/codec/t/{TOKEN}")
            server.start()
            client = await Client.connect(server.address, data_converter=data_converter(ring))
            async with build_worker(client, pool, task_queue="ui-test", kommune=FakeKommuneChannel()):
                browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                decoded = await _body_after_load(page, f"{ui}/namespaces/default/workflows/case-{case_id}", NAME)
                await page.screenshot(path=str(tmp_path / "case.png"), full_page=True)
                assert NAME in decoded
                assert audits, "every decode must reach the access-log hook"
                await browser.close()
    finally:
        server.stop()
        await pool.close()
