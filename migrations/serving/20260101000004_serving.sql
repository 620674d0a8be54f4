-- Serving tables the stream processors (dags/src/stream) upsert into for the
-- live dashboards. Windowed tables are keyed by (processor, key, window_start)
-- so a re-processed window (consumer restart from committed offsets) overwrites
-- itself instead of duplicating. Every row carries event_time (latest event it
-- reflects), ingest_time (producer fetch time) and write_time (sink time), so
-- lag is visible per stage.
CREATE SCHEMA IF NOT EXISTS serving;

-- Latest price per (event, market, bookmaker, outcome). The sink's upsert keeps
-- the earliest open_* (ON CONFLICT … SET open_* = CASE WHEN EXCLUDED.open_time <
-- odds_latest.open_time …): the opening line of DATA.md, first snapshot ever of
-- the key, survives restarts without processor state.
CREATE TABLE serving.odds_latest (
    sport                TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    market               TEXT NOT NULL,
    bookmaker            TEXT NOT NULL,
    outcome              TEXT NOT NULL CHECK (outcome IN ('home', 'away', 'draw', 'over', 'under')),
    point                DOUBLE PRECISION,
    price_decimal        DOUBLE PRECISION NOT NULL CHECK (price_decimal > 1),
    price_american       DOUBLE PRECISION,
    implied_probability  DOUBLE PRECISION NOT NULL CHECK (implied_probability > 0 AND implied_probability < 1),
    no_vig_probability   DOUBLE PRECISION NOT NULL,
    -- Σ p − 1 of the bookmaker's market at this snapshot, as a fraction (0.0476 = 4.76 %).
    overround            DOUBLE PRECISION NOT NULL,
    open_decimal         DOUBLE PRECISION NOT NULL CHECK (open_decimal > 1),
    open_point           DOUBLE PRECISION,
    open_time            TIMESTAMPTZ NOT NULL,
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, market, bookmaker, outcome)
);
CREATE INDEX odds_latest_sport_time ON serving.odds_latest (sport, event_time DESC);

-- One closed window of one bookmaker's market, one row per outcome
-- (stream::odds::window::OddsWindowOutput). key = '{event_id}/{market}/{bookmaker}';
-- open_* is the first snapshot in the window.
CREATE TABLE serving.odds_windows (
    processor            TEXT NOT NULL,
    key                  TEXT NOT NULL,
    window_start         TIMESTAMPTZ NOT NULL,
    outcome              TEXT NOT NULL CHECK (outcome IN ('home', 'away', 'draw', 'over', 'under')),
    window_end           TIMESTAMPTZ NOT NULL CHECK (window_end > window_start),
    sport                TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    market               TEXT NOT NULL,
    bookmaker            TEXT NOT NULL,
    events               BIGINT NOT NULL CHECK (events > 0),
    snapshots            BIGINT NOT NULL CHECK (snapshots > 0),
    open_time            TIMESTAMPTZ NOT NULL,
    latest_time          TIMESTAMPTZ NOT NULL,
    open_decimal         DOUBLE PRECISION,
    open_point           DOUBLE PRECISION,
    latest_decimal       DOUBLE PRECISION NOT NULL CHECK (latest_decimal > 1),
    latest_point         DOUBLE PRECISION,
    move_decimal         DOUBLE PRECISION,
    move_american        DOUBLE PRECISION,
    move_point           DOUBLE PRECISION,
    implied_probability  DOUBLE PRECISION NOT NULL,
    no_vig_probability   DOUBLE PRECISION NOT NULL,
    -- Sample stdev of implied probability over the window; NULL below two snapshots.
    volatility           DOUBLE PRECISION,
    outcome_snapshots    BIGINT NOT NULL,
    overround_latest     DOUBLE PRECISION NOT NULL,
    overround_avg        DOUBLE PRECISION NOT NULL,
    overround_min        DOUBLE PRECISION NOT NULL,
    overround_max        DOUBLE PRECISION NOT NULL,
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (processor, key, window_start, outcome)
);
CREATE INDEX odds_windows_event ON serving.odds_windows (event_id, market, window_start);

-- Σ 1/best < 1 across the bookmakers of one poll (stream::odds::market::MarketBest).
-- line: the total, or the home spread; NULL for h2h (NULLS NOT DISTINCT keeps
-- one alert per event/market/line/time idempotent).
CREATE TABLE serving.arbitrage_alerts (
    id                   BIGSERIAL PRIMARY KEY,
    sport                TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    market               TEXT NOT NULL,
    line                 DOUBLE PRECISION,
    -- 1 − Σ 1/best_i.
    margin               DOUBLE PRECISION NOT NULL CHECK (margin > 0 AND margin < 1),
    -- [{side, decimal, point, bookmakers: [..], stake_share}], stake shares sum to 1.
    legs                 JSONB NOT NULL,
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT arbitrage_alerts_unique UNIQUE NULLS NOT DISTINCT (event_id, market, line, event_time)
);
CREATE INDEX arbitrage_alerts_time ON serving.arbitrage_alerts (sport, event_time DESC);

