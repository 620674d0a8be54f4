-- What the markets pages show a game by: the teams' names and the scheduled
-- start. Live games carry them in their updates (NULL for rows written
-- before); odds events get a row of their own, upserted by the odds sink
-- from each message's event, so prices can be listed per game by name.
ALTER TABLE serving.game_state
    ADD COLUMN home_team TEXT,
    ADD COLUMN away_team TEXT,
    ADD COLUMN start_time TIMESTAMPTZ;

CREATE TABLE serving.odds_events (
    event_id             TEXT PRIMARY KEY,
    sport                TEXT NOT NULL,
    home_team            TEXT NOT NULL,
    away_team            TEXT NOT NULL,
    commence_time        TIMESTAMPTZ NOT NULL,
    event_time           TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX odds_events_sport_commence ON serving.odds_events (sport, commence_time);
