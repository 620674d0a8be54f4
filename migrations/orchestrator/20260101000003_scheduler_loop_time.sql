-- Duration of each process's latest scheduler pass, written with its heartbeat
-- and exported by /metrics.
ALTER TABLE workers ADD COLUMN scheduler_loop_seconds DOUBLE PRECISION;
