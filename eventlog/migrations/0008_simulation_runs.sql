-- A database `sagsflow simulate` writes into says so, one row per run. The command refuses a log that holds events
-- but no run (real cases: a simulated year must never land in production's log) and a seed it already ran.
CREATE TABLE IF NOT EXISTS simulation_runs (
    seed bigint PRIMARY KEY,
    start_date date NOT NULL,
    weeks integer NOT NULL,
    rate_per_week double precision NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
