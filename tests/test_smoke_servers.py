"""The embedded servers start from the wheels, answer, and stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import asyncpg
from temporalio.testing import WorkflowEnvironment

from runtime.embedded import EmbeddedPostgres, TemporalDevServer, free_port, stop_process, venv_binary, wait_for_port
from workflows import search_attributes
from workflows.search_attributes import REGISTRATION


async def test_postgres_answers_and_is_migrated(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert int(str(version).split(".")[0]) >= 15
    assert {"events", "schema_migrations"} <= tables


async def test_dev_server_has_our_search_attributes(dev_env: WorkflowEnvironment) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    resp = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=dev_env.client.namespace)
    )
    assert set(search_attributes.REGISTRATION) <= set(resp.custom_attributes)


async def test_postgres_starts_in_a_data_dir_deeper_than_a_socket_path_may_be(tmp_path: Path) -> None:
    # A kept simulation under a long data dir once stopped the server: its socket file was past 107 bytes.
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "simulations" / "kept-run-with-a-long-name" / "pg"
    assert len(str(deep / ".s.PGSQL.65535")) > 107
    server = EmbeddedPostgres(deep, free_port(), log_file=tmp_path / "postgres.log")
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)


def test_dev_server_registers_new_search_attributes_on_an_existing_database(tmp_path: Path) -> None:
    """The demo keeps Temporal's SQLite file across restarts; `start-dev --search-attribute` registers only when it
    creates the file, so a file from a version without an attribute must get it at the next start."""
    db_file = tmp_path / "temporal.db"
    port = free_port()
    older = subprocess.Popen(
        [
            *(venv_binary("temporal"), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)),
            *("--db-filename", str(db_file), "--log-level", "error", "--search-attribute", "CaseStatus=Keyword"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, older, "the older dev server")
        listed = _custom_attributes(port)
        assert "CaseStatus" in listed and "TaskStatus" not in listed
    finally:
        stop_process(older)

    server = TemporalDevServer(
        search_attributes=REGISTRATION, port=port, db_file=db_file, log_file=tmp_path / "temporal.log"
    )
    server.start()
    try:
        listed = _custom_attributes(port)
        assert {name: listed.get(name) for name in search_attributes.REGISTRATION} == {
            name: f"INDEXED_VALUE_TYPE_{kind.upper()}" for name, kind in search_attributes.REGISTRATION.items()
        }
        assert server.register_search_attributes() == []  # and nothing twice
        # The older server made the file with SQLite's rollback journal; ours turns it to a write-ahead log (see
        # runtime.embedded.SQLITE_PRAGMAS), which the file keeps.
        with contextlib.closing(sqlite3.connect(db_file)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        server.stop()


def _custom_attributes(port: int) -> dict[str, str]:
    # Retried: the port opens a moment before the frontend answers.
    for _ in range(100):
        done = subprocess.run(
            [
                venv_binary("temporal"),
                "operator",
                "search-attribute",
                "list",
                "--address",
                f"127.0.0.1:{port}",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            custom: dict[str, str] = json.loads(done.stdout)["customAttributes"]
            return custom
        time.sleep(0.2)
    raise AssertionError(f"the dev server on port {port} did not list its search attributes")
