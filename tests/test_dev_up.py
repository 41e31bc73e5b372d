"""`sagsflow dev up` end to end: starts everything, refuses a second instance, stops everything on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from runtime.embedded import venv_binary
from tests.devstack import PORTS, dev_up_env


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if text in seen:
            return seen
    raise AssertionError(f"{text!r} not printed; got:\n{seen}")


@pytest.mark.slow
def test_dev_up_starts_refuses_second_and_stops(tmp_path: Path) -> None:
    # Every port free, the simulator's and the worker's metrics too: the defaults may be taken by another stack.
    env = dev_up_env(tmp_path / "data")
    ports = {name: int(env[f"SAGSFLOW_{name}"]) for name in PORTS}
    cmd = [venv_binary("sagsflow"), "dev", "up"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = _wait_for(proc, "Press Ctrl-C to stop.", timeout=120)
        assert f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}" in banner
        assert f"127.0.0.1:{ports['POSTGRES_PORT']}" in banner
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # postgres, temporal, api, the Web UI's gateway

        health = httpx.get(f"http://127.0.0.1:{ports['API_PORT']}/readyz", timeout=10).json()
        assert health == {"status": "ok", "database": "ok", "temporal": "ok"}
        # The Web UI's port is its login gateway: nothing of the UI without logging in.
        ui = f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}"
        anonymous = httpx.get(f"{ui}/", timeout=10)
        assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/login?next=%2F")
        assert httpx.get(f"{ui}/api/v1/settings", timeout=10).status_code == 401
        assert httpx.get(f"{ui}/login", timeout=10).status_code == 200

        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert "Traceback" not in second.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(children, timeout=20)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
