"""Documents from kommuner, checked and stored encrypted in PostgreSQL (object storage would take this place in
production).

Content and file name are each AES-GCM encrypted with the documents key ring; the associated data binds them to
their document id, kommune and task, so a row's ciphertext cannot be moved to another row. Temporal payloads and
events carry only the document id. Limits: `MAX_DOCUMENT_BYTES`, an allow-list of content types, and the bytes must
look like what the content type says (magic numbers for binaries, UTF-8 for text formats).
"""

from __future__ import annotations

import json
import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from domain.boundary import BIDI_CONTROLS, MAX_FILENAME
from domain.kommuner import normalize_kode
from eventlog.db import Pool
from runtime.crypto import KeyRing

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_FILENAME_CHARS = MAX_FILENAME
ALLOWED_CONTENT_TYPES: frozenset[str] = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "application/xml", "text/xml", "application/json", "text/plain"}
)
_MAGIC = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


class DocumentError(ValueError):
    status_code: ClassVar[int] = 422
    code: ClassVar[str] = "invalid_document"


class DocumentTooLarge(DocumentError):
    status_code = 413
    code = "too_large"


class UnsupportedContentType(DocumentError):
    status_code = 415
    code = "unsupported_content_type"


class InvalidDocument(DocumentError):
    pass


class DocumentNotFound(DocumentError):
    status_code = 404
    code = "not_found"


class DocumentConflict(DocumentError):
    status_code = 409
    code = "conflict"


class DocumentRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: uuid.UUID
    kommune_kode: str
    task_id: str
    content_type: str
    size_bytes: int


class StoredDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref: DocumentRef
    filename: str
    data: bytes

    def __repr__(self) -> str:  # contents and file name may be personal: keep them out of tracebacks
        return f"StoredDocument(ref={self.ref!r}, <{self.ref.size_bytes} bytes>)"

    __str__ = __repr__


def normalise_content_type(content_type: str) -> str:
    """`Application/PDF; charset=x` → `application/pdf`."""
    return content_type.split(";", 1)[0].strip().lower()


def clean_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in {".", ".."}:
        raise InvalidDocument("file name is empty")
    if len(base) > MAX_FILENAME_CHARS:
        raise InvalidDocument(f"file name is longer than {MAX_FILENAME_CHARS} characters")
    if any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in base):
        raise InvalidDocument("file name contains control characters")
    # Refused, not stripped: a name that displays as something else is not what the kommune meant to send either.
    if any(c in BIDI_CONTROLS for c in base):
        raise InvalidDocument("file name contains bidi control characters (they can disguise the file's type)")
    return base


def check_document(filename: str, content_type: str, data: bytes) -> tuple[str, str]:
    """Validate before anything is stored; returns the cleaned file name and content type."""
    ctype = normalise_content_type(content_type)
    if ctype not in ALLOWED_CONTENT_TYPES:
        allowed = ", ".join(sorted(ALLOWED_CONTENT_TYPES))
        # The refusal names what is accepted, not what was sent: a sender's content type is free text to us.
        raise UnsupportedContentType(f"this content type is not accepted; use one of: {allowed}")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(f"document is {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes")
    if not data:
        raise InvalidDocument("document is empty")
    magic = _MAGIC.get(ctype)
    if magic is not None:
        if not data.startswith(magic):
            raise InvalidDocument(f"content does not look like {ctype}")  # ctype is one of ours by now
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidDocument(f"{ctype} must be UTF-8 text") from None
        if ctype == "application/json":
            try:
                json.loads(text)
            except ValueError:
                raise InvalidDocument("content is not valid JSON") from None
        elif ctype in {"application/xml", "text/xml"} and not text.lstrip().startswith("<"):
            raise InvalidDocument("content does not look like XML")
    return clean_filename(filename), ctype


def _aad(document_id: uuid.UUID, kommune_kode: str, task_id: str, part: str) -> bytes:
    return f"documents:{document_id}:{kommune_kode}:{task_id}:{part}".encode()


