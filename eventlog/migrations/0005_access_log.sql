-- Who read which person's case, when and why (GDPR art. 30/32 and DOMAIN.md: extractable per person).
-- It holds ids and purposes only, never the personal data itself.
CREATE TABLE IF NOT EXISTS access_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    case_id    text,
    subject_id text,
    purpose    text NOT NULL,
    what       text NOT NULL,
    CHECK (case_id IS NOT NULL OR subject_id IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS access_log_case ON access_log (case_id, at);
CREATE INDEX IF NOT EXISTS access_log_subject ON access_log (subject_id, at);
