//! The `serving` tables the markets pages read, one named query per
//! question. The stream consumers write these tables (docs/data-model.md);
//! the pages only read them, so every query is a plain SELECT on indexed
//! keys: the event ids of one sports day.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

/// An odds event of the day: who plays, when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub event_id: String,
    pub sport: String,
    pub home_team: String,
    pub away_team: String,
    pub commence_time: DateTime<Utc>,
}

const EVENTS: &str = "SELECT event_id, sport, home_team, away_team, commence_time
    FROM serving.odds_events
    WHERE commence_time >= $1 AND commence_time < $2 AND ($3::text IS NULL OR sport = $3)
    ORDER BY commence_time, sport, home_team";

pub async fn events(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sport: Option<&str>,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(EVENTS)
        .bind(from)
        .bind(to)
        .bind(sport)
        .fetch_all(pool)
        .await
}

const EVENT: &str = "SELECT event_id, sport, home_team, away_team, commence_time
    FROM serving.odds_events WHERE sport = $1 AND event_id = $2";

pub async fn event(pool: &PgPool, sport: &str, event_id: &str) -> sqlx::Result<Option<EventRow>> {
    sqlx::query_as(EVENT)
        .bind(sport)
        .bind(event_id)
        .fetch_optional(pool)
        .await
}

/// A game's live state, as the games consumer keeps it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GameRow {
    pub game_id: String,
    pub sport: String,
    pub status: String,
    pub period: i32,
    pub clock: Option<String>,
    pub home_team: Option<String>,
    pub away_team: Option<String>,
    pub home_score: i32,
    pub away_score: i32,
    pub start_time: Option<DateTime<Utc>>,
    pub status_history: Value,
    pub event_time: DateTime<Utc>,
    pub home_team_id: String,
    pub away_team_id: String,
}

const GAMES: &str = "SELECT game_id, sport, status, period, clock, home_team, away_team,
        home_score, away_score, start_time, status_history, event_time, home_team_id,
        away_team_id
    FROM serving.game_state
    WHERE start_time >= $1 AND start_time < $2 AND ($3::text IS NULL OR sport = $3)
    ORDER BY start_time, game_id";

pub async fn games(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sport: Option<&str>,
) -> sqlx::Result<Vec<GameRow>> {
    sqlx::query_as(GAMES)
        .bind(from)
        .bind(to)
        .bind(sport)
        .fetch_all(pool)
        .await
}

/// One bookmaker's latest price of one outcome.
#[derive(Debug, Clone)]
pub struct PriceRow {
    pub event_id: String,
    pub market: String,
    pub bookmaker: String,
    pub outcome: String,
    pub point: Option<f64>,
    pub price_decimal: f64,
    pub price_american: Option<f64>,
    pub overround: f64,
    pub open_decimal: f64,
    pub open_point: Option<f64>,
}

const PRICES: &str = "SELECT event_id, market, bookmaker, outcome, point, price_decimal,
        price_american, overround, open_decimal, open_point
    FROM serving.odds_latest WHERE event_id = ANY($1)";

/// Decoded by position: a board reads ten thousand prices, and a lookup of
/// each column by name was a measurable share of it.
impl<'r> sqlx::FromRow<'r, PgRow> for PriceRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(PriceRow {
            event_id: row.try_get(0)?,
            market: row.try_get(1)?,
            bookmaker: row.try_get(2)?,
            outcome: row.try_get(3)?,
            point: row.try_get(4)?,
            price_decimal: row.try_get(5)?,
            price_american: row.try_get(6)?,
            overround: row.try_get(7)?,
            open_decimal: row.try_get(8)?,
            open_point: row.try_get(9)?,
        })
    }
}

/// The latest prices of `event_ids`, each event's rows together.
pub async fn prices(pool: &PgPool, event_ids: &[String]) -> sqlx::Result<Vec<PriceRow>> {
    let mut prices: Vec<PriceRow> = sqlx::query_as(PRICES)
        .bind(event_ids)
        .fetch_all(pool)
        .await?;
    // In place, here, rather than a sort of text in Postgres.
    prices.sort_unstable_by(|a, b| a.event_id.cmp(&b.event_id));
    Ok(prices)
}

/// The mean implied probability of one outcome and line across bookmakers
/// in one time bucket of closed windows: a point of a movement line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MovePoint {
    pub event_id: String,
    pub market: String,
    pub outcome: String,
    pub point: Option<f64>,
    pub implied: f64,
}

/// Buckets of `$2` seconds from `$3`, so a day of 5-minute windows is a
/// few dozen points whatever the window size.
const MOVEMENT: &str = "SELECT event_id, market, outcome, latest_point AS point,
        date_bin(make_interval(secs => $2), window_start, $3) AS bucket,
        avg(implied_probability) AS implied
    FROM serving.odds_windows
    WHERE event_id = ANY($1) AND window_start >= $3
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5";

pub async fn movement(
    pool: &PgPool,
    event_ids: &[String],
    bucket_secs: f64,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<MovePoint>> {
    sqlx::query_as(MOVEMENT)
        .bind(event_ids)
        .bind(bucket_secs)
        .bind(since)
        .fetch_all(pool)
        .await
}

/// One bookmaker's move of one outcome in the newest closed window of its
/// event and market: what a steam move is judged on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WindowMove {
    pub event_id: String,
    pub market: String,
    pub outcome: String,
    pub open_decimal: Option<f64>,
    pub latest_decimal: f64,
}

