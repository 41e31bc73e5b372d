"""The access log: recorded with every personal read, extractable per case and per person, never personal."""

from __future__ import annotations

import json

import asyncpg
import pytest
from typer.testing import CliRunner

from eventlog.access import Access, AccessLogError, access_log, record_access
from eventlog.store import EventStore
from tests.eventlog.builders import happy_case
from workers.cli import app

# Case ids are uuids (the CLI refuses anything else as --case).
C1, C2, C3 = (f"0b7c3f52-1d7e-4b8a-9c41-2f6e5d4a3b2{i}" for i in (1, 2, 3))


@pytest.fixture
async def logged(store: EventStore, pool: asyncpg.Pool) -> None:
    for cid, subject in ((C1, "subj-A"), (C2, "subj-A"), (C3, "subj-B")):
        await store.append(cid, 0, happy_case(cid, subject_id=subject).events)
    await store.read_stream(C1, access=Access("cw-7", "sagsbehandling"))
    await record_access(pool, actor="codec-token", purpose="web ui decode", what="payload decode", case_id=C2)
    await store.read_stream(C3, access=Access("cw-8", "klage"))
    await store.forget_subject("subj-A", actor="dpo-1", purpose="sletning")


@pytest.mark.usefixtures("logged")
async def test_extract_per_case_and_per_person(pool: asyncpg.Pool) -> None:
    assert [(r.actor, r.subject_id) for r in await access_log(pool, case_id=C1)] == [("cw-7", "subj-A")]
    per_person = await access_log(pool, subject_id="subj-A")
    assert [(r.actor, r.case_id, r.what) for r in per_person] == [
        ("cw-7", C1, "case events"),
        ("codec-token", C2, "payload decode"),
        ("dpo-1", None, "forget subject key"),
    ]
    assert [r.actor for r in await access_log(pool, subject_id="subj-B")] == ["cw-8"]


async def test_personal_data_cannot_enter_the_access_log(pool: asyncpg.Pool) -> None:
    for kwargs in (
        {"purpose": "ringede om 150562-1234"},
        {"purpose": "ok", "case_id": "1505621234"},
        {"purpose": ""},
        {"purpose": "x" * 201},
    ):
        with pytest.raises(AccessLogError):
            await record_access(pool, actor="cw-1", what="read", **{"case_id": C1, **kwargs})
    with pytest.raises(AccessLogError, match="case_id or a subject_id"):
        await record_access(pool, actor="cw-1", purpose="p", what="read")
    assert await pool.fetchval("SELECT count(*) FROM access_log") == 0


@pytest.mark.usefixtures("logged")
def test_cli_prints_the_log_as_table_and_json(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["access-log", "--subject", "subj-A", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "codec-token" in result.output
    assert "dpo-1" in result.output
    result = runner.invoke(app, ["access-log", "--case", f"case-{C1}", "--json", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["actor"], r["case_id"], r["subject_id"], r["purpose"]) for r in rows] == [
        ("cw-7", C1, "subj-A", "sagsbehandling")
    ]
    for text in ("150562", "Testperson"):  # the person's CPR and name never appear
        assert text not in result.output
    result = runner.invoke(app, ["access-log", "--database-url", db_url])
    assert result.exit_code == 2


def test_cli_maintenance_commands(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eventlog", "migrate", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    for cmd in (["eventlog", "project"], ["eventlog", "rebuild"]):
        result = runner.invoke(app, [*cmd, "--database-url", db_url])
        assert result.exit_code == 0, result.output
        assert "global position 0" in result.output
    result = runner.invoke(app, ["eventlog", "forget-subject", "subj-X", "--actor", "dpo-1", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "no key to delete" in result.output
