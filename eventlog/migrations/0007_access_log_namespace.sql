-- A codec-server decode of a payload that names no case (a summary text, an update argument, a local activity's
-- result) is still a read of personal data and must be logged; the most the request tells is the Temporal namespace
-- it was made for. Such a record names the namespace instead of a case or a person.
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS namespace text;
ALTER TABLE access_log DROP CONSTRAINT IF EXISTS access_log_check;
ALTER TABLE access_log ADD CONSTRAINT access_log_attributed
    CHECK (case_id IS NOT NULL OR subject_id IS NOT NULL OR namespace IS NOT NULL);
-- Records without a case or person are found by who read and when.
CREATE INDEX IF NOT EXISTS access_log_at ON access_log (at);
CREATE INDEX IF NOT EXISTS access_log_actor ON access_log (actor, at);
