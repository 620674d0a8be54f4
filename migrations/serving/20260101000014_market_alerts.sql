-- Market alerts: arbitrage, steam and value signals the odds consumer sees
-- (docs/formulas.md#arbitrage, #steam, #value), one row per signal — kind,
-- event, market, side and line — with when it was first and last seen, so
-- a signal that persists across polls is one alert, not one per poll. The
-- upsert moves last_seen forward only, so redelivered messages leave the
-- row as it was. notified_at is set by the webhook notifier once it has
-- delivered the alert (or given up: notify_error says why).
CREATE TABLE serving.market_alerts (
    id                   BIGSERIAL PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('arbitrage', 'steam', 'value')),
    sport                TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    market               TEXT NOT NULL,
    -- NULL for arbitrage, which spans every side.
    outcome              TEXT CHECK (outcome IN ('home', 'away', 'draw', 'over', 'under')),
    -- The total or home spread; NULL for h2h.
    line                 DOUBLE PRECISION,
    -- Arbitrage: the margin; value: the edge; steam: the movers' mean move
    -- in implied probability (positive: the side shortened).
    magnitude            DOUBLE PRECISION NOT NULL,
    bookmakers           TEXT[] NOT NULL,
    detail               JSONB NOT NULL,
    first_seen           TIMESTAMPTZ NOT NULL,
    last_seen            TIMESTAMPTZ NOT NULL,
    times_seen           BIGINT NOT NULL DEFAULT 1 CHECK (times_seen > 0),
    notified_at          TIMESTAMPTZ,
    notify_error         TEXT,
    write_time           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT market_alerts_unique UNIQUE NULLS NOT DISTINCT (kind, event_id, market, outcome, line)
);
CREATE INDEX market_alerts_recent ON serving.market_alerts (last_seen DESC);
CREATE INDEX market_alerts_unnotified ON serving.market_alerts (id) WHERE notified_at IS NULL;
