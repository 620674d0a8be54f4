//! Rows of the odds serving tables, field for column (minus `write_time`,
//! which the database sets), so the sink is a plain upsert.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::market::{BookMarket, MarketBest};
use super::signals::Signal;
use super::window::OddsWindowOutput;
use super::{OddsKey, PROCESSOR};
use sources::odds_math::decimal_to_american;
use streaming::window::Closed;

/// `serving.odds_latest`. `open_*` is this snapshot; the upsert keeps the
/// earliest one, which makes it the opening line of the key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OddsLatestRow {
    pub sport: String,
    pub event_id: String,
    pub market: String,
    pub bookmaker: String,
    pub outcome: &'static str,
    pub point: Option<f64>,
    pub price_decimal: f64,
    pub price_american: Option<f64>,
    pub implied_probability: f64,
    pub no_vig_probability: f64,
    pub overround: f64,
    pub open_decimal: f64,
    pub open_point: Option<f64>,
    pub open_time: DateTime<Utc>,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

/// One row per outcome of each bookmaker market.
pub fn latest_rows(
    sport: &str,
    markets: &[BookMarket],
    ingest_time: DateTime<Utc>,
) -> Vec<OddsLatestRow> {
    let mut rows: Vec<OddsLatestRow> = Vec::new();
    for m in markets {
        let overround: f64 = m.overround();
        for (q, fair) in m.quotes.iter().zip(m.no_vig()) {
            rows.push(OddsLatestRow {
                sport: sport.to_string(),
                event_id: m.event_id.clone(),
                market: m.market.clone(),
                bookmaker: m.bookmaker.clone(),
                outcome: q.side.as_str(),
                point: q.point,
                price_decimal: q.decimal,
                price_american: decimal_to_american(q.decimal),
                implied_probability: q.implied(),
                no_vig_probability: fair,
                overround,
                open_decimal: q.decimal,
                open_point: q.point,
                open_time: m.time,
                event_time: m.time,
                ingest_time,
            });
        }
    }
    rows
}

/// `serving.odds_windows`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OddsWindowRow {
    pub processor: &'static str,
    pub key: String,
    pub window_start: DateTime<Utc>,
    pub outcome: &'static str,
    pub window_end: DateTime<Utc>,
    pub sport: String,
    pub event_id: String,
    pub market: String,
    pub bookmaker: String,
    pub events: u64,
    pub snapshots: u64,
    pub open_time: DateTime<Utc>,
    pub latest_time: DateTime<Utc>,
    pub open_decimal: Option<f64>,
    pub open_point: Option<f64>,
    pub latest_decimal: f64,
    pub latest_point: Option<f64>,
    pub move_decimal: Option<f64>,
    pub move_american: Option<f64>,
    pub move_point: Option<f64>,
    pub implied_probability: f64,
    pub no_vig_probability: f64,
    pub volatility: Option<f64>,
    pub outcome_snapshots: u64,
    pub overround_latest: f64,
    pub overround_avg: f64,
    pub overround_min: f64,
    pub overround_max: f64,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

/// One row per outcome of a closed window.
pub fn window_rows(sport: &str, closed: &Closed<OddsKey, OddsWindowOutput>) -> Vec<OddsWindowRow> {
    let out: &OddsWindowOutput = &closed.output;
    out.outcomes
        .iter()
        .map(|o| OddsWindowRow {
            processor: PROCESSOR,
            key: closed.key.as_key(),
            window_start: closed.window.start,
            outcome: o.side.as_str(),
            window_end: closed.window.end,
            sport: sport.to_string(),
            event_id: closed.key.event_id.clone(),
            market: closed.key.market.clone(),
            bookmaker: closed.key.bookmaker.clone(),
            events: closed.events,
            snapshots: out.snapshots,
            open_time: out.open_time,
            latest_time: out.latest_time,
            open_decimal: o.open_decimal,
            open_point: o.open_point,
            latest_decimal: o.latest_decimal,
            latest_point: o.latest_point,
            move_decimal: o.move_decimal,
            move_american: o.move_american,
            move_point: o.move_point,
            implied_probability: o.implied_probability,
            no_vig_probability: o.no_vig_probability,
            volatility: o.volatility,
            outcome_snapshots: o.snapshots,
            overround_latest: out.overround_latest,
            overround_avg: out.overround_avg,
            overround_min: out.overround_min,
            overround_max: out.overround_max,
            event_time: closed.max_event_time,
            ingest_time: closed.max_ingest_time,
        })
        .collect()
}

/// One leg of an arbitrage, in `serving.arbitrage_alerts.legs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArbitrageLeg {
    pub side: &'static str,
    pub decimal: f64,
    pub point: Option<f64>,
    pub bookmakers: Vec<String>,
    pub stake_share: f64,
}

/// `serving.arbitrage_alerts` (its `id` is generated).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArbitrageAlertRow {
    pub sport: String,
    pub event_id: String,
    pub market: String,
    /// The line in points; `None` for h2h.
    pub line: Option<f64>,
    pub margin: f64,
    pub legs: Vec<ArbitrageLeg>,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

