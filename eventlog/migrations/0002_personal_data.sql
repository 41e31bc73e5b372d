-- Personal data is encrypted per data subject (crypto-shredding): one data key per subject, wrapped with the
-- master key ring. Forgetting a subject deletes the wrapped key and leaves a tombstone, so no new key is ever
-- created for that subject and every `personal` field ever written for them reads back as NULL.
CREATE TABLE IF NOT EXISTS subject_keys (
    subject_id    text PRIMARY KEY,
    master_key_id text,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    forgotten_at  timestamptz,
    CHECK ((wrapped_key IS NULL) = (forgotten_at IS NOT NULL)),
    CHECK ((wrapped_key IS NULL) = (master_key_id IS NULL))
);

-- A case's data subject never changes (it is ApplicationReceived.subject_id); written in the append transaction.
CREATE TABLE IF NOT EXISTS case_subjects (
    case_id     text PRIMARY KEY,
    subject_id  text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS case_subjects_subject ON case_subjects (subject_id);

INSERT INTO case_subjects (case_id, subject_id)
SELECT case_id, data ->> 'subject_id' FROM events WHERE type = 'ApplicationReceived'
ON CONFLICT (case_id) DO NOTHING;

-- Keyed with the subject's data key, so it dies with the key: a plain hash of CPR-shaped data would outlive it.
ALTER TABLE events ADD COLUMN IF NOT EXISTS personal_mac bytea;
