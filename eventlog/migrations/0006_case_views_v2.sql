-- case_views v2 (migration 0004 made v1): point-in-time backlog by summed interval boundaries instead of a GiST
-- scan whose cost grew with the log, and the Copenhagen date on each fact for cheap week/quarter buckets.
-- The table functions are replaced (a rebuild creates the new shape) and the live tables are brought to it in place,
-- backfilled from what they hold, so no refold from position 0 is needed.

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
    EXECUTE format('CREATE INDEX %I ON %I (kommune_kode, status) WHERE valid_to IS NULL AND is_open',
                   'task_intervals' || suffix || '_open_now', 'task_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (valid_from) WHERE is_open',
                   'task_intervals' || suffix || '_open_from', 'task_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (valid_to) WHERE is_open',
                   'task_intervals' || suffix || '_open_to', 'task_intervals' || suffix);

    -- Backlog as of T = (#open intervals begun by T) - (#ended by T): +1/-1 per interval boundary, summed per
    -- year ('y'), month ('m') and day ('d', UTC) and group. An as-of query adds up the years before T's, the months
    -- of T's year before T's, the days of T's month before T's and T's own day from the intervals, so it costs the
    -- same at any log size; and sums are additive, so events stamped out of order are no special case.
    EXECUTE format($f$
        CREATE TABLE %1$I (
            grain        text NOT NULL,
            bucket       date NOT NULL,
            kommune_kode text NOT NULL,
            status       text NOT NULL,
            overdue      boolean NOT NULL,
            delta        bigint NOT NULL,
            PRIMARY KEY (grain, bucket, kommune_kode, status, overdue)
        )$f$, 'task_deltas' || suffix);

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
    EXECUTE format('CREATE INDEX %I ON %I (kommune_kode, status) WHERE valid_to IS NULL AND is_active',
                   'case_intervals' || suffix || '_active_now', 'case_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (valid_from) WHERE is_active',
                   'case_intervals' || suffix || '_active_from', 'case_intervals' || suffix);
    EXECUTE format('CREATE INDEX %I ON %I (valid_to) WHERE is_active',
                   'case_intervals' || suffix || '_active_to', 'case_intervals' || suffix);
    EXECUTE format($f$
        CREATE TABLE %1$I (
            grain        text NOT NULL,
            bucket       date NOT NULL,
            kommune_kode text NOT NULL,
            status       text NOT NULL,
            delta        bigint NOT NULL,
            PRIMARY KEY (grain, bucket, kommune_kode, status)
        )$f$, 'case_deltas' || suffix);

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
            on_time         boolean,
            local_date      date NOT NULL  -- in Europe/Copenhagen: weeks and quarters bucket on it cheaply
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
    FOREACH base IN ARRAY ARRAY['case_status', 'task_intervals', 'task_deltas', 'case_intervals', 'case_deltas',
                                'event_facts'] LOOP
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

-- The live tables, v1 -> v2.
CREATE INDEX IF NOT EXISTS task_intervals_open_now ON task_intervals (kommune_kode, status)
    WHERE valid_to IS NULL AND is_open;
CREATE INDEX IF NOT EXISTS task_intervals_open_from ON task_intervals (valid_from) WHERE is_open;
CREATE INDEX IF NOT EXISTS task_intervals_open_to ON task_intervals (valid_to) WHERE is_open;
CREATE INDEX IF NOT EXISTS case_intervals_active_now ON case_intervals (kommune_kode, status)
    WHERE valid_to IS NULL AND is_active;
CREATE INDEX IF NOT EXISTS case_intervals_active_from ON case_intervals (valid_from) WHERE is_active;
CREATE INDEX IF NOT EXISTS case_intervals_active_to ON case_intervals (valid_to) WHERE is_active;

CREATE TABLE task_deltas (
    grain        text NOT NULL,
    bucket       date NOT NULL,
    kommune_kode text NOT NULL,
    status       text NOT NULL,
    overdue      boolean NOT NULL,
    delta        bigint NOT NULL,
    PRIMARY KEY (grain, bucket, kommune_kode, status, overdue)
);
INSERT INTO task_deltas (grain, bucket, kommune_kode, status, overdue, delta)
SELECT g.grain, g.bucket, b.kommune_kode, b.status, b.overdue, sum(b.d)
FROM (SELECT kommune_kode, status, overdue, valid_from AS at, 1 AS d FROM task_intervals WHERE is_open
      UNION ALL
      SELECT kommune_kode, status, overdue, valid_to, -1 FROM task_intervals WHERE is_open AND valid_to IS NOT NULL) b,
     LATERAL (VALUES ('y', date_trunc('year', b.at AT TIME ZONE 'UTC')::date),
                     ('m', date_trunc('month', b.at AT TIME ZONE 'UTC')::date),
                     ('d', (b.at AT TIME ZONE 'UTC')::date)) AS g (grain, bucket)
GROUP BY 1, 2, 3, 4, 5;

CREATE TABLE case_deltas (
    grain        text NOT NULL,
    bucket       date NOT NULL,
    kommune_kode text NOT NULL,
    status       text NOT NULL,
    delta        bigint NOT NULL,
    PRIMARY KEY (grain, bucket, kommune_kode, status)
);
INSERT INTO case_deltas (grain, bucket, kommune_kode, status, delta)
SELECT g.grain, g.bucket, b.kommune_kode, b.status, sum(b.d)
FROM (SELECT kommune_kode, status, valid_from AS at, 1 AS d FROM case_intervals WHERE is_active
      UNION ALL
      SELECT kommune_kode, status, valid_to, -1 FROM case_intervals WHERE is_active AND valid_to IS NOT NULL) b,
     LATERAL (VALUES ('y', date_trunc('year', b.at AT TIME ZONE 'UTC')::date),
                     ('m', date_trunc('month', b.at AT TIME ZONE 'UTC')::date),
                     ('d', (b.at AT TIME ZONE 'UTC')::date)) AS g (grain, bucket)
GROUP BY 1, 2, 3, 4;

ALTER TABLE event_facts ADD COLUMN local_date date;
UPDATE event_facts SET local_date = (occurred_at AT TIME ZONE 'Europe/Copenhagen')::date;
ALTER TABLE event_facts ALTER COLUMN local_date SET NOT NULL;
