"""Documents: encrypted at rest (content and file name), bound to their row, size and type limits enforced first."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag

from eventlog.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentConflict,
    DocumentNotFound,
    Documents,
    DocumentTooLarge,
    InvalidDocument,
    UnsupportedContentType,
)
from runtime.crypto import KeyRing

PDF = b"%PDF-1.7\nLAE 145 helbredsattest for Jens Hansen 010160-1234\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_round_trip_and_ciphertext_at_rest(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    ref = await Documents(pool).store(key_ring, "0329", "task-1", "Jens Hansen LÆ145.pdf", "Application/PDF", PDF)
    assert ref.kommune_kode == "329"
    assert ref.content_type == "application/pdf"
    assert ref.size_bytes == len(PDF)
    assert isinstance(ref.document_id, uuid.UUID)
    # The reference is what Temporal payloads carry: small, no content.
    assert len(ref.model_dump_json()) < 300

    doc = await Documents(pool).read(key_ring, ref.document_id, kommune_kode="329")
    assert doc.data == PDF
    assert doc.filename == "Jens Hansen LÆ145.pdf"
    assert doc.ref == ref
    assert "Jens" not in repr(doc)

    row = await pool.fetchrow("SELECT * FROM documents WHERE document_id = $1", ref.document_id)
    assert row is not None
    raw = bytes(row["content_enc"]) + bytes(row["filename_enc"])
    assert PDF not in raw
    assert b"010160-1234" not in raw
    assert b"Jens" not in raw
    assert row["key_id"] == key_ring.active


async def test_another_kommune_cannot_read_it(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    ref = await Documents(pool).store(key_ring, "329", "task-1", "a.pdf", "application/pdf", PDF)
    with pytest.raises(DocumentNotFound):
        await Documents(pool).read(key_ring, ref.document_id, kommune_kode="101")
    with pytest.raises(DocumentNotFound):
        await Documents(pool).refs([ref.document_id], kommune_kode="101")
    with pytest.raises(DocumentNotFound):
        await Documents(pool).read(key_ring, "not-a-uuid")
    with pytest.raises(DocumentNotFound):
        await Documents(pool).read(key_ring, uuid.uuid4())


async def test_ciphertext_is_bound_to_its_row(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    """Moving a document to another task in the database makes it unreadable rather than misattributed."""
    ref = await Documents(pool).store(key_ring, "329", "task-1", "a.pdf", "application/pdf", PDF)
    await pool.execute("UPDATE documents SET task_id = 'task-2' WHERE document_id = $1", ref.document_id)
    with pytest.raises(InvalidTag):
        await Documents(pool).read(key_ring, ref.document_id)


async def test_rotated_key_still_reads_old_documents(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    ref = await Documents(pool).store(key_ring, "329", "task-1", "a.png", "image/png", PNG)
    rotated = KeyRing(active="test-2", keys={**key_ring.keys, "test-2": KeyRing.generate("test-2").keys["test-2"]})
    newer = await Documents(pool).store(rotated, "329", "task-1", "b.png", "image/png", PNG)
    assert (await Documents(pool).read(rotated, ref.document_id)).data == PNG
    assert (await Documents(pool).read(rotated, newer.document_id)).data == PNG


REFUSED: list[tuple[str, str, bytes, type[Exception]]] = [
    ("big.pdf", "application/pdf", b"%PDF-" + b"x" * MAX_DOCUMENT_BYTES, DocumentTooLarge),
    ("a.zip", "application/zip", b"PK\x03\x04", UnsupportedContentType),
    ("a.html", "text/html", b"<html></html>", UnsupportedContentType),
    ("empty.txt", "text/plain", b"", InvalidDocument),
    ("fake.pdf", "application/pdf", PNG, InvalidDocument),
    ("fake.png", "image/png", PDF, InvalidDocument),
    ("fake.jpg", "image/jpeg", PDF, InvalidDocument),
    ("bad.json", "application/json", b"{not json", InvalidDocument),
    ("bad.xml", "application/xml", b"just text", InvalidDocument),
    ("latin1.txt", "text/plain", "blåbær".encode("latin-1"), InvalidDocument),
    ("a\x00b.txt", "text/plain", b"hello", InvalidDocument),
    ("../", "text/plain", b"hello", InvalidDocument),
    ("x" * 300 + ".txt", "text/plain", b"hello", InvalidDocument),
]


async def test_limits_refuse_and_store_nothing(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    for filename, content_type, data, error in REFUSED:
        with pytest.raises(error):
            await Documents(pool).store(key_ring, "329", "task-1", filename, content_type, data)
    assert await pool.fetchval("SELECT count(*) FROM documents") == 0
    assert DocumentTooLarge.status_code == 413
    assert UnsupportedContentType.status_code == 415
    assert InvalidDocument.status_code == 422


async def test_accepted_types_and_file_name_cleaning(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    cases = [
        ("../../etc/passwd", "text/plain; charset=utf-8", "blåbær".encode(), "passwd"),
        ("C:\\Users\\x\\svar.json", "application/json", b'{"ok": true}', "svar.json"),
        ("svar.xml", "text/xml", b"\xef\xbb\xbf<?xml version='1.0'?><a/>", "svar.xml"),
        ("foto.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 16, "foto.jpg"),
        ("exactly-the-limit.pdf", "application/pdf", b"%PDF-" + b"x" * (MAX_DOCUMENT_BYTES - 5), None),
    ]
    refs = []
    for filename, ctype, data, expected_name in cases:
        ref = await Documents(pool).store(key_ring, "329", "task-9", filename, ctype, data)
        refs.append(ref)
        if expected_name is not None:
            assert (await Documents(pool).read(key_ring, ref.document_id)).filename == expected_name
    listed = await Documents(pool).refs([r.document_id for r in reversed(refs)], kommune_kode="329")
    assert listed == list(reversed(refs))
    assert refs[-1].size_bytes == MAX_DOCUMENT_BYTES


async def test_a_chosen_id_stores_one_document_however_many_retries_race(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    doc_id = uuid.uuid4()
    refs = await asyncio.gather(
        *(
            Documents(pool).store(key_ring, "329", "task-r", "a.pdf", "application/pdf", PDF, document_id=doc_id)
            for _ in range(8)
        )
    )
    assert {r.document_id for r in refs} == {doc_id}
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE document_id = $1", doc_id) == 1
    with pytest.raises(DocumentConflict, match="differs from the document first sent"):
        await Documents(pool).store(
            key_ring, "329", "task-r", "a.pdf", "application/pdf", PDF + b"x", document_id=doc_id
        )
    with pytest.raises(DocumentNotFound):
        await Documents(pool).store(key_ring, "101", "task-r", "a.pdf", "application/pdf", PDF, document_id=doc_id)
    with pytest.raises(DocumentConflict, match="is not among the documents first sent"):
        await Documents(pool).store(
            key_ring,
            "329",
            "task-r",
            "a.pdf",
            "application/pdf",
            PDF,
            document_id=uuid.uuid4(),
            only_existing=True,
        )
    assert (await Documents(pool).read(key_ring, doc_id)).data == PDF
