-- Push secret rotation (`sagsflow kommune rotate-secret`, eventlog/channels.py): the secret before the current one
-- keeps signing, next to it, until previous_secret_until, so the kommune's system can switch without losing a push.
-- Encrypted like the current one (the documents key ring), with its own associated data so the two cannot be swapped.
ALTER TABLE kommune_channels
    ADD COLUMN IF NOT EXISTS previous_secret_key_id text,
    ADD COLUMN IF NOT EXISTS previous_secret_enc    bytea,
    ADD COLUMN IF NOT EXISTS previous_secret_until  timestamptz;

ALTER TABLE kommune_channels DROP CONSTRAINT IF EXISTS kommune_channels_previous_secret;
ALTER TABLE kommune_channels ADD CONSTRAINT kommune_channels_previous_secret CHECK (
    (previous_secret_enc IS NULL AND previous_secret_key_id IS NULL AND previous_secret_until IS NULL)
    OR (kind = 'push' AND previous_secret_enc IS NOT NULL AND previous_secret_key_id IS NOT NULL
        AND previous_secret_until IS NOT NULL)
);
