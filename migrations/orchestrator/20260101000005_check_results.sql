-- Data-quality check results (Dagster's asset checks): what a task try
-- observed about a table it produced or read, one row per check. Tasks write
-- them through `store::checks`; `betflow runs show`, the run page and
-- `/api/v2/…/qualityChecks` read them.

CREATE TABLE check_results (
    id              BIGSERIAL PRIMARY KEY,
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    try_number      INTEGER NOT NULL,
    -- The run's logical date, copied so "the previous observation of this
    -- check" is one index scan, across runs and DAGs, without a join.
    logical_date    TIMESTAMPTZ NOT NULL,
    -- The table or asset checked (`silver.games`): checks are about data,
    -- which outlives the task that looked at it.
    asset           TEXT NOT NULL,
    check_name      TEXT NOT NULL,
    -- An error-level failure fails the task; a warn-level one is only recorded.
    severity        TEXT NOT NULL CHECK (severity IN ('error', 'warn')),
    passed          BOOLEAN NOT NULL,
    -- The headline figure: failing rows, a row count, an age in seconds.
    observed_value  DOUBLE PRECISION,
    -- Everything else measured (row counts, sample failing keys, bounds).
    observed        JSONB NOT NULL DEFAULT '{}',
    detail          TEXT NOT NULL DEFAULT '',
    checked_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);
CREATE INDEX check_results_by_run ON check_results (dag_id, run_id, task_id, try_number);
-- The last good observation of a check on a table before a date (row count
-- compared with the previous day's).
CREATE INDEX check_results_previous ON check_results (asset, check_name, logical_date DESC)
    WHERE passed;
