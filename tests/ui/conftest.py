"""What an operator uses, driven as they use it: the Temporal Web UI in Debian's Chromium through Playwright (no
browser download: it must come from apt) and the `temporal` CLI, against one `sagsflow dev up` for the package."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.devstack import RunningStack, dev_up

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        # A fresh machine has no browser; Debian's package is the only browser this project may install.
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.fail("Chromium is missing and cannot be installed here: apt-get install chromium (as root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True, timeout=900
        )
    return CHROMIUM


# Without the background-networking flags Chromium keeps dialling out, which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="package")
def operator_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`sagsflow dev up` (not the demo: the tests file their own cases), exactly as the operator starts it."""
    with dev_up(tmp_path_factory.mktemp("operator") / "data") as stack:
        yield stack
