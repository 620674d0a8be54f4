//! The `serving` tables the markets pages read, one named query per
//! question. The stream consumers write these tables (docs/data-model.md);
//! the pages only read them, so every query is a plain SELECT on indexed
//! keys: the event ids of one sports day.

use std::sync::Arc;

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

/// One bookmaker's latest price of one outcome. The names are shared:
/// a board's ten thousand prices name a hundred events, three markets,
/// a few outcomes and a few dozen bookmakers.
#[derive(Debug, Clone)]
pub struct PriceRow {
    pub event_id: Arc<str>,
    pub market: Arc<str>,
    pub bookmaker: Arc<str>,
    pub outcome: Arc<str>,
    pub point: Option<f64>,
    pub price_decimal: f64,
    pub price_american: Option<f64>,
    pub overround: f64,
    pub open_decimal: f64,
    pub open_point: Option<f64>,
}

/// Each event's prices as one row of columns, in the primary key's order:
/// a board reads ten thousand prices, and a row each cost more to decode
/// than the board took to build (`betflow bench web`, "markets,
/// uncached", 20,000-run seed: p99 67 ms at a row each, 51 ms with this
/// and the board's cheaper hashing). Aggregated per event through its
/// index (3.7 ms in Postgres), where a `GROUP BY` sorted the rows first
/// (14 ms).
const PRICES: &str = "SELECT e.event_id, p.markets, p.bookmakers, p.outcomes, p.points,
        p.decimals, p.americans, p.overrounds, p.open_decimals, p.open_points
    FROM unnest($1::text[]) AS e(event_id),
    LATERAL (
        SELECT string_agg(market, E'\\x1f') AS markets,
               string_agg(bookmaker, E'\\x1f') AS bookmakers,
               string_agg(outcome, E'\\x1f') AS outcomes, array_agg(point) AS points,
               array_agg(price_decimal) AS decimals, array_agg(price_american) AS americans,
               array_agg(overround) AS overrounds, array_agg(open_decimal) AS open_decimals,
               array_agg(open_point) AS open_points
        FROM serving.odds_latest l WHERE l.event_id = e.event_id
        HAVING count(*) > 0) AS p";

/// The one copy of each name a read has seen.
#[derive(Default)]
struct Names<'r>(foldhash::HashMap<&'r str, Arc<str>>);

impl<'r> Names<'r> {
    fn get(&mut self, name: &'r str) -> Arc<str> {
        self.0
            .entry(name)
            .or_insert_with(|| Arc::from(name))
            .clone()
    }
}

/// What separates the names in [`PRICES`]' text columns: a control
/// character, which validation refuses in every key from outside
/// (docs/quality.md#text-fields); the split columns are checked by count
/// below all the same.
const SEPARATOR: char = '\x1f';

/// Appends one event's prices (a row of [`PRICES`]) to `out`. The names
/// come as one text per column, read in place and split, rather than as
/// arrays of text, which would allocate a string per price before
/// [`Names`] could share them.
fn event_prices<'r>(
    row: &'r PgRow,
    names: &mut Names<'r>,
    out: &mut Vec<PriceRow>,
) -> sqlx::Result<()> {
    let event_id: &str = row.try_get(0)?;
    let event_id: Arc<str> = Arc::from(event_id);
    let split = |i: usize| -> sqlx::Result<Vec<&'r str>> {
        Ok(row.try_get::<&'r str, _>(i)?.split(SEPARATOR).collect())
    };
    let markets = split(1)?;
    let bookmakers = split(2)?;
    let outcomes = split(3)?;
    let points = float8s(row, 4)?;
    let decimals = float8s(row, 5)?;
    let americans = float8s(row, 6)?;
    let overrounds = float8s(row, 7)?;
    let open_decimals = float8s(row, 8)?;
    let open_points = float8s(row, 9)?;
    let required = |column: &[Option<f64>], i: usize, name: &str| {
        column[i].ok_or_else(|| {
            sqlx::Error::Decode(format!("a price of {event_id} has no {name}").into())
        })
    };
    // Every column is one `array_agg` over the same rows.
    let lengths = [
        bookmakers.len(),
        outcomes.len(),
        points.len(),
        decimals.len(),
        americans.len(),
        overrounds.len(),
        open_decimals.len(),
        open_points.len(),
    ];
    if lengths.iter().any(|&len| len != markets.len()) {
        return Err(sqlx::Error::Decode(
            format!("the prices of {event_id} came in columns of unequal length").into(),
        ));
    }
    out.reserve(markets.len());
    for i in 0..markets.len() {
        out.push(PriceRow {
            event_id: event_id.clone(),
            market: names.get(markets[i]),
            bookmaker: names.get(bookmakers[i]),
            outcome: names.get(outcomes[i]),
            point: points[i],
            price_decimal: required(&decimals, i, "decimal price")?,
            price_american: americans[i],
            overround: required(&overrounds, i, "overround")?,
            open_decimal: required(&open_decimals, i, "open price")?,
            open_point: open_points[i],
        });
    }
    Ok(())
}

