-- Checkpoints of the stream consumers (dags/src/stream/kafka/checkpoint.rs):
-- per consumer group and partition, the next offset to process and the
-- processor's in-memory state (open windows, live game states, venue
-- baselines) after every message before it. Written in the same transaction
-- as the serving rows those messages produced; the Kafka offset is committed
-- to the same value only afterwards. A restarted or rebalanced consumer
-- restores the state, skips messages below next_offset and re-applies the
-- rest, whose serving upserts rewrite identical rows: no loss, no double
-- counting. Deleting a group's rows (with its Kafka offsets) reprocesses
-- from scratch.
CREATE TABLE serving.consumer_checkpoints (
    group_id             TEXT NOT NULL,
    topic                TEXT NOT NULL,
    partition            INTEGER NOT NULL CHECK (partition >= 0),
    next_offset          BIGINT NOT NULL CHECK (next_offset >= 0),
    processor            TEXT NOT NULL,
    -- The configuration the state was built under (window size, lateness …);
    -- a consumer with another one starts from empty state instead.
    fingerprint          TEXT NOT NULL,
    -- Floats are strings of their exact value (dags/src/stream/exact.rs).
    state                JSONB NOT NULL,
    written_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
