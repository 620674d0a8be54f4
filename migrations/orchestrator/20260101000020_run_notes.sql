-- A note on a DAG run (Airflow's run notes), set through the API.
ALTER TABLE dag_runs ADD COLUMN note TEXT;
