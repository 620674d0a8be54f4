-- A note on a task instance (Airflow's TaskInstance.note), set through
-- PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}.
ALTER TABLE task_instances ADD COLUMN note TEXT;
