-- Messages for kommuner on the inbox channel (activities/kommune_delivery.py, read by api/inbox.py).
-- `seq` is gap-free and commit-ordered per kommune (inserts for one kommune serialise on an advisory lock), so a
-- poller's cursor `after=<seq>` can never skip a message that commits late.
CREATE TABLE IF NOT EXISTS kommune_inbox (
    kommune_kode    text        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq >= 1),
    idempotency_key text        NOT NULL UNIQUE,
    task_id         text        NOT NULL,
    case_id         text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('task', 'reminder', 'notice')),
    body            jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    acked_at        timestamptz,
    PRIMARY KEY (kommune_kode, seq)
);
CREATE INDEX IF NOT EXISTS kommune_inbox_task ON kommune_inbox (task_id);
