-- Runs per DAG and state, kept by statement triggers on dag_runs so the DAGs
-- page, a DAG's summary, metrics and the runs API's total need not count a
-- DAG's whole history (a grouped scan of 100,000 runs takes 30-50 ms, of a
-- million ten times that).
--
-- The table only ever gains rows: each statement that inserts, deletes or
-- changes the state of runs appends one signed row per (DAG, state) it
-- moved, so concurrent writers never wait on a shared counter row. A
-- count is the sum of a group's rows; `compact_dag_run_counts()` (run by
-- the scheduler now and then) folds each group into one row.
CREATE TABLE dag_run_counts (
    dag_id TEXT NOT NULL,
    state TEXT NOT NULL,
    runs BIGINT NOT NULL
);
CREATE INDEX dag_run_counts_by_dag ON dag_run_counts (dag_id, state);

CREATE FUNCTION dag_run_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dag_run_counts (dag_id, state, runs)
    SELECT dag_id, state, count(*) FROM inserted_runs GROUP BY dag_id, state;
    RETURN NULL;
END $$;

-- Rows whose state did not change add +1 and -1 to the same group and
-- cancel out, so no join of the old and new rows is needed.
CREATE FUNCTION dag_run_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dag_run_counts (dag_id, state, runs)
    SELECT dag_id, state, sum(n) FROM (
        SELECT dag_id, state, 1 AS n FROM updated_runs
        UNION ALL
        SELECT dag_id, state, -1 FROM replaced_runs
    ) moved
    GROUP BY dag_id, state
    HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION dag_run_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dag_run_counts (dag_id, state, runs)
    SELECT dag_id, state, -count(*) FROM deleted_runs GROUP BY dag_id, state;
    RETURN NULL;
END $$;

CREATE TRIGGER dag_run_counts_insert AFTER INSERT ON dag_runs
    REFERENCING NEW TABLE AS inserted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION dag_run_counts_inserted();
CREATE TRIGGER dag_run_counts_update AFTER UPDATE ON dag_runs
    REFERENCING OLD TABLE AS replaced_runs NEW TABLE AS updated_runs
    FOR EACH STATEMENT EXECUTE FUNCTION dag_run_counts_updated();
CREATE TRIGGER dag_run_counts_delete AFTER DELETE ON dag_runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION dag_run_counts_deleted();

CREATE FUNCTION dag_run_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM dag_run_counts;
    RETURN NULL;
END $$;
CREATE TRIGGER dag_run_counts_truncate AFTER TRUNCATE ON dag_runs
    FOR EACH STATEMENT EXECUTE FUNCTION dag_run_counts_truncated();

-- Folds each (DAG, state) into one row, dropping groups that sum to zero,
-- and returns how many rows it took. Rows appended meanwhile by other
-- transactions are not visible to the DELETE and stay as they are. One
-- compaction at a time (a transaction-scoped advisory lock): another
-- returns at once, taking nothing.
CREATE FUNCTION compact_dag_run_counts() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    taken_rows bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('compact_dag_run_counts')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (DELETE FROM dag_run_counts RETURNING dag_id, state, runs),
    folded AS (
        INSERT INTO dag_run_counts (dag_id, state, runs)
        SELECT dag_id, state, sum(runs) FROM taken GROUP BY dag_id, state HAVING sum(runs) <> 0
    )
    SELECT count(*) INTO taken_rows FROM taken;
    RETURN taken_rows;
END $$;

INSERT INTO dag_run_counts (dag_id, state, runs)
SELECT dag_id, state, count(*) FROM dag_runs GROUP BY dag_id, state;

-- The runs API's "newest first" over every DAG reads its page off this
-- index instead of sorting every run.
CREATE INDEX dag_runs_newest ON dag_runs (logical_date DESC, id);
