-- serving.odds_latest is rewritten thousands of times a second, one row per
-- (event, market, bookmaker, outcome). An index on event_time, which every
-- update changes, ruled out heap-only (HOT) updates: each update added an
-- entry to both indexes, dead entries piled up faster than autovacuum cleared
-- them, and upserts slowed down the longer a stream ran. The table holds the
-- current line of each key only (thousands of rows), so per-sport reads are
-- served by an index on sport, which never changes; free space left in each
-- page lets an update stay in its page, and vacuum runs on a fixed number of
-- dead rows rather than a fraction of a small table.
DROP INDEX IF EXISTS serving.odds_latest_sport_time;
CREATE INDEX odds_latest_sport ON serving.odds_latest (sport);
ALTER TABLE serving.odds_latest SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_cost_delay = 0
);
