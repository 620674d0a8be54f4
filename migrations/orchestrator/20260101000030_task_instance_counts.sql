-- Task instances per DAG, kept like the run counts (migration 28): the
-- task-instance API's total over a DAG's whole history (half a million
-- instances at 10,000 runs of 50 tasks) is read here instead of counted.
-- Only inserts and deletes move it, so the executor's and the scheduler's
-- state changes never touch it.
CREATE TABLE task_instance_counts (
    dag_id TEXT NOT NULL,
    instances BIGINT NOT NULL
);
CREATE INDEX task_instance_counts_by_dag ON task_instance_counts (dag_id);

CREATE FUNCTION task_instance_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_instance_counts (dag_id, instances)
    SELECT dag_id, count(*) FROM inserted_instances GROUP BY dag_id;
    RETURN NULL;
END $$;

CREATE FUNCTION task_instance_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_instance_counts (dag_id, instances)
    SELECT dag_id, -count(*) FROM deleted_instances GROUP BY dag_id;
    RETURN NULL;
END $$;

CREATE FUNCTION task_instance_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_instance_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER task_instance_counts_insert AFTER INSERT ON task_instances
    REFERENCING NEW TABLE AS inserted_instances
    FOR EACH STATEMENT EXECUTE FUNCTION task_instance_counts_inserted();
CREATE TRIGGER task_instance_counts_delete AFTER DELETE ON task_instances
    REFERENCING OLD TABLE AS deleted_instances
    FOR EACH STATEMENT EXECUTE FUNCTION task_instance_counts_deleted();
CREATE TRIGGER task_instance_counts_truncate AFTER TRUNCATE ON task_instances
    FOR EACH STATEMENT EXECUTE FUNCTION task_instance_counts_truncated();

-- As compact_dag_run_counts: one row per DAG, one compaction at a time.
CREATE FUNCTION compact_task_instance_counts() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    taken_rows bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('compact_task_instance_counts')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (DELETE FROM task_instance_counts RETURNING dag_id, instances),
    folded AS (
        INSERT INTO task_instance_counts (dag_id, instances)
        SELECT dag_id, sum(instances) FROM taken GROUP BY dag_id HAVING sum(instances) <> 0
    )
    SELECT count(*) INTO taken_rows FROM taken;
    RETURN taken_rows;
END $$;

INSERT INTO task_instance_counts (dag_id, instances)
SELECT dag_id, count(*) FROM task_instances GROUP BY dag_id;
