-- Documents from kommuner (api/documents.py): AES-GCM encrypted, the file name too (names often carry a person's
-- name or CPR number). Temporal payloads and events carry only the document id.
CREATE TABLE IF NOT EXISTS documents (
    document_id   uuid        PRIMARY KEY,
    kommune_kode  text        NOT NULL,
    task_id       text        NOT NULL,
    content_type  text        NOT NULL,
    size_bytes    integer     NOT NULL CHECK (size_bytes > 0),
    key_id        text        NOT NULL,
    filename_enc  bytea       NOT NULL,
    content_enc   bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_task ON documents (task_id);
