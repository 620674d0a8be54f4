-- Gold marts copied from Iceberg `gold.*` for the dashboards
-- (dags::marts_serving::replace_serving). One table per mart, named
-- serving.gold_{mart}, with the columns of its TableDef
-- (dags/src/transform/gold_tables.rs) in the same order and with the same
-- nullability, plus loaded_at. Each load replaces a table's rows in one
-- transaction (DELETE + INSERT, not TRUNCATE, so readers keep seeing the
-- previous build until the commit instead of waiting on a lock).
-- The keys are the marts' grains: a build that produced a duplicate fails
-- its load and leaves the previous rows in place. Nullable grain columns
-- (season) use UNIQUE NULLS NOT DISTINCT instead of a primary key.
-- Types: Str text, Int integer, Long bigint, Double double precision,
-- Bool boolean, Date date, Timestamp timestamptz (UTC instants).
-- Vig columns are percent (4.5 = 4.5 %); probabilities and CLV are fractions.

-- Vig, rating and activity of each bookmaker's market per game
CREATE TABLE serving.gold_market_efficiency (
    sport                        TEXT NOT NULL,
    game_id                      TEXT NOT NULL,
    bookmaker                    TEXT NOT NULL,
    market                       TEXT NOT NULL,
    snapshots                    BIGINT NOT NULL,
    avg_vig_pct                  DOUBLE PRECISION,
    min_vig_pct                  DOUBLE PRECISION,
    max_vig_pct                  DOUBLE PRECISION,
    efficiency_rating            TEXT CHECK (efficiency_rating IN ('highly_efficient', 'efficient', 'moderately_efficient', 'inefficient')),
    favourite_flips              BIGINT NOT NULL,
    updates                      BIGINT NOT NULL,
    closing_favourite            TEXT,
    first_snapshot               TIMESTAMPTZ NOT NULL,
    last_snapshot                TIMESTAMPTZ NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, bookmaker, market)
);
CREATE INDEX gold_market_efficiency_sport ON serving.gold_market_efficiency (sport, first_snapshot DESC);

-- Opening and closing lines and their movement per outcome
CREATE TABLE serving.gold_odds_movement (
    sport                        TEXT NOT NULL,
    game_id                      TEXT NOT NULL,
    bookmaker                    TEXT NOT NULL,
    market                       TEXT NOT NULL,
    outcome                      TEXT NOT NULL,
    snapshots                    BIGINT NOT NULL,
    pre_game_snapshots           BIGINT NOT NULL,
    opening_time                 TIMESTAMPTZ NOT NULL,
    opening_decimal              DOUBLE PRECISION NOT NULL,
    opening_american             DOUBLE PRECISION NOT NULL,
    opening_point                DOUBLE PRECISION,
    closing_time                 TIMESTAMPTZ,
    closing_decimal              DOUBLE PRECISION,
    closing_american             DOUBLE PRECISION,
    closing_point                DOUBLE PRECISION,
    movement_decimal             DOUBLE PRECISION,
    movement_american            DOUBLE PRECISION,
    movement_point               DOUBLE PRECISION,
    movement_prob                DOUBLE PRECISION,
    volatility                   DOUBLE PRECISION,
    biggest_move_time            TIMESTAMPTZ,
    biggest_move_prob            DOUBLE PRECISION,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, bookmaker, market, outcome)
);
CREATE INDEX gold_odds_movement_sport ON serving.gold_odds_movement (sport, opening_time DESC);

-- Closing-line value of each bookmaker's opening prices
CREATE TABLE serving.gold_closing_line_value (
    sport                        TEXT NOT NULL,
    game_id                      TEXT NOT NULL,
    bookmaker                    TEXT NOT NULL,
    market                       TEXT NOT NULL,
    outcome                      TEXT NOT NULL,
    opening_time                 TIMESTAMPTZ NOT NULL,
    opening_decimal              DOUBLE PRECISION NOT NULL,
    opening_point                DOUBLE PRECISION,
    consensus_bookmakers         BIGINT NOT NULL,
    close_fair_prob              DOUBLE PRECISION,
    close_fair_decimal           DOUBLE PRECISION,
    clv                          DOUBLE PRECISION,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, bookmaker, market, outcome)
);
CREATE INDEX gold_closing_line_value_bookmaker ON serving.gold_closing_line_value (bookmaker, sport);

-- Bookmakers compared by vig, best prices, consensus deviation and CLV
CREATE TABLE serving.gold_bookmaker_comparison (
    bookmaker                    TEXT NOT NULL,
    sport                        TEXT NOT NULL,
    season                       INTEGER,
    games                        BIGINT NOT NULL,
    market_snapshots             BIGINT NOT NULL,
    avg_vig_pct                  DOUBLE PRECISION,
    contested_prices             BIGINT NOT NULL,
    best_price_share             DOUBLE PRECISION,
    mean_abs_deviation           DOUBLE PRECISION,
    opening_clv_n                BIGINT NOT NULL,
    opening_clv_avg              DOUBLE PRECISION,
    opening_clv_positive_share   DOUBLE PRECISION,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT gold_bookmaker_comparison_grain UNIQUE NULLS NOT DISTINCT (bookmaker, sport, season)
);

