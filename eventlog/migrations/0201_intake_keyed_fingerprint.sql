-- The intake fingerprint becomes an HMAC-SHA256 keyed with the subject pepper: a plain SHA-256 of an application
-- (CPR number, name, birth date) can be confirmed by anyone who guesses the application, and a CPR number is
-- guessable in ~10^4 tries. Rows written before this hold plain hashes (keyed = false): the next claim of such a
-- key compares the plain hash once and rewrites the row keyed (eventlog/intake_keys.py), so plain hashes die out
-- as keys are reused; new rows are written keyed.
ALTER TABLE intake_requests ADD COLUMN IF NOT EXISTS keyed boolean NOT NULL DEFAULT false;
