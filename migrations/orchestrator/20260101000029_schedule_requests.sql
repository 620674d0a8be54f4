-- Runs an executor recorded tries of with something only a scheduler pass
-- does (a leaf ended, a try failed or will be retried, a mapped task to
-- expand). Executors only insert here, so asking for a pass never waits on
-- the pass that holds the run's row: setting the run's
-- last_scheduling_decision instead made every batch of recorded tries wait
-- for the pass examining that run (13 ms a batch on average, up to 250 ms,
-- with 500 DAGs catching up). A pass takes the requests of the runs it
-- locked before it reads their task instances.
CREATE TABLE run_schedule_requests (
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL
);
CREATE INDEX run_schedule_requests_run ON run_schedule_requests (dag_id, run_id);
