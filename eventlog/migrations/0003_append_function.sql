-- The whole append in one statement (one round trip): confirm a retried append, or take the EXCLUSIVE lock, check
-- the stream version and insert. Positions are allocated and committed in lock order, so a reader following
-- global_position never skips an event that commits later with a smaller position.
CREATE OR REPLACE FUNCTION eventlog_append(
    p_case_id          text,
    p_expected_version integer,
    p_event_ids        uuid[],
    p_types            text[],
    p_schema_versions  integer[],
    p_data             jsonb[],
    p_hashes           bytea[],
    p_macs             bytea[],
    p_occurred_at      timestamptz[],
    p_subject_id       text
)
RETURNS TABLE (
    o_event_id        uuid,
    o_global_position bigint,
    o_case_id         text,
    o_stream_version  integer,
    o_content_hash    bytea,
    o_personal_mac    bytea,
    o_existed         boolean
)
LANGUAGE plpgsql AS $$
DECLARE
    current_version integer;
BEGIN
    -- A retry after a lost reply finds its events without waiting for the lock; the caller compares content.
    RETURN QUERY
        SELECT e.event_id, e.global_position, e.case_id, e.stream_version, e.content_hash, e.personal_mac, true
        FROM events e WHERE e.event_id = ANY (p_event_ids);
    IF FOUND THEN
        RETURN;
    END IF;

    LOCK TABLE events IN EXCLUSIVE MODE;

    -- Again under the lock: a concurrent retry of this very append may have committed while we waited.
    RETURN QUERY
        SELECT e.event_id, e.global_position, e.case_id, e.stream_version, e.content_hash, e.personal_mac, true
        FROM events e WHERE e.event_id = ANY (p_event_ids);
    IF FOUND THEN
        RETURN;
    END IF;

    SELECT coalesce(max(e.stream_version), 0) INTO current_version FROM events e WHERE e.case_id = p_case_id;
    IF current_version <> p_expected_version THEN
        RAISE EXCEPTION 'case %: expected stream version %, found %', p_case_id, p_expected_version, current_version
            USING ERRCODE = 'SF409';
    END IF;

    IF p_subject_id IS NOT NULL THEN
        INSERT INTO case_subjects (case_id, subject_id) VALUES (p_case_id, p_subject_id);
    END IF;

    RETURN QUERY
        INSERT INTO events AS e (event_id, case_id, stream_version, type, schema_version, data, content_hash,
                                 personal_mac, occurred_at)
        SELECT u.event_id, p_case_id, p_expected_version + u.n::integer, u.type, u.schema_version, u.data, u.hash,
               u.mac, u.occurred_at
        FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_hashes, p_macs, p_occurred_at)
             WITH ORDINALITY AS u (event_id, type, schema_version, data, hash, mac, occurred_at, n)
        ORDER BY u.n
        RETURNING e.event_id, e.global_position, e.case_id, e.stream_version, e.content_hash, e.personal_mac, false;

    PERFORM pg_notify('events_appended', p_case_id);
END
$$;
