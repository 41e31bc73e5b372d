"""`sagsflow dev up` as an operator starts it: a subprocess on a data dir of its own, every port free and set through
the environment, stopped with SIGTERM. Tests that walk an operator's path (Web UI, `temporal` CLI, `sagsflow`
commands in a second shell) run against this stack, so what they exercise is the wiring the operator gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from runtime.embedded import free_port, venv_binary
from tests.domain.factories import application_json

PORTS = (
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "TEMPORAL_METRICS_PORT",
    "POSTGRES_PORT",
    "API_PORT",
    "SIM_PORT",
    "WORKER_METRICS_PORT",
)
READY = "Press Ctrl-C to stop."


def dev_up_env(data_dir: Path) -> dict[str, str]:
    """The environment of a shell set up for one stack: its data dir and a free port for everything it binds."""
    env = dict(os.environ)
    for var in ("TEMPORAL_ADDRESS", "DATABASE_URL", "SAGSFLOW_OPS_TOKEN", "SAGSFLOW_STAFF_TOKEN"):
        env.pop(var, None)
    env.update({f"SAGSFLOW_{name}": str(free_port()) for name in PORTS})
    env["SAGSFLOW_DATA_DIR"] = str(data_dir)
    return env


@dataclass
class RunningStack:
    env: dict[str, str]
    data_dir: Path
    banner: str

    def port(self, name: str) -> int:
        return int(self.env[f"SAGSFLOW_{name}"])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port('API_PORT')}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port('TEMPORAL_UI_PORT')}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.port('TEMPORAL_PORT')}"

    def staff_token(self, name: str, *roles: str) -> str:
        """A person's token, minted as the banner tells them: `sagsflow staff add NAME --role R` in a second shell."""
        args = [arg for role in roles for arg in ("--role", role)]
        done = self.sagsflow("staff", "add", name, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command in a second shell with the same environment (e.g. `sagsflow access-log`)."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout)

    def sagsflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(venv_binary("sagsflow"), *args)


@contextlib.contextmanager
def dev_up(data_dir: Path, *args: str, ready_within: float = 180) -> Iterator[RunningStack]:
    env = dev_up_env(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out_path = data_dir.parent / f"{data_dir.name}-dev-up.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([venv_binary("sagsflow"), "dev", "up", *args], env=env, stdout=out, stderr=out)
    try:
        # The limit only turns a hang into a failure; how long start-up takes is not under test.
        deadline = time.monotonic() + ready_within
        while READY not in (banner := out_path.read_text(errors="replace")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`sagsflow dev up` did not come up; it printed:\n{banner[-3000:]}")
            time.sleep(0.2)
        yield RunningStack(env=env, data_dir=data_dir, banner=banner)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- what an operator does against the running stack ----------------------------------------------------------------


def application(name: str, cpr: str, kommune_kode: str = "329") -> dict[str, Any]:
    """An application as a client sends it, for the named person."""
    return dict(application_json(kommune_kode, applicant={"cpr": cpr, "name": name}))


def file_application(stack: RunningStack, name: str, cpr: str, kommune_kode: str = "329") -> str:
    """`POST /v1/applications` as an intake system does, with its own identity; returns the new case's id."""
    body = {"idempotency_key": f"op-{uuid.uuid4().hex}", "application": application(name, cpr, kommune_kode)}
    headers = {"Authorization": f"Bearer {stack.staff_token('Intake test', 'intake')}"}
    r = httpx.post(f"{stack.api_url}/v1/applications", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    case_id: str = r.json()["case_id"]
    return case_id


def access_log(stack: RunningStack, *args: str) -> list[dict[str, Any]]:
    """`sagsflow access-log <args> --json` as the auditor runs it in a second shell."""
    done = stack.sagsflow("access-log", *args, "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows
