-- Versions of each DAG's structure (docs: ARCHITECTURE.md, "DAG versions"):
-- a new row whenever the binary's definition of a DAG (its tasks, edges,
-- settings and params) differs from the latest recorded one. A run records
-- the version current when it was created.
CREATE TABLE dag_versions (
    dag_id         TEXT        NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    version_number INTEGER     NOT NULL CHECK (version_number > 0),
    id             UUID        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    structure_hash TEXT        NOT NULL,
    structure      JSONB       NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, version_number)
);

ALTER TABLE dag_runs ADD COLUMN dag_version INTEGER;
