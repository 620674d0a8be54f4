-- Assets and data-aware scheduling (Airflow 3's assets; docs/assets.md).
--
-- An asset is named by a URI (`iceberg://silver.games`). Tasks declare the
-- assets they write (outlets) and read (inlets); a DAG may be scheduled on a
-- condition over assets. Each successful try of a task with outlets records
-- one event per outlet, in the transaction that records the try, and queues
-- the event for every DAG scheduled on that asset. The scheduler turns a
-- DAG's queued events into an `asset_triggered` run once its condition holds
-- for one partition, linking the events to the run and removing them from
-- the queue in the same transaction.
CREATE TABLE assets (
    id          BIGSERIAL   PRIMARY KEY,
    uri         TEXT        NOT NULL UNIQUE,
    name        TEXT        NOT NULL,
    group_name  TEXT        NOT NULL DEFAULT 'asset',
    extra       JSONB       NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- DAGs scheduled on an asset (consumers of its events).
CREATE TABLE asset_dag_refs (
    asset_id    BIGINT      NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    dag_id      TEXT        NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, dag_id)
);
CREATE INDEX asset_dag_refs_dag ON asset_dag_refs (dag_id);

-- Tasks that write (`outlet`) or read (`inlet`) an asset.
CREATE TABLE asset_task_refs (
    asset_id    BIGINT      NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    dag_id      TEXT        NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    task_id     TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('outlet', 'inlet')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, dag_id, task_id, kind)
);
CREATE INDEX asset_task_refs_dag ON asset_task_refs (dag_id);

-- One update of an asset: by a task try (source_* set) or posted through
-- the API (created_by set). `partition` is the slice of the asset it
-- updated, as the producing DAG names it (a sports day), or ''.
CREATE TABLE asset_events (
    id                   BIGSERIAL   PRIMARY KEY,
    asset_id             BIGINT      NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    partition            TEXT        NOT NULL DEFAULT '',
    extra                JSONB       NOT NULL DEFAULT '{}',
    source_dag_id        TEXT,
    source_task_id       TEXT,
    source_run_id        TEXT,
    source_map_index     INTEGER,
    source_try_number    INTEGER,
    data_interval_start  TIMESTAMPTZ,
    data_interval_end    TIMESTAMPTZ,
    created_by           TEXT,
    timestamp            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX asset_events_asset ON asset_events (asset_id, id DESC);
CREATE INDEX asset_events_source ON asset_events (source_dag_id, source_run_id);

-- Events not yet consumed by a DAG scheduled on their asset.
CREATE TABLE asset_queue (
    target_dag_id  TEXT   NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    event_id       BIGINT NOT NULL REFERENCES asset_events (id) ON DELETE CASCADE,
    PRIMARY KEY (target_dag_id, event_id)
);

-- The events that made an asset-triggered run.
CREATE TABLE dag_run_asset_events (
    dag_run_id  BIGINT NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    event_id    BIGINT NOT NULL REFERENCES asset_events (id) ON DELETE CASCADE,
    PRIMARY KEY (dag_run_id, event_id)
);
CREATE INDEX dag_run_asset_events_event ON dag_run_asset_events (event_id);

-- The DAG's asset condition in Airflow's `asset_expression` shape, NULL for
-- DAGs not scheduled on assets.
ALTER TABLE dags ADD COLUMN asset_expression JSONB;

-- The partition an asset-triggered run was made for (Airflow's
-- `partition_key`), NULL for other runs.
ALTER TABLE dag_runs ADD COLUMN partition_key TEXT;

ALTER TABLE dag_runs DROP CONSTRAINT dag_runs_run_type_check;
ALTER TABLE dag_runs ADD CONSTRAINT dag_runs_run_type_check
    CHECK (run_type IN ('scheduled', 'manual', 'backfill', 'asset_triggered'));
