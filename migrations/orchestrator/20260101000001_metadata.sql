-- Orchestrator metadata: DAGs, runs, task instances, logs, outputs, workers, pools.
-- State names are Airflow's so its users can read these tables directly.

CREATE TABLE dags (
    dag_id            TEXT PRIMARY KEY,
    description       TEXT NOT NULL DEFAULT '',
    schedule          TEXT,
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    is_paused         BOOLEAN NOT NULL DEFAULT FALSE,
    is_stale          BOOLEAN NOT NULL DEFAULT FALSE,
    tags              TEXT[] NOT NULL DEFAULT '{}',
    fileloc           TEXT NOT NULL DEFAULT '',
    max_active_runs   INTEGER NOT NULL DEFAULT 16,
    max_active_tasks  INTEGER NOT NULL DEFAULT 16,
    catchup           BOOLEAN NOT NULL DEFAULT FALSE,
    start_date        TIMESTAMPTZ,
    end_date          TIMESTAMPTZ,
    last_parsed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE dag_runs (
    id                   BIGSERIAL PRIMARY KEY,
    dag_id               TEXT NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    run_id               TEXT NOT NULL,
    logical_date         TIMESTAMPTZ NOT NULL,
    data_interval_start  TIMESTAMPTZ NOT NULL,
    data_interval_end    TIMESTAMPTZ NOT NULL,
    run_type             TEXT NOT NULL CHECK (run_type IN ('scheduled', 'manual', 'backfill')),
    state                TEXT NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    conf                 JSONB NOT NULL DEFAULT '{}',
    queued_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    start_date           TIMESTAMPTZ,
    end_date             TIMESTAMPTZ,
    UNIQUE (dag_id, run_id),
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_active ON dag_runs (state, queued_at) WHERE state IN ('queued', 'running');
CREATE INDEX dag_runs_by_dag ON dag_runs (dag_id, logical_date DESC);

CREATE TABLE task_instances (
    dag_id            TEXT NOT NULL,
    run_id            TEXT NOT NULL,
    task_id           TEXT NOT NULL,
    map_index         INTEGER NOT NULL DEFAULT -1,
    state             TEXT NOT NULL DEFAULT 'none' CHECK (state IN (
                        'none', 'scheduled', 'queued', 'running', 'success', 'failed',
                        'up_for_retry', 'up_for_reschedule', 'upstream_failed', 'skipped', 'removed')),
    try_number        INTEGER NOT NULL DEFAULT 0,
    max_tries         INTEGER NOT NULL DEFAULT 0,
    pool              TEXT NOT NULL DEFAULT 'default_pool',
    pool_slots        INTEGER NOT NULL DEFAULT 1,
    priority_weight   INTEGER NOT NULL DEFAULT 1,
    hostname          TEXT,
    worker_id         TEXT,
    queued_at         TIMESTAMPTZ,
    start_date        TIMESTAMPTZ,
    end_date          TIMESTAMPTZ,
    duration          DOUBLE PRECISION,
    heartbeat_at      TIMESTAMPTZ,
    -- When an up_for_retry / up_for_reschedule instance may be queued again.
    next_attempt_at   TIMESTAMPTZ,
    -- First poke of a sensor, so its timeout spans reschedules.
    first_attempt_at  TIMESTAMPTZ,
    PRIMARY KEY (dag_id, run_id, task_id, map_index),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);
CREATE INDEX task_instances_queued ON task_instances (priority_weight DESC, queued_at) WHERE state = 'queued';
CREATE INDEX task_instances_running ON task_instances (worker_id) WHERE state = 'running';
CREATE INDEX task_instances_unfinished ON task_instances (dag_id, run_id)
    WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule');
CREATE INDEX task_instances_waiting ON task_instances (next_attempt_at)
    WHERE state IN ('up_for_retry', 'up_for_reschedule');

-- One row per finished try, so every try's outcome stays visible after retries.
CREATE TABLE task_tries (
    dag_id       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    map_index    INTEGER NOT NULL DEFAULT -1,
    try_number   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    hostname     TEXT,
    worker_id    TEXT,
    start_date   TIMESTAMPTZ,
    end_date     TIMESTAMPTZ,
    duration     DOUBLE PRECISION,
    error        TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE task_logs (
    id          BIGSERIAL PRIMARY KEY,
    dag_id      TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    map_index   INTEGER NOT NULL DEFAULT -1,
    try_number  INTEGER NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL,
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);
CREATE INDEX task_logs_by_try ON task_logs (dag_id, run_id, task_id, map_index, try_number, id);

CREATE TABLE xcom (
    dag_id      TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    map_index   INTEGER NOT NULL DEFAULT -1,
    key         TEXT NOT NULL,
    value       JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id, task_id, map_index, key),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE pools (
    name         TEXT PRIMARY KEY,
    slots        INTEGER NOT NULL CHECK (slots >= 0),
    description  TEXT NOT NULL DEFAULT ''
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

-- Every betflow process (scheduler + executor) heartbeats here; a stale row
-- means its running task instances are zombies.
CREATE TABLE workers (
    worker_id     TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at    TIMESTAMPTZ
);

-- Long-running stream tasks, one row per (dag, task, worker) supervising it.
CREATE TABLE stream_tasks (
    dag_id        TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    worker_id     TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('starting', 'running', 'restarting', 'stopped')),
    restarts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    health        JSONB NOT NULL DEFAULT '{}',
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, task_id, worker_id)
);
