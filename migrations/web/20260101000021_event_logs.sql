-- The audit trail (Airflow's event logs): every action a user or token
-- takes (log in and out, trigger, clear, mark, pause, backfill, patch or
-- delete a run, accounts), who took it and from which address.
CREATE TABLE event_logs (
    id          BIGSERIAL PRIMARY KEY,
    "when"      TIMESTAMPTZ NOT NULL DEFAULT now(),
    event       TEXT NOT NULL,
    owner       TEXT,
    client      TEXT,
    dag_id      TEXT,
    run_id      TEXT,
    task_id     TEXT,
    extra       JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX event_logs_when ON event_logs ("when" DESC);
CREATE INDEX event_logs_dag ON event_logs (dag_id, "when" DESC);
