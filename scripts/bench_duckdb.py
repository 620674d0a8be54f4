#!/usr/bin/env python3
"""The DuckDB side of `betflow bench batch`.

Loads the bronze odds and games the bench exported as Parquet into an
in-memory DuckDB (not timed: our side starts from in-memory bronze too),
then times, statement by statement, the same transforms the bench times on
its side:

* silver odds: dedupe, event -> game mapping, implied probability,
  overround, no-vig probability, opening and closing flags (closing = the
  last pre-game snapshot), computed per sports day like the nightly DAG
  (the day is in every partition) but in one statement over the season,
  which is how a DuckDB user would write it;
* gold market_efficiency and gold odds_movement, each from silver on its
  own, with the shared odds preparation (dedupe per game, per-snapshot vig)
  inlined in each, as the bench's standalone mart functions do.

Prints one JSON object: version, threads, load and per-step seconds and
rows, peak RSS, and checks (row counts, flag counts, sums) that the bench
compares with its own to show both engines built the same tables.

Run by the bench; by hand: bench_duckdb.py DIR [--threads N], where DIR
holds bronze_odds.parquet and bronze_games.parquet. Exits 3 when duckdb
cannot be imported (pip install duckdb).
"""

import argparse
import json
import os
import resource
import sys
import time

RUN_ID = "bench_batch"

# One candidate game per (day, sport, home, away): the day's latest load of
# each game, finals only, earliest start first (silver.games' order).
CANDIDATES = """
CREATE OR REPLACE TABLE candidates AS
WITH latest AS (
    SELECT * FROM bronze_games
    QUALIFY row_number() OVER (PARTITION BY sports_date, sport, game_id ORDER BY ingested_at DESC) = 1
)
SELECT sports_date, sport, home_team_name, away_team_name,
       sport || ':' || game_id AS candidate_game_id,
       start_time AS candidate_start
FROM latest
WHERE state = 'post'
QUALIFY row_number() OVER (PARTITION BY sports_date, sport, home_team_name, away_team_name
                           ORDER BY start_time, game_id) = 1
"""

SILVER_ODDS = f"""
CREATE OR REPLACE TABLE silver_odds AS
WITH dedup AS (
    SELECT * FROM bronze_odds
    QUALIFY row_number() OVER (
        PARTITION BY sports_date, event_id, bookmaker, market, outcome, snapshot_time
        ORDER BY ingested_at DESC) = 1
),
mapped AS (
    SELECT o.*,
           CASE WHEN abs(epoch_us(o.commence_time) - epoch_us(c.candidate_start)) <= 43200000000  -- 12 h in µs (event_games::TOLERANCE_HOURS)
                THEN c.candidate_game_id END AS game_id,
           1.0 / o.price_decimal AS implied_prob,
           o.snapshot_time <= o.commence_time AS is_pre_game
    FROM dedup o
    LEFT JOIN candidates c
      ON c.sports_date = o.sports_date AND c.sport = o.sport
     AND c.home_team_name = o.home_team AND c.away_team_name = o.away_team
)
SELECT sport, sports_date, event_id, game_id, commence_time, home_team, away_team,
       bookmaker, market, outcome, price_american, price_decimal, point, implied_prob,
       sum(implied_prob) OVER snap - 1 AS overround,
       implied_prob / sum(implied_prob) OVER snap AS no_vig_prob,
       last_update AS bookmaker_last_update, snapshot_time, is_pre_game,
       snapshot_time = min(snapshot_time) OVER line AS is_opening,
       coalesce(snapshot_time = max(CASE WHEN is_pre_game THEN snapshot_time END) OVER line, false)
           AS is_closing,
       '{RUN_ID}' AS run_id
FROM mapped
WINDOW snap AS (PARTITION BY sports_date, event_id, bookmaker, market, snapshot_time),
       line AS (PARTITION BY sports_date, event_id, bookmaker, market, outcome)
ORDER BY sports_date, event_id, bookmaker, market, outcome, snapshot_time
"""

# gold's odds preparation: mapped rows, one per (game, bookmaker, market,
# outcome, snapshot) (lowest event id), vig of the bookmaker's market at the
# snapshot when it has at least two outcomes.
PRICED = """
priced AS (
    SELECT *,
           snapshot_time <= commence_time AS pre_game,
           CASE WHEN book_outcomes >= 2 THEN book_sum - 1 END AS vig
    FROM (
        SELECT *,
               sum(implied_prob) OVER s AS book_sum,
               count(implied_prob) OVER s AS book_outcomes
        FROM (
            SELECT * FROM silver_odds
            WHERE game_id IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY sport, game_id, bookmaker, market, outcome, snapshot_time
                ORDER BY event_id) = 1
        )
        WINDOW s AS (PARTITION BY game_id, bookmaker, market, snapshot_time)
    )
)
"""

