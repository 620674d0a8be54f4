-- The best available price of each outcome across bookmakers: for every
-- (event, market, outcome, line), the bookmaker paying the most at its latest
-- snapshot, and how many bookmakers quote that line. A view over
-- serving.odds_latest, so it is never behind it and costs the hot upsert
-- path nothing; a line (point) is compared only with the same line.
CREATE VIEW serving.odds_best AS
SELECT DISTINCT ON (event_id, market, outcome, point)
    sport,
    event_id,
    market,
    outcome,
    point,
    bookmaker AS best_bookmaker,
    price_decimal AS best_decimal,
    price_american AS best_american,
    implied_probability AS best_implied_probability,
    count(*) OVER (PARTITION BY event_id, market, outcome, point) AS bookmakers,
    event_time,
    ingest_time,
    write_time
FROM serving.odds_latest
ORDER BY event_id, market, outcome, point, price_decimal DESC, bookmaker;
