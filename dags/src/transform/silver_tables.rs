//! Silver table declarations: cleaned, deduplicated, conformed records
//! (docs/data-model.md#silver-tables). Partitioned by sport and sports day,
//! so a re-run of a day replaces exactly that day.

use lakehouse::iceberg::table::{opt, req};
use lakehouse::iceberg::{Kind, TableDef};

/// One row per final game.
pub static GAMES: TableDef = TableDef {
    namespace: "silver",
    name: "games",
    columns: &[
        req("sport", Kind::Str, "league key (nfl, ncaaf, nba, nhl)"),
        req(
            "sports_date",
            Kind::Date,
            "the New York date the game is listed under",
        ),
        req("game_id", Kind::Str, "`{sport}:{espn event id}`"),
        opt("season", Kind::Int, "season year (ESPN)"),
        opt(
            "season_type",
            Kind::Int,
            "1 preseason, 2 regular, 3 postseason",
        ),
        opt("week", Kind::Int, "week number (football)"),
        req("start_time", Kind::Timestamp, "scheduled start, UTC"),
        opt("status", Kind::Str, "ESPN status name, e.g. STATUS_FINAL"),
        req("home_team_id", Kind::Str, "`{sport}:{espn team id}`"),
        req("away_team_id", Kind::Str, "`{sport}:{espn team id}`"),
        opt("home_team_name", Kind::Str, "display name"),
        opt("away_team_name", Kind::Str, "display name"),
        opt("home_score", Kind::Int, "final points"),
        opt("away_score", Kind::Int, "final points"),
        opt("total_points", Kind::Int, "home + away"),
        opt("home_margin", Kind::Int, "home − away"),
        req("periods", Kind::Int, "periods played, overtime included"),
        req("overtime", Kind::Bool, "more periods than regulation"),
        opt("venue_id", Kind::Str, "`espn:{venue id}`"),
        opt("venue_name", Kind::Str, "venue name"),
        opt("venue_indoor", Kind::Bool, "indoor venue (None: unknown)"),
        opt("attendance", Kind::Long, "attendance"),
        req("neutral_site", Kind::Bool, "neutral site"),
        req("run_id", Kind::Str, "BetFlow run that modelled the row"),
    ],
    partition_by: &["sport", "sports_date"],
    doc: "Final games, one row per game",
};

/// One row per (game, period): points of each side in that period.
pub static GAME_PERIODS: TableDef = TableDef {
    namespace: "silver",
    name: "game_periods",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req("sports_date", Kind::Date, "sports day of the game"),
        req("game_id", Kind::Str, "game"),
        req(
            "period",
            Kind::Int,
            "1-based period; > regulation is overtime",
        ),
        req("is_overtime", Kind::Bool, "an overtime period"),
        opt("home_points", Kind::Int, "home points in the period"),
        opt("away_points", Kind::Int, "away points in the period"),
    ],
    partition_by: &["sport", "sports_date"],
    doc: "Points per game and period",
};

/// One row per (event, bookmaker, market, outcome, snapshot time).
pub static ODDS: TableDef = TableDef {
    namespace: "silver",
    name: "odds",
    columns: &[
        req("sport", Kind::Str, "league key"),
        req(
            "sports_date",
            Kind::Date,
            "sports day the snapshots were taken for",
        ),
        req("event_id", Kind::Str, "The Odds API event id"),
        opt(
            "game_id",
            Kind::Str,
            "game (`{sport}:{espn id}`) as mapped when the day was modelled; null when its game was not in silver yet or none matches (gold maps every event again)",
        ),
        req("commence_time", Kind::Timestamp, "event start, UTC"),
        req("home_team", Kind::Str, "home team as The Odds API names it"),
        req("away_team", Kind::Str, "away team as The Odds API names it"),
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("market", Kind::Str, "h2h, spreads or totals"),
        req("outcome", Kind::Str, "home, away, draw, over or under"),
        req("price_american", Kind::Double, "American odds"),
        req("price_decimal", Kind::Double, "decimal odds"),
        opt("point", Kind::Double, "handicap or total line"),
        req("implied_prob", Kind::Double, "1 / decimal"),
        opt(
            "overround",
            Kind::Double,
            "Σ implied − 1 of the bookmaker's market at the snapshot",
        ),
        opt(
            "no_vig_prob",
            Kind::Double,
            "implied / Σ implied (proportional)",
        ),
        opt(
            "bookmaker_last_update",
            Kind::Timestamp,
            "bookmaker's update time",
        ),
        req("snapshot_time", Kind::Timestamp, "snapshot time, UTC"),
        req(
            "is_pre_game",
            Kind::Bool,
            "snapshot at or before commence_time",
        ),
        req(
            "is_opening",
            Kind::Bool,
            "first snapshot of (event, bookmaker, market, outcome)",
        ),
        req(
            "is_closing",
            Kind::Bool,
            "last pre-game snapshot of (event, bookmaker, market, outcome)",
        ),
        req("run_id", Kind::Str, "BetFlow run that modelled the row"),
    ],
    partition_by: &["sport", "sports_date"],
    doc: "Odds snapshots, one row per price",
};

/// One row per (venue, hour).
pub static WEATHER: TableDef = TableDef {
    namespace: "silver",
    name: "weather",
    columns: &[
        req(
            "sport",
            Kind::Str,
            "league whose games put the venue on the list",
        ),
        req("sports_date", Kind::Date, "sports day"),
        req("venue_id", Kind::Str, "`espn:{venue id}`"),
        req("observed_at", Kind::Timestamp, "hour, UTC"),
        opt("temperature_c", Kind::Double, "°C"),
        opt("wind_speed_ms", Kind::Double, "m/s"),
        opt("wind_deg", Kind::Double, "degrees"),
        opt("precipitation_mm", Kind::Double, "mm in the hour"),
        opt("humidity_pct", Kind::Double, "%"),
        opt(
            "condition",
            Kind::Str,
            "text condition when the source has one",
        ),
        req("run_id", Kind::Str, "BetFlow run that modelled the row"),
    ],
    partition_by: &["sport", "sports_date"],
    doc: "Hourly weather at outdoor venues",
};

/// One row per (article, team it names); an article naming no team has one
/// row with a null team, so unmatched news is kept and countable.
pub static NEWS: TableDef = TableDef {
    namespace: "silver",
    name: "news",
    columns: &[
        req("sport", Kind::Str, "league whose feeds listed the article"),
        req(
            "sports_date",
            Kind::Date,
            "New York day the article was published",
        ),
        req("item_id", Kind::Str, "hash of the url"),
        opt(
            "team_id",
            Kind::Str,
            "`{sport}:{espn team id}` named in the headline or summary; null: none",
        ),
        opt("team_name", Kind::Str, "display name of the team"),
        opt(
            "matched_on",
            Kind::Str,
            "the phrase that named the team (name, location or abbreviation)",
        ),
        req("published_at", Kind::Timestamp, "publication time, UTC"),
        req("source", Kind::Str, "outlet"),
        req("title", Kind::Str, "headline"),
        req("url", Kind::Str, "article link"),
        req(
            "sentiment",
            Kind::Double,
            "lexicon score of headline + summary in (-1, 1)",
        ),
        req("run_id", Kind::Str, "BetFlow run that modelled the row"),
    ],
    partition_by: &["sport", "sports_date"],
    doc: "News articles per team they name, with sentiment",
};
