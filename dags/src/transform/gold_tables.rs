//! Gold table declarations (docs/data-model.md#gold-tables): marts and
//! dimensions. Unpartitioned: gold is rebuilt whole from the silver history
//! every night, so a load replaces the table and a late-corrected silver
//! day can never leave a stale aggregate behind. The same declarations
//! drive the Postgres copies in `serving.gold_{name}`
//! (`migrations/…_gold_serving.sql`, [`crate::marts_serving`]).
//!
//! Probabilities are fractions (0.52); vig is in percent (4.5 = 4.5 %)
//! (docs/formulas.md#conventions).

use lakehouse::iceberg::table::{opt, req};
use lakehouse::iceberg::{Kind, TableDef};

/// One row per (game, bookmaker, market), over its pre-game snapshots.
pub static MARKET_EFFICIENCY: TableDef = TableDef {
    namespace: "gold",
    name: "market_efficiency",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("game_id", Kind::Str, "game"),
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("market", Kind::Str, "h2h, spreads or totals"),
        req("snapshots", Kind::Long, "pre-game snapshots of the market"),
        opt("avg_vig_pct", Kind::Double, "mean of Σ implied − 1 over the snapshots, percent"),
        opt("min_vig_pct", Kind::Double, "lowest snapshot vig, percent"),
        opt("max_vig_pct", Kind::Double, "highest snapshot vig, percent"),
        opt(
            "efficiency_rating",
            Kind::Str,
            "highly_efficient (avg vig ≤ 5), efficient (≤ 10), moderately_efficient (≤ 15), inefficient",
        ),
        req("favourite_flips", Kind::Long, "changes of the bookmaker's favourite between snapshots"),
        req("updates", Kind::Long, "snapshots where any price or point changed from the previous one"),
        opt("closing_favourite", Kind::Str, "favourite outcome at the last pre-game snapshot"),
        req("first_snapshot", Kind::Timestamp, "first pre-game snapshot"),
        req("last_snapshot", Kind::Timestamp, "last pre-game snapshot"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Vig, rating and activity of each bookmaker's market per game",
};

/// One row per (game, bookmaker, market, outcome).
pub static ODDS_MOVEMENT: TableDef = TableDef {
    namespace: "gold",
    name: "odds_movement",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("game_id", Kind::Str, "game"),
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("market", Kind::Str, "h2h, spreads or totals"),
        req("outcome", Kind::Str, "home, away, draw, over or under"),
        req("snapshots", Kind::Long, "all snapshots of the outcome"),
        req(
            "pre_game_snapshots",
            Kind::Long,
            "snapshots at or before commence time",
        ),
        req("opening_time", Kind::Timestamp, "first snapshot"),
        req("opening_decimal", Kind::Double, "opening decimal price"),
        req("opening_american", Kind::Double, "opening American price"),
        opt("opening_point", Kind::Double, "opening handicap or total"),
        opt(
            "closing_time",
            Kind::Timestamp,
            "last snapshot at or before commence time",
        ),
        opt("closing_decimal", Kind::Double, "closing decimal price"),
        opt("closing_american", Kind::Double, "closing American price"),
        opt("closing_point", Kind::Double, "closing handicap or total"),
        opt(
            "movement_decimal",
            Kind::Double,
            "closing − opening decimal",
        ),
        opt(
            "movement_american",
            Kind::Double,
            "closing − opening American",
        ),
        opt("movement_point", Kind::Double, "closing − opening point"),
        opt(
            "movement_prob",
            Kind::Double,
            "closing − opening implied probability",
        ),
        opt(
            "volatility",
            Kind::Double,
            "sample stdev of implied probability over the pre-game snapshots",
        ),
        opt(
            "biggest_move_time",
            Kind::Timestamp,
            "pre-game snapshot with the largest implied-probability change from the previous one",
        ),
        opt("biggest_move_prob", Kind::Double, "that change (signed)"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Opening and closing lines and their movement per outcome",
};

/// One row per (game, bookmaker, market, outcome) with an opening price.
pub static CLOSING_LINE_VALUE: TableDef = TableDef {
    namespace: "gold",
    name: "closing_line_value",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("game_id", Kind::Str, "game"),
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("market", Kind::Str, "h2h, spreads or totals"),
        req("outcome", Kind::Str, "home, away, draw, over or under"),
        req("opening_time", Kind::Timestamp, "first snapshot"),
        req("opening_decimal", Kind::Double, "opening decimal price"),
        opt(
            "opening_point",
            Kind::Double,
            "opening handicap or total; the close is taken at the same point",
        ),
        req(
            "consensus_bookmakers",
            Kind::Long,
            "bookmakers whose closing markets at that point formed the fair close (the anchor's, or all for the median)",
        ),
        opt(
            "close_fair_prob",
            Kind::Double,
            "fair closing probability: the anchor books' de-vigged close, else the median across bookmakers",
        ),
        opt("close_fair_decimal", Kind::Double, "1 / close_fair_prob"),
        opt(
            "clv",
            Kind::Double,
            "opening_decimal / close_fair_decimal − 1; positive beat the close",
        ),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
        // Appended (Iceberg columns are numbered in order): the fair lines
        // through `pricing`, docs/formulas.md#fair-line.
        opt(
            "close_fair_basis",
            Kind::Str,
            "what the fair close was formed from: the anchor books, or the median of n bookmakers",
        ),
        opt(
            "open_fair_prob",
            Kind::Double,
            "fair probability of the opening line at the opening point (every bookmaker's first market there)",
        ),
        opt(
            "opening_ev",
            Kind::Double,
            "opening_decimal × open_fair_prob − 1: the opening offer's expected return against the fair open",
        ),
    ],
    partition_by: &[],
    doc: "Closing-line value of each bookmaker's opening prices",
};

/// One row per (bookmaker, sport, season).
pub static BOOKMAKER_COMPARISON: TableDef = TableDef {
    namespace: "gold",
    name: "bookmaker_comparison",
    columns: &[
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("sport", Kind::Str, "league key"),
        opt("season", Kind::Int, "season of the games (null: game not in silver.games)"),
        req("games", Kind::Long, "games priced"),
        req("market_snapshots", Kind::Long, "pre-game (game, market, snapshot) quotes"),
        opt("avg_vig_pct", Kind::Double, "mean vig over those quotes, percent"),
        req("contested_prices", Kind::Long, "pre-game prices quoted by at least two bookmakers at the same time and point"),
        opt("best_price_share", Kind::Double, "share of contested prices where this bookmaker had the best (highest) decimal, ties included"),
        opt("mean_abs_deviation", Kind::Double, "mean |no-vig p − consensus p| over contested prices, probability"),
        req("opening_clv_n", Kind::Long, "opening prices with a closing consensus at their point"),
        opt("opening_clv_avg", Kind::Double, "mean closing-line value of those opening prices"),
        opt("opening_clv_positive_share", Kind::Double, "share of them that beat the close"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
        // Appended (Iceberg columns are numbered in order).
        opt("opening_ev_n", Kind::Long, "opening prices with a fair open at their point, before the start"),
        opt("opening_ev_avg", Kind::Double, "mean expected return of those opening prices against the fair open"),
        opt("opening_ev_positive_share", Kind::Double, "share of them priced above the fair open"),
    ],
    partition_by: &[],
    doc: "Bookmakers compared by vig, best prices, consensus deviation, CLV and opening EV",
};

/// One row per (team, season, side).
pub static TEAM_TRENDS: TableDef = TableDef {
    namespace: "gold",
    name: "team_trends",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("team_id", Kind::Str, "team"),
        opt(
            "team_name",
            Kind::Str,
            "name in the team's latest game of the split",
        ),
        opt("season", Kind::Int, "season"),
        req("side", Kind::Str, "home or away"),
        req("games", Kind::Long, "final games"),
        req("wins", Kind::Long, "games won"),
        req("losses", Kind::Long, "games lost"),
        req("ties", Kind::Long, "games tied"),
        req(
            "win_rate",
            Kind::Double,
            "wins / games (ties count as games)",
        ),
        req("avg_margin", Kind::Double, "mean points for − against"),
        req("avg_points_for", Kind::Double, "mean points scored"),
        req("avg_points_against", Kind::Double, "mean points conceded"),
        req(
            "last5_win_rate",
            Kind::Double,
            "win rate over the split's latest 5 games (fewer if fewer played)",
        ),
        req(
            "last10_win_rate",
            Kind::Double,
            "win rate over the split's latest 10 games",
        ),
        req(
            "ats_games",
            Kind::Long,
            "games with a closing consensus spread",
        ),
        req(
            "covers",
            Kind::Long,
            "margin + the team's closing spread > 0",
        ),
        req("ats_pushes", Kind::Long, "margin + spread = 0"),
        opt(
            "cover_rate",
            Kind::Double,
            "covers / (ats_games − ats_pushes)",
        ),
        req(
            "ou_games",
            Kind::Long,
            "games with a closing consensus total",
        ),
        req("overs", Kind::Long, "total points > closing total"),
        req("ou_pushes", Kind::Long, "total points = closing total"),
        opt("over_rate", Kind::Double, "overs / (ou_games − ou_pushes)"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Team results, against the spread and over/under, by season and side",
};

/// One row per (sport, team, period).
pub static SCORING_PATTERNS: TableDef = TableDef {
    namespace: "gold",
    name: "scoring_patterns",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("team_id", Kind::Str, "team"),
        req(
            "period",
            Kind::Int,
            "1-based period; beyond regulation is overtime",
        ),
        req("is_overtime", Kind::Bool, "an overtime period"),
        req(
            "games",
            Kind::Long,
            "games in which the team played the period",
        ),
        req("points", Kind::Long, "points the team scored in the period"),
        req("avg_points", Kind::Double, "points / games"),
        opt(
            "share_of_points",
            Kind::Double,
            "period points / all the team's period points (sums to 1 per team)",
        ),
        req(
            "league_avg_points",
            Kind::Double,
            "mean points per team and game in this period, whole sport",
        ),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Points by period per team beside the league average",
};

/// One row per (sport, wind bucket), plus one `all` row per sport.
pub static WEATHER_IMPACT: TableDef = TableDef {
    namespace: "gold",
    name: "weather_impact",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req(
            "wind_bucket",
            Kind::Str,
            "lt_5, 5_to_10, gt_10 (m/s at kickoff) or all",
        ),
        req(
            "games",
            Kind::Long,
            "outdoor final games with weather at the kickoff hour",
        ),
        req("avg_total_points", Kind::Double, "mean total points"),
        opt("avg_wind_ms", Kind::Double, "mean wind at kickoff, m/s"),
        opt(
            "avg_temperature_c",
            Kind::Double,
            "mean temperature at kickoff, °C",
        ),
        req(
            "ou_games",
            Kind::Long,
            "games with a closing consensus total",
        ),
        req("overs", Kind::Long, "total points > closing total"),
        req("unders", Kind::Long, "total points < closing total"),
        opt("over_rate", Kind::Double, "overs / (overs + unders)"),
        opt(
            "avg_total_vs_close",
            Kind::Double,
            "mean total points − closing total",
        ),
        opt(
            "temp_total_r",
            Kind::Double,
            "Pearson r, temperature vs total points",
        ),
        req("temp_total_n", Kind::Long, "pairs behind temp_total_r"),
        opt(
            "wind_total_r",
            Kind::Double,
            "Pearson r, wind vs total points",
        ),
        req("wind_total_n", Kind::Long, "pairs behind wind_total_r"),
        opt(
            "precip_total_r",
            Kind::Double,
            "Pearson r, precipitation vs total points",
        ),
        req("precip_total_n", Kind::Long, "pairs behind precip_total_r"),
        opt(
            "temp_vs_close_r",
            Kind::Double,
            "Pearson r, temperature vs total − closing total",
        ),
        req(
            "temp_vs_close_n",
            Kind::Long,
            "pairs behind temp_vs_close_r",
        ),
        opt(
            "wind_vs_close_r",
            Kind::Double,
            "Pearson r, wind vs total − closing total",
        ),
        req(
            "wind_vs_close_n",
            Kind::Long,
            "pairs behind wind_vs_close_r",
        ),
        opt(
            "precip_vs_close_r",
            Kind::Double,
            "Pearson r, precipitation vs total − closing total",
        ),
        req(
            "precip_vs_close_n",
            Kind::Long,
            "pairs behind precip_vs_close_r",
        ),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Totals of outdoor games by wind at kickoff, with weather correlations",
};

/// One row per (team, sports day) with news naming the team.
pub static NEWS_SENTIMENT_DAILY: TableDef = TableDef {
    namespace: "gold",
    name: "news_sentiment_daily",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("team_id", Kind::Str, "`{sport}:{espn team id}`"),
        opt("team_name", Kind::Str, "display name"),
        req(
            "sports_date",
            Kind::Date,
            "New York day the articles were published",
        ),
        req("articles", Kind::Long, "distinct articles naming the team"),
        req("positive_articles", Kind::Long, "articles scoring above 0"),
        req("negative_articles", Kind::Long, "articles scoring below 0"),
        req(
            "mean_sentiment",
            Kind::Double,
            "mean lexicon sentiment of the articles, in (-1, 1)",
        ),
        req(
            "first_published",
            Kind::Timestamp,
            "the day's first article",
        ),
        req("last_published", Kind::Timestamp, "the day's last article"),
        opt(
            "next_game_id",
            Kind::Str,
            "the team's first priced game starting after the first article",
        ),
        opt(
            "prob_before",
            Kind::Double,
            "consensus no-vig win probability at the last snapshot at or before the first article",
        ),
        opt(
            "prob_after",
            Kind::Double,
            "consensus no-vig win probability at the last pre-game snapshot within 24 h after it",
        ),
        opt("consensus_move", Kind::Double, "prob_after − prob_before"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "News volume and sentiment per team and day, beside the market's move after it",
};

/// One row per team id.
pub static DIM_TEAMS: TableDef = TableDef {
    namespace: "gold",
    name: "dim_teams",
    columns: &[
        req("team_id", Kind::Str, "`{sport}:{espn team id}`"),
        req("sport", Kind::Str, "league key"),
        opt("name", Kind::Str, "display name in the team's latest game"),
        opt(
            "abbreviation",
            Kind::Str,
            "short name (null: silver does not carry it yet)",
        ),
        opt(
            "aliases",
            Kind::Str,
            "every display name seen, sorted, `; `-separated",
        ),
        req("games", Kind::Long, "final games played"),
        req("first_seen", Kind::Date, "sports date of the first game"),
        req("last_seen", Kind::Date, "sports date of the latest game"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Teams",
};

/// One row per venue id.
pub static DIM_VENUES: TableDef = TableDef {
    namespace: "gold",
    name: "dim_venues",
    columns: &[
        req("venue_id", Kind::Str, "`espn:{venue id}`"),
        opt("name", Kind::Str, "name in the venue's latest game"),
        opt("indoor", Kind::Bool, "latest known indoor flag"),
        req(
            "sports",
            Kind::Str,
            "leagues that played there, sorted, `,`-separated",
        ),
        opt("lat", Kind::Double, "latitude (seed data)"),
        opt("lon", Kind::Double, "longitude (seed data)"),
        req("games", Kind::Long, "final games played"),
        req("first_seen", Kind::Date, "sports date of the first game"),
        req("last_seen", Kind::Date, "sports date of the latest game"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Venues",
};

/// One row per bookmaker key.
pub static DIM_BOOKMAKERS: TableDef = TableDef {
    namespace: "gold",
    name: "dim_bookmakers",
    columns: &[
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("sports", Kind::Str, "leagues priced, sorted, `,`-separated"),
        req(
            "markets",
            Kind::Str,
            "markets priced, sorted, `,`-separated",
        ),
        req(
            "events",
            Kind::Long,
            "Odds API events priced, mapped or not",
        ),
        req("games", Kind::Long, "mapped games priced"),
        req("prices", Kind::Long, "price rows"),
        req("first_seen", Kind::Timestamp, "first snapshot"),
        req("last_seen", Kind::Timestamp, "latest snapshot"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Bookmakers",
};

/// One row per (market, outcome); static.
pub static DIM_MARKETS: TableDef = TableDef {
    namespace: "gold",
    name: "dim_markets",
    columns: &[
        req("market", Kind::Str, "h2h, spreads or totals"),
        req("outcome", Kind::Str, "home, away, draw, over or under"),
        req("market_name", Kind::Str, "display name of the market"),
        req(
            "has_point",
            Kind::Bool,
            "prices come with a handicap or total",
        ),
        req(
            "description",
            Kind::Str,
            "what a bet on the outcome wins on",
        ),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Markets and their outcomes",
};

/// One row per calendar day from the earliest to the latest sports date.
pub static DIM_DATES: TableDef = TableDef {
    namespace: "gold",
    name: "dim_dates",
    columns: &[
        req("date", Kind::Date, "day"),
        req("year", Kind::Int, "year"),
        req("month", Kind::Int, "month 1–12"),
        req("day", Kind::Int, "day of month"),
        req("iso_weekday", Kind::Int, "1 Monday … 7 Sunday"),
        req("iso_week", Kind::Int, "ISO week number"),
        req("is_weekend", Kind::Bool, "Saturday or Sunday"),
        req("run_id", Kind::Str, "BetFlow run that built the row"),
    ],
    partition_by: &[],
    doc: "Calendar",
};

/// Every gold table, in the order `build_all` returns them.
pub static ALL: &[&TableDef] = &[
    &MARKET_EFFICIENCY,
    &ODDS_MOVEMENT,
    &CLOSING_LINE_VALUE,
    &BOOKMAKER_COMPARISON,
    &TEAM_TRENDS,
    &SCORING_PATTERNS,
    &WEATHER_IMPACT,
    &NEWS_SENTIMENT_DAILY,
    &DIM_TEAMS,
    &DIM_VENUES,
    &DIM_BOOKMAKERS,
    &DIM_MARKETS,
    &DIM_DATES,
];
