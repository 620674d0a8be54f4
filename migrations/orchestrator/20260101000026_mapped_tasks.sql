-- Dynamic task mapping (docs/mapping.md): a mapped task's instances
-- (map_index 0..n) each carry the item of the list they were expanded for.
ALTER TABLE task_instances ADD COLUMN map_item JSONB;
