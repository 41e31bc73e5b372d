-- Appends in one statement (one round trip, one commit), for one append or a group of concurrent ones (group
-- commit): take the EXCLUSIVE lock, then for each append confirm a retry, or check the stream version, store a new
-- subject's data key, and insert. Positions are drawn and committed in lock order, so a reader following
-- global_position never skips an event that commits later with a smaller position.
--
-- Each append gets rows with a status: 'inserted' or 'existed' (one row per event), 'version' (stream moved on;
-- o_current_version says where it is) or 'subject_key' (the proposed data key is not wanted: the subject already has
-- one, or is forgotten). A refused append writes nothing and does not disturb the others in the group.
CREATE OR REPLACE FUNCTION eventlog_append(
    p_case_ids          text[],
    p_expected_versions integer[],
    p_new_subjects      text[],   -- ApplicationReceived.subject_id when the append starts the case
    p_key_subjects      text[],   -- a data key the caller generated and sealed with, for a subject it believes
    p_master_key_ids    text[],   --   has none yet: stored here, in the same transaction as the events
    p_wrapped_keys      bytea[],
    p_append_nos        integer[],  -- per event: which append (1-based) it belongs to
    p_stream_versions   integer[],
    p_event_ids         uuid[],
    p_types             text[],
    p_schema_versions   integer[],
    p_data              jsonb[],
    p_hashes            bytea[],
    p_macs              bytea[],
    p_occurred_at       timestamptz[]
)
RETURNS TABLE (
    o_append          integer,
    o_status          text,
    o_event_id        uuid,
    o_global_position bigint,
    o_stream_version  integer,
    o_case_id         text,
    o_content_hash    bytea,
    o_personal_mac    bytea,
    o_current_version integer
)
LANGUAGE plpgsql AS $$
DECLARE
    i               integer;
    ids             uuid[];
    current_version integer;
BEGIN
    LOCK TABLE events IN EXCLUSIVE MODE;
    FOR i IN 1 .. coalesce(array_length(p_case_ids, 1), 0) LOOP
        ids := ARRAY(SELECT u.id FROM unnest(p_append_nos, p_event_ids) AS u (no, id) WHERE u.no = i);

        -- A retry after a lost reply (or its racing twin, maybe earlier in this very group): the caller compares.
        RETURN QUERY
            SELECT i, 'existed', e.event_id, e.global_position, e.stream_version, e.case_id, e.content_hash,
                   e.personal_mac, NULL::integer
            FROM events e WHERE e.event_id = ANY (ids);
        CONTINUE WHEN FOUND;

        SELECT coalesce(max(e.stream_version), 0) INTO current_version FROM events e WHERE e.case_id = p_case_ids[i];
        IF current_version <> p_expected_versions[i] THEN
            RETURN QUERY SELECT i, 'version', NULL::uuid, NULL::bigint, NULL::integer, p_case_ids[i], NULL::bytea,
                                NULL::bytea, current_version;
            CONTINUE;
        END IF;

        IF p_wrapped_keys[i] IS NOT NULL THEN
            INSERT INTO subject_keys (subject_id, master_key_id, wrapped_key)
            VALUES (p_key_subjects[i], p_master_key_ids[i], p_wrapped_keys[i])
            ON CONFLICT (subject_id) DO NOTHING;
            IF NOT FOUND THEN
                RETURN QUERY SELECT i, 'subject_key', NULL::uuid, NULL::bigint, NULL::integer, p_case_ids[i],
                                    NULL::bytea, NULL::bytea, NULL::integer;
                CONTINUE;
            END IF;
        END IF;

        IF p_new_subjects[i] IS NOT NULL THEN
            INSERT INTO case_subjects (case_id, subject_id) VALUES (p_case_ids[i], p_new_subjects[i]);
        END IF;

        RETURN QUERY
            INSERT INTO events AS e (event_id, case_id, stream_version, type, schema_version, data, content_hash,
                                     personal_mac, occurred_at)
            SELECT u.event_id, p_case_ids[i], u.stream_version, u.type, u.schema_version, u.data, u.hash, u.mac,
                   u.occurred_at
            FROM unnest(p_append_nos, p_stream_versions, p_event_ids, p_types, p_schema_versions, p_data, p_hashes,
                        p_macs, p_occurred_at)
                 AS u (no, stream_version, event_id, type, schema_version, data, hash, mac, occurred_at)
            WHERE u.no = i
            ORDER BY u.stream_version
            RETURNING i, 'inserted', e.event_id, e.global_position, e.stream_version, e.case_id, e.content_hash,
                      e.personal_mac, NULL::integer;
        PERFORM pg_notify('events_appended', p_case_ids[i]);
    END LOOP;
END
$$;
