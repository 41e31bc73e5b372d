"""Erasure of one person (`EventStore.erase_subject`, `sagsflow forget-subject`) and the keyed intake fingerprint,
on a real PostgreSQL: what is erased, what stays, and that nothing personal is printed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from api.intake import intake_fingerprint
from cli.main import app
from domain.application import Application
from eventlog.access import Access, AccessLog
from eventlog.documents import Documents
from eventlog.intake_keys import IntakeKeys
from eventlog.store import EventStore
from runtime.config import get_settings
from runtime.crypto import KeyRing, subject_id_for
from tests.domain.factories import application_json
from tests.eventlog.builders import happy_case
from workflows.models import fingerprint

PDF = b"%PDF-1.4 x"
CPR = "010170-1234"
PEPPER = b"p" * 32
READER = Access(actor="cw-7", purpose="sagsbehandling")


async def _person(store: EventStore, pool: asyncpg.Pool, ring: KeyRing, subject: str, kode: str = "329") -> str:
    """One closed case of `subject` with a document its kommune submitted and the intake record that started it."""
    case_id = str(uuid.uuid4())
    await store.append(case_id, 0, happy_case(case_id, subject_id=subject).events)
    await Documents(pool).store(ring, kode, f"{case_id}-t1", "lae145 010170-1234.pdf", "application/pdf", PDF)
    fingerprint = hashlib.sha256(case_id.encode()).digest()
    await IntakeKeys(pool).claim(f"app-{case_id}", fingerprint, uuid.UUID(case_id), plain_fingerprint=fingerprint)
    return case_id


async def _counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM documents"),
        await pool.fetchval("SELECT count(*) FROM intake_requests"),
        await pool.fetchval("SELECT count(*) FROM subject_keys WHERE wrapped_key IS NOT NULL"),
    )


async def test_erasure_takes_key_documents_and_intake_records_of_that_person_only(
    store: EventStore, pool: asyncpg.Pool, key_ring: KeyRing
) -> None:
    mine = [await _person(store, pool, key_ring, "subj-A") for _ in range(2)]
    theirs = await _person(store, pool, key_ring, "subj-B")
    assert await _counts(pool) == (3, 3, 2)

    erasure = await store.erase_subject("subj-A", actor="dpo-1", purpose="sletning art. 17")

    assert (erasure.key_deleted, erasure.cases, erasure.documents, erasure.intake_records) == (True, 2, 2, 2)
    assert await _counts(pool) == (1, 1, 1)
    assert await pool.fetchval("SELECT task_id FROM documents") == f"{theirs}-t1"
    assert str(await pool.fetchval("SELECT case_id FROM intake_requests")) == theirs
    for case_id in mine:
        stored = await store.read_stream(case_id, access=READER)
        assert all(getattr(s.event, "personal", None) is None for s in stored)
        assert len(stored) == len(happy_case(case_id).events)  # the events (and so the figures) stay
    assert any(getattr(s.event, "personal", None) for s in await store.read_stream(theirs, access=READER))
    (record,) = [r for r in await AccessLog(pool).find(subject_id="subj-A") if r.actor == "dpo-1"]
    assert record.what == "erase subject: key deleted, 2 documents, 2 intake records, 2 cases"

    again = await store.erase_subject("subj-A", actor="dpo-1", purpose="sletning art. 17")
    assert (again.key_deleted, again.documents, again.intake_records) == (False, 0, 0)


async def test_an_erasure_that_cannot_be_logged_erases_nothing(
    store: EventStore, pool: asyncpg.Pool, key_ring: KeyRing
) -> None:
    await _person(store, pool, key_ring, "subj-A")
    with pytest.raises(ValueError, match="CPR"):
        # The access log refuses the entry (a purpose holding a CPR number): the one transaction rolls back.
        await store.erase_subject("subj-A", actor="dpo-1", purpose="sletning 010170 1234")
    assert await _counts(pool) == (1, 1, 1)


# ---- the keyed intake fingerprint ------------------------------------------------------------------------------


async def test_intake_fingerprints_are_stored_keyed(pool: asyncpg.Pool) -> None:
    keys = IntakeKeys(pool)
    case_id = uuid.uuid4()
    claim = await keys.claim("k-1", b"keyed", case_id, plain_fingerprint=b"plain")
    assert claim.first and claim.fingerprint == b"keyed"
    row = await _row(pool, "SELECT fingerprint, keyed FROM intake_requests WHERE idempotency_key = 'k-1'")
    assert (bytes(row["fingerprint"]), row["keyed"]) == (b"keyed", True)
    # A retry compares keyed; a keyed row never matches a plain hash, even one equal to the stored bytes.
    assert (await keys.claim("k-1", b"keyed", case_id, plain_fingerprint=b"plain")).fingerprint == b"keyed"
    assert (await keys.claim("k-1", b"other", case_id, plain_fingerprint=b"keyed")).fingerprint == b"keyed"


async def test_an_old_plain_row_is_compared_plain_once_and_rewritten_keyed(pool: asyncpg.Pool) -> None:
    keys = IntakeKeys(pool)
    same, other = uuid.uuid4(), uuid.uuid4()
    # Rows as the API wrote them before migration 0201: a plain hash, keyed false (the column's default).
    for key, case_id in (("old-same", same), ("old-other", other)):
        await pool.execute(
            "INSERT INTO intake_requests (idempotency_key, fingerprint, case_id) VALUES ($1, $2, $3)",
            key,
            b"plain",
            case_id,
        )
    retry = await keys.claim("old-same", b"keyed", same, plain_fingerprint=b"plain")
    assert (retry.fingerprint, retry.case_id, retry.first) == (b"keyed", same, False)
    row = await _row(pool, "SELECT fingerprint, keyed FROM intake_requests WHERE idempotency_key = 'old-same'")
    assert (bytes(row["fingerprint"]), row["keyed"]) == (b"keyed", True)
    # Another application under an old key: refused (the stored hash comes back), and the row is left as it was.
    reuse = await keys.claim("old-other", b"keyed-2", other, plain_fingerprint=b"plain-2")
    assert reuse.fingerprint == b"plain"
    row = await _row(pool, "SELECT fingerprint, keyed FROM intake_requests WHERE idempotency_key = 'old-other'")
    assert (bytes(row["fingerprint"]), row["keyed"]) == (b"plain", False)


async def _row(pool: asyncpg.Pool, query: str) -> asyncpg.Record:
    row = await pool.fetchrow(query)
    assert row is not None
    return row


def test_the_api_keys_its_fingerprint_with_the_pepper() -> None:
    application = Application.model_validate(application_json("329"))
    keyed = intake_fingerprint(application, PEPPER)
    assert keyed == hmac.new(PEPPER, application.model_dump_json().encode(), hashlib.sha256).digest()
    assert keyed != bytes.fromhex(fingerprint(application))  # not the plain hash the workflows keep
    assert keyed != intake_fingerprint(application, b"q" * 32)


# ---- `sagsflow forget-subject` ---------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data dir holding the API's subject pepper, as `sagsflow api` leaves it."""
    (tmp_path / "subject-pepper").write_text(base64.b64encode(PEPPER).decode())
    monkeypatch.setenv("SAGSFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SAGSFLOW_SUBJECT_PEPPER_FILE", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _forget(db_url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["forget-subject", "--actor", "dpo-1", *args, "--database-url", db_url], input=stdin)


async def test_forget_subject_by_hidden_prompt_asks_and_reports_counts(
    db_url: str, data_dir: Path, store: EventStore, pool: asyncpg.Pool, key_ring: KeyRing
) -> None:
    subject = subject_id_for(CPR.replace("-", ""), PEPPER)
    await _person(store, pool, key_ring, subject)
    await _person(store, pool, key_ring, "subj-other")

    declined = await asyncio.to_thread(_forget, db_url, stdin=f"{CPR}\nn\n")
    assert declined.exit_code == 1, declined.output  # typer's Abort
    assert await _counts(pool) == (2, 2, 2)

    done = await asyncio.to_thread(_forget, db_url, stdin=f"{CPR}\ny\n")
    assert done.exit_code == 0, done.output
    assert f"subject {subject}: key deleted; 1 documents and 1 intake records erased, over 1 cases" in done.output
    assert await _counts(pool) == (1, 1, 1)
    for result in (declined, done):
        assert "0101701234" not in result.output.replace("-", "")  # the prompt hides what is typed


async def test_forget_subject_from_stdin_or_by_subject_id(
    db_url: str, data_dir: Path, store: EventStore, pool: asyncpg.Pool, key_ring: KeyRing
) -> None:
    await _person(store, pool, key_ring, subject_id_for(CPR.replace("-", ""), PEPPER))
    await _person(store, pool, key_ring, "subj-other")
    by_stdin = await asyncio.to_thread(_forget, db_url, "--cpr-stdin", "--yes", stdin="0101701234\n")
    assert by_stdin.exit_code == 0, by_stdin.output
    assert "1 documents and 1 intake records" in by_stdin.output
    assert "0101701234" not in by_stdin.output
    by_id = await asyncio.to_thread(_forget, db_url, "--subject", "subj-other", "--yes")
    assert by_id.exit_code == 0, by_id.output
    assert await _counts(pool) == (0, 0, 0)
    # The older command is the same erasure.
    old = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["eventlog", "forget-subject", "subj-other", "--actor", "dpo-1", "--database-url", db_url],
    )
    assert "no key to delete" in old.output and "0 documents and 0 intake records" in old.output


def test_forget_subject_never_takes_a_cpr_number_as_an_argument(db_url: str, data_dir: Path) -> None:
    as_argument = _forget(db_url, CPR, "--yes")
    assert as_argument.exit_code == 2
    as_subject = _forget(db_url, "--subject", CPR, "--yes")
    assert as_subject.exit_code == 2
    assert CPR not in as_subject.output
    bad = _forget(db_url, "--cpr-stdin", "--yes", stdin="320170-1234\n")
    assert bad.exit_code == 2
    assert "320170" not in bad.output
