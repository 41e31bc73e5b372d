"""An operator's path through the Temporal Web UI, on exactly the wiring `sagsflow dev up` gives them.

A case is filed through the intake API by an intake system's identity. In a real browser the operator is sent to the
login gateway, signs in with the token `sagsflow staff add` gave them and the purpose of their reading, finds the case
by a query, opens it and reads it: the UI decodes through the gateway's same-origin codec endpoint, which adds their
token and purpose, so the input shows the applicant and the summary line and current details read in words. The
auditor then finds that read, attributed to the case and to the person, with their purpose, via `sagsflow
access-log --case`. No token is in the UI's settings or any process's arguments. The API's codec endpoint set
directly in the UI's codec settings (no token travels there) is refused, shows the input encrypted and logs nothing;
after logging out, the UI is closed again.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from playwright.async_api import Page, Response, async_playwright
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from runtime.crypto import load_or_create_key_ring
from runtime.temporal import data_converter
from tests.devstack import RunningStack, access_log, file_application
from tests.ui.conftest import CHROMIUM_ARGS

NAME = "Karen Testesen"
PURPOSE = "Forbereder afgørelse"
CPR = "010357-1234"
SCREENSHOTS = Path("/tmp") / "sagsflow-ui-screenshots"
WORDS = re.compile(r"[a-zæøå]{3,} [a-zæøå]{3,}", re.IGNORECASE)  # prose, not base64 ciphertext
DECODED = re.compile(r"\d+ payloads? naming")  # what the codec server records; a purpose is the person's own
WAIT_MS = 30_000  # a limit that turns a hang into a failure; nothing is timed


def decode_log(stack: RunningStack, case_id: str) -> list[dict[str, Any]]:
    """The case's decodes in its access log, as the auditor reads it with `sagsflow access-log --case ID`."""
    rows = access_log(stack, "--case", case_id)
    for personal in (NAME, CPR, CPR.replace("-", "")):
        assert personal not in json.dumps(rows)
    return [r for r in rows if DECODED.match(r["what"])]


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, attempts: int = 60) -> None:
    for _ in range(attempts):
        if await probe():
            return
    raise AssertionError(f"not reached: {what}")


async def in_words(stack: RunningStack, case_id: str) -> tuple[str | None, str]:
    """The case's summary and current details as the workflow itself states them, read with the stack's key."""
    ring = load_or_create_key_ring(stack.data_dir / "codec-keys.json", create=False)
    client = await Client.connect(stack.temporal_address, data_converter=data_converter(ring))
    handle = client.get_workflow_handle(f"case-{case_id}")
    summary = await (await handle.describe()).static_summary()
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return summary, meta.current_details


async def frame_text(page: Page, frame_id: str) -> str:
    """The UI renders a summary and the current details in frames of their own."""
    body = page.frame_locator(f"#{frame_id}").locator("body")
    await body.wait_for(timeout=WAIT_MS)
    return (await body.inner_text()).strip()