/// A `float8[]` column of `row`, read from Postgres's binary array format
/// in place. sqlx decodes an array element by element through its generic
/// decoder: the board's six number columns were an eighth of building an
/// uncached board (`perf`, `betflow bench web`).
fn float8s(row: &PgRow, column: usize) -> sqlx::Result<Vec<Option<f64>>> {
    let value = row.try_get_raw(column)?;
    let bad = |why: &str| sqlx::Error::Decode(format!("price column {column}: {why}").into());
    if value.format() != sqlx::postgres::PgValueFormat::Binary {
        return Err(bad("not in the binary format"));
    }
    let bytes = value.as_bytes().map_err(sqlx::Error::Decode)?;
    parse_float8_array(bytes).ok_or_else(|| bad("not a one-dimensional float8 array"))
}

/// `float8` (type oid 701) arrays in `array_send`'s layout: dimensions,
/// a has-nulls flag, the element type, then per dimension its length and
/// lower bound, then each element as its length (-1 for NULL) and its
/// big-endian bytes. `None` for anything else.
fn parse_float8_array(bytes: &[u8]) -> Option<Vec<Option<f64>>> {
    const FLOAT8: u32 = 701;
    let mut rest = bytes;
    let dimensions = read_i32(&mut rest)?;
    let _has_nulls = read_i32(&mut rest)?;
    if read_i32(&mut rest)? as u32 != FLOAT8 {
        return None;
    }
    let len = match dimensions {
        0 => 0,
        1 => {
            let len = usize::try_from(read_i32(&mut rest)?).ok()?;
            let _lower_bound = read_i32(&mut rest)?;
            len
        }
        _ => return None,
    };
    let mut values = Vec::with_capacity(len.min(rest.len() / 4));
    for _ in 0..len {
        let value = match read_i32(&mut rest)? {
            -1 => None,
            8 => Some(f64::from_be_bytes(take::<8>(&mut rest)?)),
            _ => return None,
        };
        values.push(value);
    }
    rest.is_empty().then_some(values)
}

/// The next `N` bytes of `rest`, which moves past them.
fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

fn read_i32(rest: &mut &[u8]) -> Option<i32> {
    take::<4>(rest).map(i32::from_be_bytes)
}

/// The latest prices of `event_ids`, each event's rows together.
pub async fn prices(pool: &PgPool, event_ids: &[String]) -> sqlx::Result<Vec<PriceRow>> {
    let rows: Vec<PgRow> = sqlx::query(PRICES).bind(event_ids).fetch_all(pool).await?;
    let mut names = Names::default();
    let mut prices = Vec::new();
    for row in &rows {
        event_prices(row, &mut names, &mut prices)?;
    }
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

#[cfg(test)]
mod tests {
    use super::parse_float8_array;

    /// `array_send`'s layout of a one-dimensional `float8[]`.
    fn float8_array(values: &[Option<f64>]) -> Vec<u8> {
        let mut out = Vec::new();
        for header in [
            1,
            i32::from(values.contains(&None)),
            701,
            values.len() as i32,
            1,
        ] {
            out.extend(header.to_be_bytes());
        }
        for v in values {
            match v {
                Some(v) => {
                    out.extend(8_i32.to_be_bytes());
                    out.extend(v.to_be_bytes());
                }
                None => out.extend((-1_i32).to_be_bytes()),
            }
        }
        out
    }

    #[test]
    fn a_float8_array_reads_with_its_nulls_in_place() {
        let values = [Some(1.91), None, Some(-3.5)];
        assert_eq!(
            parse_float8_array(&float8_array(&values)),
            Some(values.to_vec())
        );
        // An empty array has no dimensions.
        let empty: Vec<u8> = [0_i32, 0, 701]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(parse_float8_array(&empty), Some(Vec::new()));
    }

    #[test]
    fn anything_but_a_whole_float8_array_is_refused() {
        let good = float8_array(&[Some(2.0), Some(1.8)]);
        // Cut short, or with bytes left over.
        assert_eq!(parse_float8_array(&good[..good.len() - 1]), None);
        assert_eq!(parse_float8_array(&[good.as_slice(), &[0]].concat()), None);
        // Another element type (int8, oid 20).
        let mut int8 = good.clone();
        int8[8..12].copy_from_slice(&20_i32.to_be_bytes());
        assert_eq!(parse_float8_array(&int8), None);
        // Two dimensions.
        let mut two = good;
        two[0..4].copy_from_slice(&2_i32.to_be_bytes());
        assert_eq!(parse_float8_array(&two), None);
    }
}
