-- The news mart copied from Iceberg `gold.news_sentiment_daily` for the
-- dashboards (dags::marts_serving::replace_serving), like the marts of
-- 20260101000006_gold_serving.sql: the columns of its TableDef
-- (dags/src/transform/gold_tables.rs) in order and with their nullability,
-- plus loaded_at; each load replaces every row in one transaction.
-- Sentiment is the lexicon score in (-1, 1); probabilities are fractions.

-- News volume and sentiment per team and day, beside the market's move after it
CREATE TABLE serving.gold_news_sentiment_daily (
    sport                        TEXT NOT NULL,
    team_id                      TEXT NOT NULL,
    team_name                    TEXT,
    sports_date                  DATE NOT NULL,
    articles                     BIGINT NOT NULL CHECK (articles > 0),
    positive_articles            BIGINT NOT NULL,
    negative_articles            BIGINT NOT NULL,
    mean_sentiment               DOUBLE PRECISION NOT NULL CHECK (mean_sentiment > -1 AND mean_sentiment < 1),
    first_published              TIMESTAMPTZ NOT NULL,
    last_published               TIMESTAMPTZ NOT NULL,
    next_game_id                 TEXT,
    prob_before                  DOUBLE PRECISION,
    prob_after                   DOUBLE PRECISION,
    consensus_move               DOUBLE PRECISION,
    run_id                       TEXT NOT NULL,
    loaded_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, sports_date)
);
CREATE INDEX gold_news_sentiment_daily_sport ON serving.gold_news_sentiment_daily (sport, sports_date DESC);