-- Live state per game (stream::games::GameState).
CREATE TABLE serving.game_state (
    game_id              TEXT PRIMARY KEY,
    sport                TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('scheduled', 'in_progress', 'final')),
    period               INTEGER NOT NULL CHECK (period >= 0),
    clock                TEXT,
    home_team_id         TEXT NOT NULL,
    away_team_id         TEXT NOT NULL,
    home_score           INTEGER NOT NULL CHECK (home_score >= 0),
    away_score           INTEGER NOT NULL CHECK (away_score >= 0),
    leader               TEXT NOT NULL CHECK (leader IN ('home', 'away', 'tied')),
    lead_changes         INTEGER NOT NULL CHECK (lead_changes >= 0),
    -- Combined points per period played; NULL before the start.
    pace_per_period      DOUBLE PRECISION,
    -- {"1": [home, away], …}
    period_points        JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- [{event_time, period, home, away}, …] score changes in event-time order.
    progression          JSONB NOT NULL DEFAULT '[]'::jsonb,
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX game_state_sport_status ON serving.game_state (sport, status);

-- Scoring per game window (stream::games::GameWindowOutput); key = game_id.
CREATE TABLE serving.game_windows (
    processor            TEXT NOT NULL,
    key                  TEXT NOT NULL,
    window_start         TIMESTAMPTZ NOT NULL,
    window_end           TIMESTAMPTZ NOT NULL CHECK (window_end > window_start),
    sport                TEXT NOT NULL,
    events               BIGINT NOT NULL CHECK (events > 0),
    first_time           TIMESTAMPTZ NOT NULL,
    last_time            TIMESTAMPTZ NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('scheduled', 'in_progress', 'final')),
    period               INTEGER NOT NULL CHECK (period >= 0),
    home_score           INTEGER NOT NULL CHECK (home_score >= 0),
    away_score           INTEGER NOT NULL CHECK (away_score >= 0),
    home_run             INTEGER NOT NULL,
    away_run             INTEGER NOT NULL,
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (processor, key, window_start)
);

-- Current conditions per venue (stream::weather::VenueWeather).
CREATE TABLE serving.weather_latest (
    venue_id             TEXT PRIMARY KEY,
    game_id              TEXT NOT NULL,
    sport                TEXT NOT NULL,
    temperature_c        DOUBLE PRECISION,
    wind_speed_ms        DOUBLE PRECISION CHECK (wind_speed_ms >= 0),
    wind_deg             DOUBLE PRECISION,
    wind_cardinal        TEXT CHECK (wind_cardinal IN ('N', 'NE', 'E', 'SE', 'S', 'SW', 'W', 'NW')),
    precipitation_mm     DOUBLE PRECISION CHECK (precipitation_mm >= 0),
    humidity_pct         DOUBLE PRECISION CHECK (humidity_pct BETWEEN 0 AND 100),
    condition            TEXT,
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Changes beyond thresholds (stream::weather::WeatherChange).
CREATE TABLE serving.weather_alerts (
    venue_id             TEXT NOT NULL,
    field                TEXT NOT NULL CHECK (field IN ('wind_speed_ms', 'precipitation_mm', 'temperature_c')),
    event_time           TIMESTAMPTZ NOT NULL,
    game_id              TEXT NOT NULL,
    sport                TEXT NOT NULL,
    from_value           DOUBLE PRECISION NOT NULL,
    to_value             DOUBLE PRECISION NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue_id, field, event_time)
);

-- News sentiment per team and window (the news processor is not written yet;
-- the table fixes its grain). key = team_id.
CREATE TABLE serving.news_sentiment (
    processor            TEXT NOT NULL,
    key                  TEXT NOT NULL,
    window_start         TIMESTAMPTZ NOT NULL,
    window_end           TIMESTAMPTZ NOT NULL CHECK (window_end > window_start),
    sport                TEXT NOT NULL,
    team_id              TEXT NOT NULL,
    article_count        BIGINT NOT NULL CHECK (article_count > 0),
    mean_sentiment       DOUBLE PRECISION NOT NULL CHECK (mean_sentiment BETWEEN -1 AND 1),
    event_time           TIMESTAMPTZ NOT NULL,
    ingest_time          TIMESTAMPTZ NOT NULL,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (processor, key, window_start)
);

-- Messages (or parts of them) a consumer could not use: undecodable envelopes,
-- late events, rejected markets, game anomalies. One row per message: a
-- message with several problems gets them joined in reason, so a redelivery
-- upserts the same row. event_time/ingest_time are NULL when the envelope did
-- not decode.
CREATE TABLE serving.dead_letter (
    id                   BIGSERIAL PRIMARY KEY,
    topic                TEXT NOT NULL,
    partition            INTEGER NOT NULL CHECK (partition >= 0),
    "offset"             BIGINT NOT NULL CHECK ("offset" >= 0),
    processor            TEXT,
    -- Short stable code (stream::envelope::DecodeError::code, 'late', 'anomaly', …).
    reason_code          TEXT NOT NULL,
    reason               TEXT NOT NULL,
    message_key          BYTEA,
    payload              BYTEA NOT NULL,
    received_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    event_time           TIMESTAMPTZ,
    ingest_time          TIMESTAMPTZ,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT dead_letter_message UNIQUE (topic, partition, "offset")
);
CREATE INDEX dead_letter_received ON serving.dead_letter (received_at DESC);
