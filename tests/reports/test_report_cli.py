"""`sagsflow report quarterly`, run as a forum secretary would run it: the files, a byte-identical rebuild at the
position it names, and one-line refusals that change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app
from eventlog.store import EventStore, create_pool
from runtime.config import get_settings
from tests.reports.test_quarterly import T0, _answered_case, _waiting_case


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    # The command reads DATABASE_URL through the cached settings: read them again for this test's database.
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _report(db_url: str, *args: str) -> Result:
    get_settings.cache_clear()
    result = CliRunner(env={"DATABASE_URL": db_url}).invoke(app, ["report", "quarterly", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


async def _log(db_url: str) -> int:
    pool = await create_pool(db_url)
    try:
        store = EventStore(pool)
        for case in (
            _answered_case("a1", "329", T0, timedelta(days=20)),
            _waiting_case("w1", "751", T0 + timedelta(days=3), overdue=True),
        ):
            await store.append(case.case_id, 0, case.events)
        return await store.head_position()
    finally:
        await pool.close()


# Not async: the command runs its own event loop, as it does in a shell.
def test_cli_writes_the_report_and_rebuilds_it_byte_for_byte(db_url: str, tmp_path: Path) -> None:
    position = asyncio.run(_log(db_url))

    first = _report(db_url, "2021Q1", "--out", str(tmp_path / "first"))
    assert first.exit_code == 0, first.stderr
    written = [Path(line) for line in first.stdout.splitlines()]
    assert [p.name for p in written][:2] == ["quarterly-2021Q1.html", "2021Q1-summary.csv"]
    assert f"rebuild it with --position {position}" in first.stderr

    again = _report(db_url, "2021Q1", "--position", str(position), "--out", str(tmp_path / "again"))
    assert again.exit_code == 0, again.stderr
    assert [p.read_bytes() for p in written] == [Path(line).read_bytes() for line in again.stdout.splitlines()]

    empty = _report(db_url, "2020Q4", "--out", str(tmp_path / "q4"))
    assert empty.exit_code == 0 and "ingen data" in empty.stderr

    beyond = _report(db_url, "2021Q1", "--position", str(position + 1), "--out", str(tmp_path / "beyond"))
    assert beyond.exit_code == 2
    assert beyond.stderr.strip() == f"--position: the event log ends at position {position}"
    assert not (tmp_path / "beyond").exists()

    bad = _report(db_url, "2021Q5", "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "2021Q1" in bad.stderr
