-- Per-kommune delivery channel (sagsflow/kommune_config.py). A row overrides the channels file / dev default.
-- The push secret must be usable (HMAC), so it is encrypted, not hashed: AES-GCM with the documents key ring.
CREATE TABLE IF NOT EXISTS kommune_channels (
    kommune_kode  text        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('push', 'inbox')),
    url           text,
    secret_key_id text,
    secret_enc    bytea,
    settings      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'push') = (url IS NOT NULL AND secret_enc IS NOT NULL AND secret_key_id IS NOT NULL))
);