const LATEST_WINDOW_MOVES: &str = "WITH newest AS (
        SELECT event_id, market, max(window_start) AS window_start
        FROM serving.odds_windows WHERE event_id = ANY($1) GROUP BY 1, 2)
    SELECT w.event_id, w.market, w.outcome, w.open_decimal, w.latest_decimal
    FROM serving.odds_windows w
    JOIN newest n USING (event_id, market, window_start)
    ORDER BY w.event_id";

pub async fn latest_window_moves(
    pool: &PgPool,
    event_ids: &[String],
) -> sqlx::Result<Vec<WindowMove>> {
    sqlx::query_as(LATEST_WINDOW_MOVES)
        .bind(event_ids)
        .fetch_all(pool)
        .await
}

/// One price of one bookmaker's outcome at the close of one window: the
/// game page's line per bookmaker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BookWindow {
    pub market: String,
    pub outcome: String,
    pub bookmaker: String,
    pub point: Option<f64>,
    pub window_end: DateTime<Utc>,
    pub latest_decimal: f64,
    pub no_vig_probability: f64,
}

const EVENT_WINDOWS: &str = "SELECT market, outcome, bookmaker, latest_point AS point,
        window_end, latest_decimal, no_vig_probability
    FROM serving.odds_windows WHERE event_id = $1
    ORDER BY market, outcome, bookmaker, window_end";

pub async fn event_windows(pool: &PgPool, event_id: &str) -> sqlx::Result<Vec<BookWindow>> {
    sqlx::query_as(EVENT_WINDOWS)
        .bind(event_id)
        .fetch_all(pool)
        .await
}

/// An arbitrage opportunity the odds consumer recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArbitrageRow {
    pub market: String,
    pub line: Option<f64>,
    pub margin: f64,
    pub legs: Value,
    pub event_time: DateTime<Utc>,
}

const EVENT_ARBITRAGE: &str = "SELECT market, line, margin, legs, event_time
    FROM serving.arbitrage_alerts WHERE event_id = $1
    ORDER BY event_time DESC LIMIT 200";

pub async fn event_arbitrage(pool: &PgPool, event_id: &str) -> sqlx::Result<Vec<ArbitrageRow>> {
    sqlx::query_as(EVENT_ARBITRAGE)
        .bind(event_id)
        .fetch_all(pool)
        .await
}

/// Venue conditions of a game, as the weather consumer keeps them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WeatherRow {
    pub temperature_c: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_cardinal: Option<String>,
    pub precipitation_mm: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub condition: Option<String>,
    pub event_time: DateTime<Utc>,
}

const GAME_WEATHER: &str = "SELECT temperature_c, wind_speed_ms, wind_cardinal,
        precipitation_mm, humidity_pct, condition, event_time
    FROM serving.weather_latest WHERE game_id = $1 ORDER BY event_time DESC LIMIT 1";

pub async fn game_weather(pool: &PgPool, game_id: &str) -> sqlx::Result<Option<WeatherRow>> {
    sqlx::query_as(GAME_WEATHER)
        .bind(game_id)
        .fetch_optional(pool)
        .await
}

/// A game's records and team statistics (`serving.game_state`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BoxRow {
    pub home_record: Option<String>,
    pub away_record: Option<String>,
    pub home_stats: Option<Value>,
    pub away_stats: Option<Value>,
}

const GAME_BOX: &str = "SELECT home_record, away_record, home_stats, away_stats
    FROM serving.game_state WHERE game_id = $1";

pub async fn game_box(pool: &PgPool, game_id: &str) -> sqlx::Result<Option<BoxRow>> {
    sqlx::query_as(GAME_BOX)
        .bind(game_id)
        .fetch_optional(pool)
        .await
}

/// One team's leader of one category (`serving.game_leaders`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaderRow {
    pub category: String,
    pub team_id: String,
    pub athlete: String,
    pub display_value: String,
}

const GAME_LEADERS: &str = "SELECT category, team_id, athlete, display_value
    FROM serving.game_leaders WHERE game_id = $1 ORDER BY category, team_id";

pub async fn game_leaders(pool: &PgPool, game_id: &str) -> sqlx::Result<Vec<LeaderRow>> {
    sqlx::query_as(GAME_LEADERS)
        .bind(game_id)
        .fetch_all(pool)
        .await
}

/// A team's news sentiment in one window.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SentimentRow {
    pub team_id: String,
    pub window_start: DateTime<Utc>,
    pub article_count: i64,
    pub mean_sentiment: f64,
}

const TEAM_SENTIMENT: &str = "SELECT team_id, window_start, article_count, mean_sentiment
    FROM serving.news_sentiment
    WHERE team_id = ANY($1) AND window_start >= $2
    ORDER BY window_start";

pub async fn team_sentiment(
    pool: &PgPool,
    team_ids: &[String],
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<SentimentRow>> {
    sqlx::query_as(TEAM_SENTIMENT)
        .bind(team_ids)
        .bind(since)
        .fetch_all(pool)
        .await
}
