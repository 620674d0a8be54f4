-- Backfills as records (Airflow 3's AIP-78; docs/backfills.md): one row per
-- request to run a DAG over a range of logical dates, whatever made it (the
-- CLI, the UI or the API). Its runs point back at it, start under its own
-- `max_active_runs` (not the DAG's), in logical-date order or backwards,
-- and stop starting while it is paused. A cancelled backfill is paused with
-- `completed_at` set and its queued runs failed; one whose runs have all
-- finished gets `completed_at` from the scheduler.
CREATE TABLE backfills (
    id                   BIGSERIAL   PRIMARY KEY,
    dag_id               TEXT        NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    from_date            TIMESTAMPTZ NOT NULL,
    to_date              TIMESTAMPTZ NOT NULL,
    run_backwards        BOOLEAN     NOT NULL DEFAULT false,
    dag_run_conf         JSONB       NOT NULL DEFAULT '{}',
    reprocess_behavior   TEXT        NOT NULL DEFAULT 'none'
                         CHECK (reprocess_behavior IN ('none', 'failed', 'completed')),
    max_active_runs      INTEGER     NOT NULL CHECK (max_active_runs > 0),
    is_paused            BOOLEAN     NOT NULL DEFAULT false,
    -- `cli:{login}`, a web user's login, or an API token's owner.
    created_by           TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at         TIMESTAMPTZ,
    CHECK (from_date <= to_date)
);
CREATE INDEX backfills_dag ON backfills (dag_id, id);
-- The scheduler's pass over backfills still starting runs.
CREATE INDEX backfills_open ON backfills (id) WHERE completed_at IS NULL;

ALTER TABLE dag_runs ADD COLUMN backfill_id BIGINT REFERENCES backfills (id) ON DELETE SET NULL;
CREATE INDEX dag_runs_backfill ON dag_runs (backfill_id, state) WHERE backfill_id IS NOT NULL;
