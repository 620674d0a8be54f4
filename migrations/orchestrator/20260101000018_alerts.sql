-- Alerts on task and run outcomes and missed deadlines (docs/alerts.md): an
-- outbox written in the transaction that changes the state it reports, one
-- row per channel, delivered by every engine's notifier loop with retries.
-- A webhook's URL is never stored (its path is a secret): `target` holds
-- email recipients only.
CREATE TABLE alert_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    event            TEXT NOT NULL CHECK (event IN ('failure', 'retry', 'success', 'deadline_miss')),
    dag_id           TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    -- NULL: the run's event; else the task's try.
    task_id          TEXT,
    try_number       INTEGER,
    channel          TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    target           TEXT,
    message          TEXT NOT NULL,
    detail           JSONB NOT NULL DEFAULT '{}'::jsonb,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_by_run ON alert_deliveries (dag_id, run_id);

-- When a run was found past its DAG's deadline (one alert per run).
ALTER TABLE dag_runs ADD COLUMN deadline_missed_at TIMESTAMPTZ;
