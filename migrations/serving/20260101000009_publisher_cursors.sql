-- Progress of the live publishers (dags/src/stream/publish/cursor.rs): the
-- event time of the last group of messages each one delivered to Kafka.
-- A restarted replay publisher resumes after it, so the consumers'
-- windows never see the same updates twice as late arrivals.
CREATE TABLE serving.publisher_cursors (
    publisher            TEXT PRIMARY KEY,
    published_through    TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
