"""Every `sagsflow` command that talks to a service, run as the real script with that service not there: one line on
stderr naming the service, the address and the setting to fix, a non-zero exit, and no traceback.

The services are "not there" as in a second shell without the dev stack: the addresses point at closed ports.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.main import app
from runtime.embedded import free_port, venv_binary
from tests.processes import Run, run_process

CASE = "case-0b7c3f52-1d7e-4b8a-9c41-2f6e5d4a3b21"
PG = ("PostgreSQL", "DATABASE_URL")
TEMPORAL = ("Temporal", "TEMPORAL_ADDRESS")
API = ("the Sagsflow API", "SAGSFLOW_API_PORT")
# A simulation writes into DATABASE_URL's database only when told so on its command line.
SIM_PG = ("PostgreSQL", "--database-url")

# Each command that needs a service, with arguments that get it as far as its first connection, and the service
# it meets first when nothing is running.
NEEDS: dict[str, tuple[list[str], tuple[str, str]]] = {
    "access-log": (["--case", CASE], PG),
    "api": ([], PG),
    "worker": ([], PG),
    "simulate": (["--weeks", "1", "--rate", "1"], SIM_PG),
    "eventlog migrate": ([], PG),
    "eventlog rebuild": ([], PG),
    "eventlog project": ([], PG),
    "eventlog forget-subject": (["subject-1", "--actor", "test"], PG),
    "forget-subject": (["--subject", "subj-1", "--actor", "test", "--yes"], PG),
    "kommune add-key": (["329"], PG),
    "kommune revoke-key": (["0123456789abcdef"], PG),
    "kommune keys": ([], PG),
    "kommune channel": (["329", "inbox"], PG),
    "kommune channels": ([], PG),
    "kommune rotate-secret": (["329"], PG),
    "report quarterly": (["2021Q1"], PG),
    "report backlog": ([], PG),
    "forecast": ([], PG),
    "schedules apply": ([], TEMPORAL),
    "search-attributes register": ([], TEMPORAL),
    "replay": ([], TEMPORAL),
    "sim keys": ([], PG),
    "sim serve": ([], API),
    "sim load": (["--count", "1"], API),
    "sim caseworkers": ([], TEMPORAL),
}
# Commands that reach no service of ours: local work, or starting the services themselves.
LOCAL = {"prescreen", "dev up", "dev ui-gateway", "staff add"}


def command_paths(group: Any = None, prefix: str = "") -> Iterator[str]:
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from command_paths(command, f"{path} ")
        else:
            yield path


def test_every_command_is_either_checked_here_or_local() -> None:
    # A new command that talks to a service must join NEEDS (and so this test), or say why it is local.
    assert set(command_paths()) == set(NEEDS) | LOCAL


async def sagsflow(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    return await run_process([venv_binary("sagsflow"), *args], env, cwd, limit=180)


def closed_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Every address on a port where nothing listens; the data dir (keys, tokens) a fresh one."""
    closed = str(free_port())
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "sim-keys.json").write_text("{}")  # so `sim serve` goes on to look for the API
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/postgres",
        TEMPORAL_ADDRESS=f"127.0.0.1:{closed}",
        SAGSFLOW_DATA_DIR=str(data),
        SAGSFLOW_API_PORT=closed,
        SAGSFLOW_SIM_PORT=str(free_port()),
        SAGSFLOW_WORKER_METRICS_PORT="0",
        SAGSFLOW_LOG_FORMAT="json",
        # Addresses of a stack of our own (which is not running): its dev keys may be generated, as on the dev stack.
        SAGSFLOW_ENV="development",
        COLUMNS="200",
    )
    env.update(overrides)
    return env


def problems(name: str, run: Run, service: str, setting: str, address: str) -> list[str]:
    lines = run.err.strip().splitlines()
    found = []
    if run.code == 0:
        found.append("exit code 0")
    if "Traceback" in run.err + run.out:
        found.append("a traceback")
    if len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr")
    line = lines[-1] if lines else ""
    for part in (service, setting, address):
        if part not in line:
            found.append(f"{part!r} not named")
    return [f"sagsflow {name}: {p}: {run.err[-600:]!r}" for p in found]


