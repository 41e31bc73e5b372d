-- Read models fed from the event log. Each projection records the global_position it has applied in
-- projection_positions, in the same transaction as its tables, so a crash never applies an event twice or skips one.
CREATE TABLE IF NOT EXISTS projection_positions (
    name       text PRIMARY KEY,
    position   bigint NOT NULL DEFAULT 0,
    -- Bumped by every rebuild swap: a runner's in-memory state from before the swap is then void.
    generation integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The case_views tables, created with a name suffix so that a rebuild can fill fresh copies ("_rebuild") while the
-- live ones keep serving, then swap them in one transaction. Change the shape here (CREATE OR REPLACE in a later
-- migration) and rebuild.
CREATE OR REPLACE FUNCTION eventlog_create_case_views(suffix text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Current state per case (domain.evolve), the key columns for queries plus the whole state for folding on.
    EXECUTE format($f$
        CREATE TABLE %1$I (
            case_id         text PRIMARY KEY,
            status          text NOT NULL,
            kommune_kode    text,
            case_type       text,
            subject_id      text,
            open_task_id    text,
            received_at     timestamptz,
            decided_at      timestamptz,
            outcome         text,
            closed_at       timestamptz,
            version         integer NOT NULL,
            clock           timestamptz NOT NULL,
            global_position bigint NOT NULL,
            state           jsonb NOT NULL
        )$f$, 'case_status' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (kommune_kode, status)',
                   'case_status' || suffix || '_kommune_status', 'case_status' || suffix);

    -- Business-time intervals [valid_from, valid_to) of each kommune task's status: point-in-time backlog.
    EXECUTE format($f$
        CREATE TABLE %1$I (
            task_id       text NOT NULL,
            case_id       text NOT NULL,
            kommune_kode  text NOT NULL,
            status        text NOT NULL,
            is_open       boolean NOT NULL,
            overdue       boolean NOT NULL,
            requested_at  timestamptz NOT NULL,
            deadline_at   timestamptz NOT NULL,
            valid_from    timestamptz NOT NULL,
            valid_to      timestamptz,
            from_position bigint NOT NULL,
            during        tstzrange GENERATED ALWAYS AS (tstzrange(valid_from, valid_to, '[)')) STORED,
            PRIMARY KEY (task_id, from_position)
        )$f$, 'task_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I USING gist (during) WHERE is_open',
                   'task_intervals' || suffix || '_open_during', 'task_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (task_id) WHERE valid_to IS NULL',
                   'task_intervals' || suffix || '_current', 'task_intervals' || suffix);

    -- The same for each case's status and kommune: open cases per kommune as of any time.
    EXECUTE format($f$
        CREATE TABLE %1$I (
            case_id       text NOT NULL,
            kommune_kode  text,
            status        text NOT NULL,
            is_active     boolean NOT NULL,
            received_at   timestamptz NOT NULL,
            valid_from    timestamptz NOT NULL,
            valid_to      timestamptz,
            from_position bigint NOT NULL,
            during        tstzrange GENERATED ALWAYS AS (tstzrange(valid_from, valid_to, '[)')) STORED,
            PRIMARY KEY (case_id, from_position)
        )$f$, 'case_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I USING gist (during) WHERE is_active',
                   'case_intervals' || suffix || '_active_during', 'case_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (case_id) WHERE valid_to IS NULL',
                   'case_intervals' || suffix || '_current', 'case_intervals' || suffix);

    -- One narrow row per countable event, with the kommune it counts for resolved at projection time.
    EXECUTE format($f$
        CREATE TABLE %1$I (
            global_position bigint PRIMARY KEY,
            occurred_at     timestamptz NOT NULL,
            type            text NOT NULL,
            case_id         text NOT NULL,
            task_id         text,
            kommune_kode    text,
            outcome         text,
            answer_days     double precision,
            on_time         boolean
        )$f$, 'event_facts' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (occurred_at) INCLUDE (type, kommune_kode)',
                   'event_facts' || suffix || '_occurred', 'event_facts' || suffix);
END
$$;

-- Replace the live case_views tables by the ones with `suffix`; the caller holds the projection's tracking row.
CREATE OR REPLACE FUNCTION eventlog_swap_case_views(suffix text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    base text;
    idx record;
BEGIN
    FOREACH base IN ARRAY ARRAY['case_status', 'task_intervals', 'case_intervals', 'event_facts'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', base);
        EXECUTE format('ALTER TABLE %I RENAME TO %I', base || suffix, base);
        FOR idx IN
            SELECT indexname FROM pg_indexes
            WHERE schemaname = current_schema() AND tablename = base AND indexname LIKE base || suffix || '%'
        LOOP
            EXECUTE format('ALTER INDEX %I RENAME TO %I', idx.indexname,
                           base || substr(idx.indexname, length(base || suffix) + 1));
        END LOOP;
    END LOOP;
END
$$;

SELECT eventlog_create_case_views('');
INSERT INTO projection_positions (name, position) VALUES ('case_views', 0) ON CONFLICT (name) DO NOTHING;
