-- A scheduler pass looks at a bounded number of running runs, least
-- recently examined first; NULL means "examine soon": a run just started,
-- or one whose tries the executor recorded with something for the
-- scheduler to do (a leaf finished, a failure, a retry).
ALTER TABLE dag_runs ADD COLUMN last_scheduling_decision TIMESTAMPTZ;
CREATE INDEX dag_runs_to_schedule ON dag_runs (last_scheduling_decision NULLS FIRST, id)
    WHERE state = 'running';

-- The claim's order in full, so a claim reads its few rows off the index
-- instead of sorting every queued instance of a wide fan-out (they share
-- one queued_at).
DROP INDEX task_instances_queued;
CREATE INDEX task_instances_queued ON task_instances (priority_weight DESC, queued_at, task_id, map_index)
    WHERE state = 'queued';
