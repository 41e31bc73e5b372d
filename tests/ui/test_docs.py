"""`/docs` works on a network without internet access: the page and everything it loads come from our own origin.

The app is the one `sagsflow api` serves (`build_app`, connected to a real PostgreSQL and Temporal dev server), and
the browser is refused every request that leaves that origin, as a closed network would refuse it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Route, async_playwright
from temporalio.testing import WorkflowEnvironment

from cli.api import build_app
from runtime.config import Settings
from runtime.httpserve import serve
from tests.ui.conftest import CHROMIUM_ARGS

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.fixture
async def api_url(tmp_path: Path, db_url: str, dev_env: WorkflowEnvironment) -> AsyncIterator[str]:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "SAGSFLOW_DATA_DIR": str(tmp_path / "data"),
        }
    )
    async with serve(build_app(settings)) as url:
        yield url


def referenced_urls(html: str) -> list[str]:
    """Every URL the page makes the browser load: stylesheet, icon, scripts and the OpenAPI document."""
    return [a or b for a, b in re.findall(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""", html)]


async def test_docs_page_loads_only_from_our_own_origin(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        urls = referenced_urls(page.text)
        suffixes = sorted(Path(u).suffix for u in urls)
        assert suffixes == [".css", ".js", ".json", ".png"], urls
        for url in urls:
            # Root-relative paths only: no scheme, no host, no protocol-relative "//cdn...".
            assert url.startswith("/") and not url.startswith("//"), url
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(CONTENT_TYPES[Path(url).suffix]), (url, asset.headers)
            assert len(asset.content) > 0, url
        # ReDoc would need a CDN too; it is not served rather than served blank (an unknown path answers 401 to a
        # caller without credentials, as every path we do not serve publicly: nothing tells which routes exist).
        assert (await http.get("/redoc")).status_code == 401


async def test_docs_render_the_operations_without_internet(api_url: str, chromium_path: str) -> None:
    elsewhere: list[str] = []

    async def only_our_origin(route: Route) -> None:
        if route.request.url.startswith(api_url + "/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.route("**/*", only_our_origin)
            await page.goto(f"{api_url}/docs")
            # Swagger UI draws one block per operation once it has read /openapi.json.
            await page.get_by_text("/v1/ops/backlog", exact=True).first.wait_for(state="visible", timeout=60_000)
            body = await page.inner_text("body")
        finally:
            await browser.close()
    assert elsewhere == []
    for operation in ("/v1/applications", "/v1/kommune/tasks/{task_id}", "/v1/ops/cases/{case_id}"):
        assert operation in body
    assert "Sagsflow API" in body
