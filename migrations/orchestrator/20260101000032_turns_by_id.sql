-- Scheduler passes take running runs in turns by id, each process from
-- where its last pass stopped (`scheduler::Turns`), instead of stamping
-- each examined run with the time: a stamp rewrote the run's row and all
-- nine of its indexes, and fired the run-count trigger, for every run a
-- pass examined (8.6 ms of a 30 ms pass with 500 DAGs catching up). Runs
-- that need a pass soon (just started, cleared, a zombie reaped) ask for
-- one in run_schedule_requests, as executors do.
DROP INDEX dag_runs_to_schedule;
ALTER TABLE dag_runs DROP COLUMN last_scheduling_decision;
CREATE INDEX dag_runs_running ON dag_runs (id) WHERE state = 'running';