/// `serving.market_alerts` (its `id`, `times_seen`, `notified_at` and
/// `notify_error` are the table's own).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketAlertRow {
    pub kind: &'static str,
    pub sport: String,
    pub event_id: String,
    pub market: String,
    pub outcome: Option<&'static str>,
    pub line: Option<f64>,
    pub magnitude: f64,
    pub bookmakers: Vec<String>,
    pub detail: serde_json::Value,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl MarketAlertRow {
    /// The alert of one arbitrage: every side at its best price.
    pub fn arbitrage(a: &ArbitrageAlertRow) -> Self {
        let mut books: Vec<String> = a.legs.iter().flat_map(|l| l.bookmakers.clone()).collect();
        books.sort();
        books.dedup();
        MarketAlertRow {
            kind: "arbitrage",
            sport: a.sport.clone(),
            event_id: a.event_id.clone(),
            market: a.market.clone(),
            outcome: None,
            line: a.line,
            magnitude: a.margin,
            bookmakers: books,
            detail: serde_json::json!({ "legs": a.legs }),
            first_seen: a.event_time,
            last_seen: a.event_time,
        }
    }

    /// The alert of one value or steam signal.
    pub fn signal(sport: &str, s: &Signal) -> Self {
        MarketAlertRow {
            kind: s.kind.as_str(),
            sport: sport.to_owned(),
            event_id: s.event_id.clone(),
            market: s.market.clone(),
            outcome: Some(s.outcome.as_str()),
            line: s.line.map(|centi| centi as f64 / 100.0),
            magnitude: s.magnitude,
            bookmakers: s.bookmakers.clone(),
            detail: s.detail.clone(),
            first_seen: s.event_time,
            last_seen: s.event_time,
        }
    }
}

/// Alerts for the markets of a poll where an arbitrage exists.
pub fn arbitrage_rows(
    sport: &str,
    best: &[MarketBest],
    event_time: DateTime<Utc>,
    ingest_time: DateTime<Utc>,
) -> Vec<ArbitrageAlertRow> {
    best.iter()
        .filter_map(|b| {
            let arb = b.arbitrage.as_ref()?;
            let legs: Vec<ArbitrageLeg> = b
                .best
                .iter()
                .zip(&arb.stakes)
                .map(|(p, (_, share))| ArbitrageLeg {
                    side: p.side.as_str(),
                    decimal: p.decimal,
                    point: p.point,
                    bookmakers: p.bookmakers.clone(),
                    stake_share: *share,
                })
                .collect();
            Some(ArbitrageAlertRow {
                sport: sport.to_string(),
                event_id: b.event_id.clone(),
                market: b.market.clone(),
                line: b.line.map(|centi| centi as f64 / 100.0),
                margin: arb.margin,
                legs,
                event_time,
                ingest_time,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::odds::market::{best_prices, Quote, Side};
    use crate::live::serving::schema::{columns, fields};
    use streaming::window::Window;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid")
    }

    fn market(book: &str, home: f64, away: f64) -> BookMarket {
        BookMarket {
            event_id: "e".into(),
            market: "h2h".into(),
            bookmaker: book.into(),
            time: at(60),
            quotes: vec![
                Quote {
                    side: Side::Home,
                    point: None,
                    decimal: home,
                },
                Quote {
                    side: Side::Away,
                    point: None,
                    decimal: away,
                },
            ],
        }
    }

    #[test]
    fn rows_match_the_migration_columns() {
        let markets = vec![market("a", 2.1, 1.8), market("b", 1.8, 2.05)];
        let latest = latest_rows("nba", &markets, at(61));
        assert_eq!(latest.len(), 4);
        assert_eq!(fields(&latest[0]), columns("odds_latest"));
        assert!((latest[0].price_american.unwrap_or(0.0) - 110.0).abs() < 1e-9);

        let mut agg = super::super::window::OddsWindow::default();
        streaming::window::Aggregate::add(&mut agg, at(60), &markets[0]);
        let closed = Closed {
            key: OddsKey {
                event_id: "e".into(),
                market: "h2h".into(),
                bookmaker: "a".into(),
            },
            window: Window {
                start: at(0),
                end: at(300),
            },
            events: 1,
            max_event_time: at(60),
            max_ingest_time: at(61),
            output: streaming::window::Aggregate::finish(&agg).expect("output"),
        };
        let windows = window_rows("nba", &closed);
        assert_eq!(windows.len(), 2);
        assert_eq!(fields(&windows[0]), columns("odds_windows"));
        assert_eq!(windows[0].key, "e/h2h/a");

        let arbs = arbitrage_rows("nba", &best_prices(&markets), at(60), at(61));
        assert_eq!(arbs.len(), 1);
        assert_eq!(fields(&arbs[0]), columns("arbitrage_alerts"));
        let shares: f64 = arbs[0].legs.iter().map(|l| l.stake_share).sum();
        assert!((shares - 1.0).abs() < 1e-12);
        assert_eq!(arbs[0].line, None);
    }
}
