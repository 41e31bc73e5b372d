-- The as-of backlog (eventlog/queries.py) summed the boundary deltas of every day of T's month before T's day: at
-- 30 M events every kommune has boundaries every day, and those up to 30 days x groups were the bulk of its rows.
-- A ten-day grain ('t': the blocks starting on the 1st, 11th and 21st, the third running to the month's end) cuts
-- that to at most 2 blocks + 9 days. The projection writes 't' rows from now on (eventlog.projections.buckets);
-- here the live tables get theirs from the 'd' rows they hold, so no refold is needed. The tables' shape is
-- unchanged (grain is free text), so eventlog_create_case_views stays as migration 0006 defined it.
-- Stop the projection runners (the workers) of an older version before this runs: one that keeps writing only
-- 'd' rows after it leaves the 't' rows short (`sagsflow eventlog rebuild` repairs that).
INSERT INTO task_deltas (grain, bucket, kommune_kode, status, overdue, delta)
SELECT 't', date_trunc('month', bucket)::date + least((extract(day FROM bucket)::int - 1) / 10, 2) * 10,
       kommune_kode, status, overdue, sum(delta)
FROM task_deltas WHERE grain = 'd'
GROUP BY 2, 3, 4, 5;

INSERT INTO case_deltas (grain, bucket, kommune_kode, status, delta)
SELECT 't', date_trunc('month', bucket)::date + least((extract(day FROM bucket)::int - 1) / 10, 2) * 10,
       kommune_kode, status, sum(delta)
FROM case_deltas WHERE grain = 'd'
GROUP BY 2, 3, 4;
