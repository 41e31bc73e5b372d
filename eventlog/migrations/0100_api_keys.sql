-- API keys for kommune systems and operations staff (api/auth.py). Only a SHA-256 of the secret part is stored;
-- the key id is the lookup handle, so authentication is one indexed read plus a constant-time compare.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id       text        PRIMARY KEY,
    role         text        NOT NULL CHECK (role IN ('kommune', 'ops')),
    kommune_kode text,
    label        text        NOT NULL DEFAULT '',
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((role = 'kommune') = (kommune_kode IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS api_keys_kommune ON api_keys (kommune_kode) WHERE revoked_at IS NULL;