def _parse_id(document_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(document_id, uuid.UUID):
        return document_id
    try:
        return uuid.UUID(document_id)
    except ValueError:
        raise DocumentNotFound("no such document") from None


class Documents:
    """The documents table. The key ring is the caller's: documents stay readable across key rotations, each under
    the key that sealed it."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def store(
        self,
        ring: KeyRing,
        kommune_kode: str,
        task_id: str,
        filename: str,
        content_type: str,
        data: bytes,
        *,
        document_id: uuid.UUID | None = None,
        only_existing: bool = False,
    ) -> DocumentRef:
        """Store one document. With a caller-chosen `document_id` a retried upload stores nothing new and returns the
        first one, if it is the same document; other content, name or type under that id is a conflict (the same id
        under another kommune or task is not found). With `only_existing` the id must already be stored: the caller
        knows the upload happened and only checks that the retry carries the same document."""
        name, ctype = check_document(filename, content_type, data)
        kode = normalize_kode(kommune_kode)
        if document_id is not None:
            existing = await self._same_document(ring, document_id, kode, task_id, name, ctype, data)
            if existing is not None:
                return existing
            if only_existing:
                raise DocumentConflict("is not among the documents first sent under this idempotency key")
        document_id = document_id or uuid.uuid4()
        key_id, content_enc = ring.encrypt(data, _aad(document_id, kode, task_id, "content"))
        # The ring is immutable, so both parts use the same active key and one key id column suffices.
        _, filename_enc = ring.encrypt(name.encode(), _aad(document_id, kode, task_id, "filename"))
        inserted = await self._pool.fetchval(
            """
            INSERT INTO documents (document_id, kommune_kode, task_id, content_type, size_bytes, key_id,
                                   filename_enc, content_enc)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (document_id) DO NOTHING
            RETURNING true
            """,
            document_id,
            kode,
            task_id,
            ctype,
            len(data),
            key_id,
            filename_enc,
            content_enc,
        )
        if not inserted:
            # A concurrent retry of the same upload stored it first.
            existing = await self._same_document(ring, document_id, kode, task_id, name, ctype, data)
            if existing is None:
                raise RuntimeError("a document row vanished between its insert and its read")
            return existing
        return DocumentRef(
            document_id=document_id, kommune_kode=kode, task_id=task_id, content_type=ctype, size_bytes=len(data)
        )

    async def _same_document(
        self,
        ring: KeyRing,
        document_id: uuid.UUID,
        kommune_kode: str,
        task_id: str,
        filename: str,
        content_type: str,
        data: bytes,
    ) -> DocumentRef | None:
        """The stored document under `document_id` if it is this one; None if the id is not stored."""
        row = await self._pool.fetchrow(
            "SELECT kommune_kode, task_id FROM documents WHERE document_id = $1", document_id
        )
        if row is None:
            return None
        if row["kommune_kode"] != kommune_kode or row["task_id"] != task_id:
            raise DocumentNotFound("no such document")
        stored = await self.read(ring, document_id)
        if (stored.filename, stored.ref.content_type, stored.data) != (filename, content_type, data):
            raise DocumentConflict("differs from the document first sent under this idempotency key")
        return stored.ref

    async def stored_ids(self, document_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ids are stored already."""
        rows = await self._pool.fetch(
            "SELECT document_id FROM documents WHERE document_id = ANY($1::uuid[])", document_ids
        )
        return {r["document_id"] for r in rows}

    async def discard(self, document_ids: list[uuid.UUID]) -> None:
        """Remove documents stored for a submission that was then refused: no event refers to them."""
        if document_ids:
            await self._pool.execute("DELETE FROM documents WHERE document_id = ANY($1::uuid[])", document_ids)

    async def refs(self, document_ids: list[uuid.UUID | str], *, kommune_kode: str | None = None) -> list[DocumentRef]:
        """Metadata only (no decryption), in the order asked; a missing or foreign id raises DocumentNotFound."""
        ids = [_parse_id(d) for d in document_ids]
        rows = await self._pool.fetch(
            "SELECT document_id, kommune_kode, task_id, content_type, size_bytes FROM documents "
            "WHERE document_id = ANY($1::uuid[])",
            ids,
        )
        by_id = {r["document_id"]: r for r in rows}
        out: list[DocumentRef] = []
        for d in ids:
            r = by_id.get(d)
            if r is None or (kommune_kode is not None and r["kommune_kode"] != normalize_kode(kommune_kode)):
                raise DocumentNotFound("no such document")
            out.append(DocumentRef(**dict(r)))
        return out

    async def read(
        self, ring: KeyRing, document_id: uuid.UUID | str, *, kommune_kode: str | None = None
    ) -> StoredDocument:
        """Decrypt one document. With `kommune_kode`, another kommune's document is reported as not found."""
        did = _parse_id(document_id)
        row = await self._pool.fetchrow("SELECT * FROM documents WHERE document_id = $1", did)
        if row is None or (kommune_kode is not None and row["kommune_kode"] != normalize_kode(kommune_kode)):
            raise DocumentNotFound("no such document")
        kode, task_id = row["kommune_kode"], row["task_id"]
        data = ring.decrypt(row["key_id"], bytes(row["content_enc"]), _aad(did, kode, task_id, "content"))
        name = ring.decrypt(row["key_id"], bytes(row["filename_enc"]), _aad(did, kode, task_id, "filename")).decode()
        ref = DocumentRef(
            document_id=did,
            kommune_kode=kode,
            task_id=task_id,
            content_type=row["content_type"],
            size_bytes=row["size_bytes"],
        )
        return StoredDocument(ref=ref, filename=name, data=data)
