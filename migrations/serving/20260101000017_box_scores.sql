-- Box scores from the scoreboard polls (docs/data-model.md#box-scores): each
-- team's season record and statistics (ESPN's names: fieldGoalPct, rebounds,
-- assists, saves, savePct …) on the game's live state, and the game's
-- leaders per category and team. NULL or absent where the source has none
-- (football scoreboards carry leaders but no team statistics).
ALTER TABLE serving.game_state
    ADD COLUMN home_record TEXT,
    ADD COLUMN away_record TEXT,
    ADD COLUMN home_stats  JSONB,
    ADD COLUMN away_stats  JSONB;

CREATE TABLE serving.game_leaders (
    game_id        TEXT NOT NULL,
    sport          TEXT NOT NULL,
    category       TEXT NOT NULL,
    team_id        TEXT NOT NULL,
    athlete        TEXT NOT NULL,
    display_value  TEXT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    event_time     TIMESTAMPTZ NOT NULL,
    write_time     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, category, team_id)
);
CREATE INDEX game_leaders_sport_time ON serving.game_leaders (sport, event_time DESC);