async def run_all(runs: dict[str, list[str]], env: dict[str, str], cwd: Path) -> dict[str, Run]:
    # Four at a time: each is a Python start-up, and the machine is shared.
    limit = asyncio.Semaphore(4)

    async def one(args: list[str]) -> Run:
        async with limit:
            return await sagsflow(args, env, cwd)

    results = await asyncio.gather(*(one(args) for args in runs.values()))
    return dict(zip(runs, results, strict=True))


@pytest.mark.slow
async def test_each_command_says_in_one_line_which_service_it_cannot_reach(tmp_path: Path) -> None:
    env = closed_env(tmp_path)
    runs = {name: [*name.split(), *args] for name, (args, _) in NEEDS.items()}
    runs["report quarterly"] += ["--out", str(tmp_path / "report")]
    runs["simulate"] += ["--database-url", env["DATABASE_URL"]]
    results = await run_all(runs, env, tmp_path)
    addresses = {
        PG: env["DATABASE_URL"].split("@")[1],
        SIM_PG: env["DATABASE_URL"].split("@")[1],
        TEMPORAL: env["TEMPORAL_ADDRESS"],
        API: env["SAGSFLOW_API_PORT"],
    }
    found = []
    for name, run in results.items():
        service = NEEDS[name][1]
        found += problems(name, run, *service, addresses[service])
    assert found == []
    # The line says where the dev stack's settings are kept, for the shell that lacks them.
    assert f"source {tmp_path / 'data' / 'env'}" in results["kommune keys"].err


async def test_with_the_database_up_the_services_past_it_are_named(tmp_path: Path, db_url: str) -> None:
    env = closed_env(tmp_path, DATABASE_URL=db_url)
    runs = {"api": ["api"], "worker": ["worker"]}
    results = await run_all(runs, env, tmp_path)
    found = []
    for name, run in results.items():
        found += problems(name, run, *TEMPORAL, env["TEMPORAL_ADDRESS"])
    assert found == []


async def test_a_database_that_turns_us_away_is_told_apart_from_one_that_is_not_there(
    tmp_path: Path, pg_server_url: str
) -> None:
    base, _, _ = pg_server_url.rpartition("/")
    env = closed_env(tmp_path, DATABASE_URL=f"{base}/no_such_database")
    run = (await run_all({"access-log": ["access-log", "--case", CASE]}, env, tmp_path))["access-log"]
    assert problems("access-log", run, *PG, "no_such_database") == []
    assert "refused the connection" in run.err
    assert 'database "no_such_database" does not exist' in run.err


async def test_a_case_id_that_is_not_one_is_refused_before_any_connection(tmp_path: Path) -> None:
    env = closed_env(tmp_path)
    run = await sagsflow(["access-log", "--case", "010357-1234"], env, tmp_path)
    assert run.code == 2
    assert run.err.strip() == "--case: expected a case id: a uuid, or case-<uuid> as the Temporal Web UI shows it"
    assert "Traceback" not in run.err


@pytest.mark.parametrize("given", [CASE, CASE.removeprefix("case-"), CASE.upper().replace("CASE-", "case-")])
async def test_access_log_takes_the_case_id_as_the_web_ui_shows_it(tmp_path: Path, db_url: str, given: str) -> None:
    from eventlog.access import Access, AccessLog
    from eventlog.store import create_pool

    pool = await create_pool(db_url)
    try:
        await AccessLog(pool).record(Access("ops:test", "test: read"), what="case summary", case_id=CASE[5:])
    finally:
        await pool.close()
    run = await sagsflow(["access-log", "--case", given, "--json"], closed_env(tmp_path, DATABASE_URL=db_url), tmp_path)
    assert run.code == 0, run.err
    assert '"case_id": "0b7c3f52-1d7e-4b8a-9c41-2f6e5d4a3b21"' in run.out
    assert '"purpose": "test: read"' in run.out