MARKET_EFFICIENCY = f"""
CREATE OR REPLACE TABLE market_efficiency AS
WITH {PRICED},
pre AS (
    SELECT *,
           lag(price_decimal) OVER series AS prev_price,
           lag(point) OVER series AS prev_point,
           max(implied_prob) OVER snap AS top_prob
    FROM priced
    WHERE pre_game
    WINDOW series AS (PARTITION BY sport, game_id, bookmaker, market, outcome ORDER BY snapshot_time),
           snap AS (PARTITION BY sport, game_id, bookmaker, market, snapshot_time)
),
snaps AS (
    SELECT sport, game_id, bookmaker, market, snapshot_time,
           min(vig) AS vig,
           bool_or(prev_price IS NOT NULL
                   AND (price_decimal <> prev_price OR point IS DISTINCT FROM prev_point)) AS changed,
           CASE WHEN count(*) FILTER (WHERE implied_prob = top_prob) = 1
                THEN min(outcome) FILTER (WHERE implied_prob = top_prob) END AS favourite
    FROM pre
    GROUP BY sport, game_id, bookmaker, market, snapshot_time
),
flips AS (
    SELECT *,
           lag(favourite IGNORE NULLS) OVER (
               PARTITION BY sport, game_id, bookmaker, market ORDER BY snapshot_time) AS prev_favourite
    FROM snaps
),
agg AS (
    SELECT sport, game_id, bookmaker, market,
           count(*) AS snapshots,
           avg(vig) * 100 AS avg_vig_pct,
           min(vig) * 100 AS min_vig_pct,
           max(vig) * 100 AS max_vig_pct,
           count(*) FILTER (WHERE favourite <> prev_favourite) AS favourite_flips,
           count(*) FILTER (WHERE changed) AS updates,
           arg_max_null(favourite, snapshot_time) AS closing_favourite,
           min(snapshot_time) AS first_snapshot,
           max(snapshot_time) AS last_snapshot
    FROM flips
    GROUP BY sport, game_id, bookmaker, market
)
SELECT sport, game_id, bookmaker, market, snapshots, avg_vig_pct, min_vig_pct, max_vig_pct,
       CASE WHEN avg_vig_pct IS NULL THEN NULL
            WHEN avg_vig_pct <= 5 THEN 'highly_efficient'
            WHEN avg_vig_pct <= 10 THEN 'efficient'
            WHEN avg_vig_pct <= 15 THEN 'moderately_efficient'
            ELSE 'inefficient' END AS efficiency_rating,
       favourite_flips, updates, closing_favourite, first_snapshot, last_snapshot,
       '{RUN_ID}' AS run_id
FROM agg
ORDER BY sport, game_id, bookmaker, market
"""

OUTCOME = "sport, game_id, bookmaker, market, outcome"

