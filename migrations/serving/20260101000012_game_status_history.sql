-- Each game's status transitions (scheduled → in progress → final) with
-- the event time of each, beside the current status:
-- [{"status": "scheduled", "event_time": …}, {"status": "in_progress", …}, …].
ALTER TABLE serving.game_state
    ADD COLUMN status_history JSONB NOT NULL DEFAULT '[]'::jsonb;