@pytest.mark.slow
async def test_operator_finds_a_case_by_query_reads_it_decoded_and_the_read_is_logged(
    operator_stack: RunningStack, chromium_path: str
) -> None:
    stack = operator_stack
    SCREENSHOTS.mkdir(exist_ok=True)
    case_id = file_application(stack, NAME, CPR)
    wf = f"case-{case_id}"
    assert decode_log(stack, case_id) == []
    token = stack.staff_token("Karin Sagsbehandler", "caseworker", "team-lead")
    me = "staff:karin-sagsbehandler"

    # A cookie nobody issued opens nothing: the gateway asks the API who the token names.
    async with httpx.AsyncClient(cookies={"sagsflow_token": "forged"}, timeout=30) as http:
        forged = await http.get(stack.ui_url + "/")
    assert (forged.status_code, forged.headers["location"]) == (303, "/login?next=%2F")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        codec_answers: list[tuple[str, int]] = []

        def on_response(response: Response) -> None:
            if "/codec/" in response.url and response.request.method == "POST":
                codec_answers.append((response.url, response.status))

        page.on("response", on_response)
        could_not_connect = page.get_by_text("Codec Server could not connect").filter(visible=True)

        # Find: the query an operator types; the case turns up once the visibility store has indexed it.
        query = 'WorkflowType="CaseWorkflow" AND KommuneKode="329"'
        listing = f"{stack.ui_url}/namespaces/default/workflows?query={urllib.parse.quote(query)}"
        link = page.locator(f'a[href*="/workflows/{wf}"]').first

        async def listed() -> bool:
            await page.goto(listing)
            try:
                await link.wait_for(timeout=15_000)
            except Exception:
                return False
            return True

        # Not signed in: the gateway sends the operator to its login, and back to where they were going after it.
        await page.goto(listing)
        await page.wait_for_url("**/login?next=*", timeout=WAIT_MS)
        await page.fill("#token", token)
        await page.fill("#purpose", PURPOSE)
        await page.screenshot(path=str(SCREENSHOTS / "0-login.png"), full_page=True)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/namespaces/default/workflows*", timeout=WAIT_MS)

        await eventually(listed, f"{wf} listed by {query}", attempts=20)
        await page.screenshot(path=str(SCREENSHOTS / "1-listing.png"), full_page=True)

        # Open and read: the input is decoded through the endpoint `dev up` configured.
        await link.click()
        await page.wait_for_url(f"**/workflows/{wf}/**", timeout=WAIT_MS)
        await page.get_by_text(NAME).first.wait_for(timeout=WAIT_MS)
        await page.screenshot(path=str(SCREENSHOTS / "2-case-decoded.png"), full_page=True)
        assert await could_not_connect.count() == 0
        assert codec_answers and {status for _, status in codec_answers} == {200}

        # The summary line and the current details, also payloads, read in words: what the workflow states.
        await page.get_by_role("tab", name="User Metadata").click()
        summary_shown = await frame_text(page, "user-metadata-summary")
        details_shown = ""

        async def details_match() -> bool:
            nonlocal details_shown
            details_shown = await frame_text(page, "user-metadata-current-details")
            if details_shown == (await in_words(stack, case_id))[1]:
                return True
            await page.reload()  # the case moved on between the two reads: look again
            return False

        await eventually(details_match, "the current details the workflow states")
        await page.screenshot(path=str(SCREENSHOTS / "3-summary-and-details.png"), full_page=True)
        summary, details = await in_words(stack, case_id)
        assert summary_shown == summary
        assert details_shown == details
        for text in (summary_shown, details_shown):
            assert WORDS.search(text), f"not in words: {text!r}"

        # The auditor sees the read, attributed to this case (the decoded input names it).
        reads = decode_log(stack, case_id)
        assert reads, "the decode of the case's input is not in its access log"
        assert {(r["actor"], r["case_id"], r["namespace"]) for r in reads} == {(me, case_id, "default")}
        assert {r["purpose"] for r in reads} == {PURPOSE}
        assert all(r["what"].endswith("naming this case") for r in reads)
        # The summary and details name no case: they are logged for the namespace, found by actor.
        unattributed = [r for r in access_log(stack, "--actor", me) if r["case_id"] is None]
        assert unattributed and {r["namespace"] for r in unattributed} == {"default"}

        # The UI's settings name the gateway's codec endpoint and hold no token; no process's arguments hold one.
        settings = await page.request.get(f"{stack.ui_url}/api/v1/settings")
        assert settings.status == 200
        assert (await settings.json())["Codec"]["Endpoint"] == f"{stack.ui_url}/codec"
        assert token not in await settings.text()
        assert_no_token_in_arguments(stack, token)

        # An endpoint without the token, set in the UI's own codec settings: refused, shown encrypted, not logged.
        await page.get_by_test_id("data-encoder-status-success").click()
        await page.get_by_test_id("use-local-endpoint-input").check()
        tokenless = f"{stack.api_url}/codec"
        await page.get_by_test_id("data-encoder-endpoint-input").fill(tokenless)
        await page.get_by_role("button", name="Apply").click()
        logged_before = len(decode_log(stack, case_id))
        await page.goto(f"{stack.ui_url}/namespaces/default/workflows/{wf}")
        await could_not_connect.first.wait_for(timeout=WAIT_MS)
        await page.screenshot(path=str(SCREENSHOTS / "4-case-without-token.png"), full_page=True)
        shown = await page.inner_text("body")
        assert NAME not in shown
        assert CPR not in shown
        refused = [status for url, status in codec_answers if url.startswith(f"{tokenless}/decode")]
        assert refused and set(refused) == {401}
        assert len(decode_log(stack, case_id)) == logged_before

        # Logged out, the UI is closed again.
        await page.goto(f"{stack.ui_url}/logout")
        await page.wait_for_url("**/login", timeout=WAIT_MS)
        await page.goto(f"{stack.ui_url}/namespaces/default/workflows/{wf}")
        await page.wait_for_url("**/login?next=*", timeout=WAIT_MS)
        await browser.close()


def assert_no_token_in_arguments(stack: RunningStack, token: str) -> None:
    """What `ps` shows every user of the machine: `dev up` and every child it started (the pid is in its lock)."""
    root = psutil.Process(int((stack.data_dir / "dev-up.lock").read_text().strip()))
    processes = [root, *root.children(recursive=True)]
    assert len(processes) >= 5  # dev up, postgres, temporal, api, the gateway (and more)
    for process in processes:
        cmdline = " ".join(process.cmdline())
        assert token not in cmdline and "eyJ" not in cmdline and "/codec/t/" not in cmdline, cmdline


async def test_the_login_refuses_what_it_must_and_echoes_nothing(operator_stack: RunningStack) -> None:
    stack = operator_stack
    reader = stack.staff_token("Lone Læser", "reader")
    intake = stack.staff_token("Intake test", "intake")
    async with httpx.AsyncClient(base_url=stack.ui_url, timeout=30) as http:
        for form, status in (
            ({"token": "not-a-token", "purpose": "Forbereder afgørelse"}, 401),
            ({"token": intake, "purpose": "Forbereder afgørelse"}, 403),  # a system that files, not a reader
            ({"token": reader, "purpose": f"Sagen om {CPR}"}, 400),  # the purpose goes to auditors: no CPR
            ({"token": reader, "purpose": "x"}, 400),
        ):
            r = await http.post("/login", data=form)
            assert r.status_code == status, form
            assert CPR not in r.text and form["token"] not in r.text
            assert "set-cookie" not in r.headers
        # The UI's own API answers 401 (not a login page) until then; writes too.
        assert (await http.get("/api/v1/namespaces")).status_code == 401
        assert (await http.post("/api/v1/namespaces/default/workflows/x/terminate", json={})).status_code == 401
        # After login, only a path on the gateway: no open redirect.
        r = await http.post("/login", data={"token": reader, "purpose": "Kvalitetskontrol", "next": "//evil.example"})
        assert (r.status_code, r.headers["location"]) == (303, "/")
        assert (await http.get("/api/v1/namespaces")).status_code == 200