ODDS_MOVEMENT = f"""
CREATE OR REPLACE TABLE odds_movement AS
WITH {PRICED},
marked AS (
    SELECT *,
           snapshot_time = min(snapshot_time) OVER series AS is_open,
           coalesce(snapshot_time = max(CASE WHEN pre_game THEN snapshot_time END) OVER series, false)
               AS is_close
    FROM priced
    WINDOW series AS (PARTITION BY {OUTCOME})
),
lines AS (
    SELECT {OUTCOME},
           count(*) AS snapshots,
           count(*) FILTER (WHERE pre_game) AS pre_game_snapshots,
           any_value(snapshot_time) FILTER (WHERE is_open) AS opening_time,
           any_value(price_decimal) FILTER (WHERE is_open) AS opening_decimal,
           any_value(price_american) FILTER (WHERE is_open) AS opening_american,
           any_value(point) FILTER (WHERE is_open) AS opening_point,
           any_value(implied_prob) FILTER (WHERE is_open) AS opening_prob,
           any_value(snapshot_time) FILTER (WHERE is_close) AS closing_time,
           any_value(price_decimal) FILTER (WHERE is_close) AS closing_decimal,
           any_value(price_american) FILTER (WHERE is_close) AS closing_american,
           any_value(point) FILTER (WHERE is_close) AS closing_point,
           any_value(implied_prob) FILTER (WHERE is_close) AS closing_prob
    FROM marked
    GROUP BY {OUTCOME}
),
moved AS (
    SELECT *, abs(prob_move) AS abs_move
    FROM (
        SELECT {OUTCOME}, snapshot_time, implied_prob,
               implied_prob - lag(implied_prob) OVER (PARTITION BY {OUTCOME} ORDER BY snapshot_time)
                   AS prob_move
        FROM priced
        WHERE pre_game
    )
),
moves AS (
    SELECT {OUTCOME},
           stddev_samp(implied_prob) AS volatility,
           max(abs_move) AS max_abs_move,
           -- the largest move, the earliest on a tie
           arg_max(snapshot_time, (abs_move, -epoch_us(snapshot_time)))
               FILTER (WHERE abs_move IS NOT NULL) AS biggest_move_time,
           arg_max(prob_move, (abs_move, -epoch_us(snapshot_time)))
               FILTER (WHERE abs_move IS NOT NULL) AS biggest_move_prob
    FROM moved
    GROUP BY {OUTCOME}
)
SELECT l.sport, l.game_id, l.bookmaker, l.market, l.outcome,
       l.snapshots, l.pre_game_snapshots,
       l.opening_time, l.opening_decimal, l.opening_american, l.opening_point,
       l.closing_time, l.closing_decimal, l.closing_american, l.closing_point,
       l.closing_decimal - l.opening_decimal AS movement_decimal,
       l.closing_american - l.opening_american AS movement_american,
       l.closing_point - l.opening_point AS movement_point,
       l.closing_prob - l.opening_prob AS movement_prob,
       m.volatility,
       CASE WHEN m.max_abs_move > 0 THEN m.biggest_move_time END AS biggest_move_time,
       CASE WHEN m.max_abs_move > 0 THEN m.biggest_move_prob END AS biggest_move_prob,
       '{RUN_ID}' AS run_id
FROM lines l
LEFT JOIN moves m USING ({OUTCOME})
ORDER BY l.sport, l.game_id, l.bookmaker, l.market, l.outcome
"""

STEPS = [
    ("silver_odds", [CANDIDATES, SILVER_ODDS], "silver_odds"),
    ("market_efficiency", [MARKET_EFFICIENCY], "market_efficiency"),
    ("odds_movement", [ODDS_MOVEMENT], "odds_movement"),
]

# The same figures the bench computes on its side (nulls ignored in sums).
CHECKS = {
    "silver_odds": """SELECT count(*), count(game_id), count(*) FILTER (WHERE is_opening),
                             count(*) FILTER (WHERE is_closing), sum(no_vig_prob)
                      FROM silver_odds""",
    "market_efficiency": """SELECT count(*), sum(snapshots), sum(updates), sum(favourite_flips),
                                   sum(avg_vig_pct), count(closing_favourite)
                            FROM market_efficiency""",
    "odds_movement": """SELECT count(*), sum(pre_game_snapshots), count(closing_time),
                               sum(movement_prob), sum(volatility), count(biggest_move_time)
                        FROM odds_movement""",
}
CHECK_FIELDS = {
    "silver_odds": ["rows", "mapped", "opening", "closing", "no_vig_prob"],
    "market_efficiency": [
        "rows",
        "snapshots",
        "updates",
        "favourite_flips",
        "avg_vig_pct",
        "closing_favourite",
    ],
    "odds_movement": [
        "rows",
        "pre_game_snapshots",
        "closing_time",
        "movement_prob",
        "volatility",
        "biggest_move_time",
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="directory with bronze_odds.parquet and bronze_games.parquet")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: all cores)")
    args = parser.parse_args()
    try:
        import duckdb
    except ImportError as e:
        print(f"{sys.executable}: {e}; pip install duckdb", file=sys.stderr)
        return 3

    con = duckdb.connect()
    if args.threads > 0:
        con.execute(f"SET threads = {args.threads}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]

    started = time.perf_counter()
    for table in ("bronze_odds", "bronze_games"):
        path = os.path.join(args.dir, f"{table}.parquet").replace("'", "''")
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
    load_secs = time.perf_counter() - started

    steps = {}
    for name, statements, table in STEPS:
        started = time.perf_counter()
        for sql in statements:
            con.execute(sql)
        seconds = time.perf_counter() - started
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        steps[name] = {"seconds": seconds, "rows": rows}

    checks = {}
    for table, sql in CHECKS.items():
        values = con.execute(sql).fetchone()
        # Null sums (no rows) as 0, as the bench reports them; the bench
        # compares every value as a number.
        checks[table] = {
            field: (v if v is not None else 0) for field, v in zip(CHECK_FIELDS[table], values)
        }

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(
        json.dumps(
            {
                "version": duckdb.__version__,
                "threads": threads,
                "load_secs": load_secs,
                "steps": steps,
                "total_secs": sum(s["seconds"] for s in steps.values()),
                "checks": checks,
                "peak_rss_bytes": peak,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
