-- Intake idempotency: one case per client idempotency key; a reused key with another application is refused.
CREATE TABLE IF NOT EXISTS intake_requests (
    idempotency_key text        PRIMARY KEY,
    fingerprint     bytea       NOT NULL,
    case_id         uuid        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
