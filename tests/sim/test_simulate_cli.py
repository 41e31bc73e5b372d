"""`sagsflow simulate` as a person runs it: never into the database DATABASE_URL names, never into a log with real
cases, and its log kept for `sagsflow report quarterly --simulation` afterwards."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from eventlog.store import EventStore, create_pool
from runtime.embedded import venv_binary
from tests.eventlog.builders import happy_case

SMALL_RUN = ["simulate", "--weeks", "1", "--rate", "3", "--jobs", "1", "--start", "2021-01-04", "--name", "first-week"]


def sagsflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_binary("sagsflow"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


async def a_real_log(db_url: str) -> int:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        case = happy_case("case-real-1", start=datetime(2021, 1, 4, 9, tzinfo=UTC))
        await EventStore(pool).append(case.case_id, 0, case.events)
    finally:
        await pool.close()
    return len(case.events)


async def event_count(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


@pytest.mark.slow
async def test_simulate_keeps_away_from_a_real_log_and_keeps_its_own(db_url: str, tmp_path: Path) -> None:
    real_events = await a_real_log(db_url)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SAGSFLOW_DATA_DIR": str(tmp_path / "data")}

    # Named explicitly, a database with real cases is refused before anything is written.
    refused = sagsflow([*SMALL_RUN, "--database-url", db_url], env, tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert "no simulation wrote" in refused.stderr and "Traceback" not in refused.stderr
    assert await event_count(db_url) == real_events

    # DATABASE_URL (as in a production pod, or a shell that sourced .sagsflow/env) is not where a simulation goes.
    done = sagsflow(SMALL_RUN, {**env, "DATABASE_URL": db_url}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert await event_count(db_url) == real_events
    assert "report quarterly 2021Q1 --simulation first-week" in done.stdout

    # Kept by name: listed, not replaced by accident, and reported on afterwards.
    listed = sagsflow(["simulate", "--list"], env, tmp_path)
    assert "first-week" in listed.stdout and listed.returncode == 0
    again = sagsflow(SMALL_RUN, env, tmp_path)
    assert again.returncode == 1 and "kept already" in again.stderr

    report = sagsflow(["report", "quarterly", "2021Q1", "--simulation", "first-week", "--out", "r"], env, tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert any(line.endswith(".html") for line in report.stdout.splitlines())
    position = int(report.stderr.split("event-log position ")[1].split()[0].rstrip(";"))
    assert position > 0
    # The backlog at the end of the simulated week, from the same kept log.
    backlog = sagsflow(
        ["report", "backlog", "--simulation", "first-week", "--as-of", "2021-01-10T23:59:59+01:00", "--json"],
        env,
        tmp_path,
    )
    assert backlog.returncode == 0, backlog.stderr[-3000:]
    figures = json.loads(backlog.stdout)
    assert figures["as_of"] == "2021-01-10T23:59:59+01:00"
    assert sum(row["cases"] for row in figures["cases"]) > 0


def test_report_of_a_simulation_that_was_never_run_says_what_to_do(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SAGSFLOW_DATA_DIR": str(tmp_path / "data")}
    missing = sagsflow(["report", "quarterly", "2021Q1", "--simulation", "no-such-run"], env, tmp_path)
    assert missing.returncode == 1
    assert "sagsflow simulate --list" in missing.stderr and "Traceback" not in missing.stderr
