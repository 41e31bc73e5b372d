"""`sagsflow search-attributes register`, the Kubernetes Job's command, run as the real script against a real Temporal
dev server, configured as the Job is: production mode, a Temporal address and namespace, and no secret at all."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from runtime.embedded import free_port, stop_process, venv_binary, wait_for_port
from workflows.search_attributes import REGISTRATION

OTHER_NAMESPACE = "conflicting"


def start_dev_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            *(venv_binary("temporal"), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)),
            *("--namespace", OTHER_NAMESPACE, "--log-level", "error"),
            # A registration must be visible to the very next list.
            *("--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=true"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port, proc, "Temporal dev server")
    return proc


def job_env(tmp_path: Path, port: int, namespace: str = "default") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL"))}
    env.update(
        SAGSFLOW_ENV="production",
        TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
        TEMPORAL_NAMESPACE=namespace,
        SAGSFLOW_DATA_DIR=str(tmp_path / "data"),
        SAGSFLOW_LOG_FORMAT="json",
    )
    return env


async def register(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        venv_binary("sagsflow"),
        "search-attributes",
        "register",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def temporal_cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_binary("temporal"), *args, "--address", f"127.0.0.1:{port}"], capture_output=True, text=True, check=True
    )


async def test_registers_every_attribute_once_waiting_for_a_starting_server_and_refuses_another_type(
    tmp_path: Path,
) -> None:
    temporal_port = free_port()
    # Started before the server, as a Job may be before Temporal answers: --wait keeps it trying.
    first = asyncio.create_task(register(job_env(tmp_path, temporal_port), "--wait", "90"))
    await asyncio.sleep(1.0)
    server = await asyncio.to_thread(start_dev_server, temporal_port)
    try:
        code, out, err = await first
        assert code == 0, err
        assert out.splitlines() == [f"{name}: created ({kind})" for name, kind in REGISTRATION.items()]

        # Idempotent: a second run changes nothing and says so.
        code, out, err = await register(job_env(tmp_path, temporal_port))
        assert code == 0, err
        assert out.splitlines() == [f"{name}: already registered" for name in REGISTRATION]

        # A name the cluster holds with another type is a failure with one line, not a silent success.
        temporal_cli(
            temporal_port,
            *("operator", "search-attribute", "create", "--namespace", OTHER_NAMESPACE),
            *("--name", "SlaOverdue", "--type", "Keyword"),
        )
        code, out, err = await register(job_env(tmp_path, temporal_port, OTHER_NAMESPACE))
        assert code != 0
        assert err.strip().splitlines() == [
            f"search attributes registered with another type in {OTHER_NAMESPACE}: SlaOverdue is Keyword, not Bool"
        ]
        assert "Traceback" not in err + out
    finally:
        stop_process(server)