-- Team results, against the spread and over/under, by season and side
CREATE TABLE serving.gold_team_trends (
    sport                        TEXT NOT NULL,
    team_id                      TEXT NOT NULL,
    team_name                    TEXT,
    season                       INTEGER,
    side                         TEXT NOT NULL CHECK (side IN ('home', 'away')),
    games                        BIGINT NOT NULL,
    wins                         BIGINT NOT NULL,
    losses                       BIGINT NOT NULL,
    ties                         BIGINT NOT NULL,
    win_rate                     DOUBLE PRECISION NOT NULL,
    avg_margin                   DOUBLE PRECISION NOT NULL,
    avg_points_for               DOUBLE PRECISION NOT NULL,
    avg_points_against           DOUBLE PRECISION NOT NULL,
    last5_win_rate               DOUBLE PRECISION NOT NULL,
    last10_win_rate              DOUBLE PRECISION NOT NULL,
    ats_games                    BIGINT NOT NULL,
    covers                       BIGINT NOT NULL,
    ats_pushes                   BIGINT NOT NULL,
    cover_rate                   DOUBLE PRECISION,
    ou_games                     BIGINT NOT NULL,
    overs                        BIGINT NOT NULL,
    ou_pushes                    BIGINT NOT NULL,
    over_rate                    DOUBLE PRECISION,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT gold_team_trends_grain UNIQUE NULLS NOT DISTINCT (team_id, season, side)
);

-- Points by period per team beside the league average
CREATE TABLE serving.gold_scoring_patterns (
    sport                        TEXT NOT NULL,
    team_id                      TEXT NOT NULL,
    period                       INTEGER NOT NULL,
    is_overtime                  BOOLEAN NOT NULL,
    games                        BIGINT NOT NULL,
    points                       BIGINT NOT NULL,
    avg_points                   DOUBLE PRECISION NOT NULL,
    share_of_points              DOUBLE PRECISION,
    league_avg_points            DOUBLE PRECISION NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, period)
);

-- Totals of outdoor games by wind at kickoff, with weather correlations
CREATE TABLE serving.gold_weather_impact (
    sport                        TEXT NOT NULL,
    wind_bucket                  TEXT NOT NULL CHECK (wind_bucket IN ('lt_5', '5_to_10', 'gt_10', 'all')),
    games                        BIGINT NOT NULL,
    avg_total_points             DOUBLE PRECISION NOT NULL,
    avg_wind_ms                  DOUBLE PRECISION,
    avg_temperature_c            DOUBLE PRECISION,
    ou_games                     BIGINT NOT NULL,
    overs                        BIGINT NOT NULL,
    unders                       BIGINT NOT NULL,
    over_rate                    DOUBLE PRECISION,
    avg_total_vs_close           DOUBLE PRECISION,
    temp_total_r                 DOUBLE PRECISION,
    temp_total_n                 BIGINT NOT NULL,
    wind_total_r                 DOUBLE PRECISION,
    wind_total_n                 BIGINT NOT NULL,
    precip_total_r               DOUBLE PRECISION,
    precip_total_n               BIGINT NOT NULL,
    temp_vs_close_r              DOUBLE PRECISION,
    temp_vs_close_n              BIGINT NOT NULL,
    wind_vs_close_r              DOUBLE PRECISION,
    wind_vs_close_n              BIGINT NOT NULL,
    precip_vs_close_r            DOUBLE PRECISION,
    precip_vs_close_n            BIGINT NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (sport, wind_bucket)
);

-- Teams
CREATE TABLE serving.gold_dim_teams (
    team_id                      TEXT NOT NULL,
    sport                        TEXT NOT NULL,
    name                         TEXT,
    abbreviation                 TEXT,
    aliases                      TEXT,
    games                        BIGINT NOT NULL,
    first_seen                   DATE NOT NULL,
    last_seen                    DATE NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id)
);

-- Venues
CREATE TABLE serving.gold_dim_venues (
    venue_id                     TEXT NOT NULL,
    name                         TEXT,
    indoor                       BOOLEAN,
    sports                       TEXT NOT NULL,
    lat                          DOUBLE PRECISION,
    lon                          DOUBLE PRECISION,
    games                        BIGINT NOT NULL,
    first_seen                   DATE NOT NULL,
    last_seen                    DATE NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue_id)
);

-- Bookmakers
CREATE TABLE serving.gold_dim_bookmakers (
    bookmaker                    TEXT NOT NULL,
    sports                       TEXT NOT NULL,
    markets                      TEXT NOT NULL,
    events                       BIGINT NOT NULL,
    games                        BIGINT NOT NULL,
    prices                       BIGINT NOT NULL,
    first_seen                   TIMESTAMPTZ NOT NULL,
    last_seen                    TIMESTAMPTZ NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bookmaker)
);

-- Markets and their outcomes
CREATE TABLE serving.gold_dim_markets (
    market                       TEXT NOT NULL,
    outcome                      TEXT NOT NULL,
    market_name                  TEXT NOT NULL,
    has_point                    BOOLEAN NOT NULL,
    description                  TEXT NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (market, outcome)
);

-- Calendar
CREATE TABLE serving.gold_dim_dates (
    date                         DATE NOT NULL,
    year                         INTEGER NOT NULL,
    month                        INTEGER NOT NULL,
    day                          INTEGER NOT NULL,
    iso_weekday                  INTEGER NOT NULL,
    iso_week                     INTEGER NOT NULL,
    is_weekend                   BOOLEAN NOT NULL,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (date)
);
