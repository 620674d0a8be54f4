//! The odds consumer's sink: [`OddsProcessor`] per partition, upserting
//! `serving.odds_latest`, `serving.odds_windows` and
//! `serving.arbitrage_alerts`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

use super::config::ConsumerConfig;
use super::consumer::{Counters, KafkaConsumer, Meta, TopicProcessor};
use crate::stream::envelope::Kind;
use crate::stream::odds::rows::{
    arbitrage_rows, latest_rows, window_rows, ArbitrageAlertRow, OddsLatestRow, OddsWindowRow,
};
use crate::stream::odds::{OddsBatch, OddsProcessor, PROCESSOR};
use crate::stream::window::{WindowError, WindowSpec};

/// Windows of `serving.odds_windows` and their allowed lateness.
#[derive(Debug, Clone, Copy)]
pub struct OddsSink {
    pub spec: WindowSpec,
    pub allowed_lateness: TimeDelta,
}

impl Default for OddsSink {
    /// 5-minute tumbling windows, 1 minute of lateness.
    fn default() -> Self {
        Self {
            spec: WindowSpec::tumbling_whole_minutes(5),
            allowed_lateness: TimeDelta::minutes(1),
        }
    }
}

/// The odds consumer for `brokers` (group `{prefix}-odds`) with the default settings.
pub fn odds_consumer(brokers: &str) -> KafkaConsumer<OddsSink> {
    KafkaConsumer::new(ConsumerConfig::new(brokers, PROCESSOR), OddsSink::default())
}

#[async_trait]
impl TopicProcessor for OddsSink {
    const NAME: &'static str = PROCESSOR;
    const KIND: Kind = Kind::Odds;
    const COUNTERS: &'static [&'static str] = &[
        "latest_rows",
        "window_rows",
        "arbitrage_alerts",
        "repeated_quotes",
    ];
    type State = OddsProcessor;

    fn fingerprint(&self) -> String {
        format!("v1 {}", self.spec.fingerprint(self.allowed_lateness))
    }

    fn fresh(&self) -> Result<OddsProcessor, WindowError> {
        OddsProcessor::new(self.spec, self.allowed_lateness)
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        meta: &Meta,
        batch: &OddsBatch,
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<OddsLatestRow> = latest_rows(&meta.sport, &batch.latest, meta.ingest_time);
        *counters.entry("latest_rows").or_default() += rows.len() as u64;
        upsert_latest_rows(conn, rows).await?;
        write_windows_and_alerts(conn, meta, batch, counters).await
    }

    async fn write_many(
        &self,
        conn: &mut PgConnection,
        outputs: &[(&Meta, &OddsBatch)],
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        let mut latest: Vec<OddsLatestRow> = Vec::new();
        for (meta, batch) in outputs {
            latest.extend(latest_rows(&meta.sport, &batch.latest, meta.ingest_time));
        }
        *counters.entry("latest_rows").or_default() += latest.len() as u64;
        upsert_latest_rows(conn, coalesce_latest(latest)).await?;
        for (meta, batch) in outputs {
            write_windows_and_alerts(conn, meta, batch, counters).await?;
        }
        Ok(())
    }
}

/// A message's closed windows and arbitrage alerts: rare next to price
/// updates (a window closes once per slide), so written row by row.
async fn write_windows_and_alerts(
    conn: &mut PgConnection,
    meta: &Meta,
    batch: &OddsBatch,
    counters: &mut Counters,
) -> Result<(), sqlx::Error> {
    let sport: &str = &meta.sport;
    *counters.entry("repeated_quotes").or_default() += batch.repeats as u64;
    for closed in &batch.closed {
        for row in window_rows(sport, closed) {
            upsert_window(conn, &row).await?;
            *counters.entry("window_rows").or_default() += 1;
        }
    }
    for row in arbitrage_rows(sport, &batch.best, meta.event_time, meta.ingest_time) {
        upsert_alert(conn, &row).await?;
        *counters.entry("arbitrage_alerts").or_default() += 1;
    }
    Ok(())
}

/// One row per (event, market, bookmaker, outcome): the newest snapshot
/// (the last of equal event times, as offsets order them) with the earliest
/// opening line seen, which is what upserting them in turn would leave.
pub fn coalesce_latest(rows: Vec<OddsLatestRow>) -> Vec<OddsLatestRow> {
    let mut at: HashMap<(String, String, String, &'static str), usize> = HashMap::new();
    let mut out: Vec<OddsLatestRow> = Vec::with_capacity(rows.len());
    for row in rows {
        let key = (
            row.event_id.clone(),
            row.market.clone(),
            row.bookmaker.clone(),
            row.outcome,
        );
        match at.get(&key) {
            None => {
                at.insert(key, out.len());
                out.push(row);
            }
            Some(&i) => {
                let kept: &mut OddsLatestRow = &mut out[i];
                let (open_decimal, open_point, open_time) = if row.open_time < kept.open_time {
                    (row.open_decimal, row.open_point, row.open_time)
                } else {
                    (kept.open_decimal, kept.open_point, kept.open_time)
                };
                if row.event_time >= kept.event_time {
                    *kept = row;
                }
                kept.open_decimal = open_decimal;
                kept.open_point = open_point;
                kept.open_time = open_time;
            }
        }
    }
    out
}

/// Keeps the earliest `open_*` (the opening line survives restarts without
/// processor state) and never lets an older snapshot replace a newer one.
/// Rows come as arrays, one statement per batch; their keys must be distinct
/// ([`coalesce_latest`]).
const UPSERT_LATEST: &str = "INSERT INTO serving.odds_latest (sport, event_id, market, bookmaker,
        outcome, point, price_decimal, price_american, implied_probability, no_vig_probability,
        overround, open_decimal, open_point, open_time, event_time, ingest_time, write_time)
    SELECT t.*, now() FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[],
        $12::float8[], $13::float8[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[]) AS t
    ON CONFLICT (event_id, market, bookmaker, outcome) DO UPDATE SET
        sport = EXCLUDED.sport, point = EXCLUDED.point,
        price_decimal = EXCLUDED.price_decimal, price_american = EXCLUDED.price_american,
        implied_probability = EXCLUDED.implied_probability,
        no_vig_probability = EXCLUDED.no_vig_probability, overround = EXCLUDED.overround,
        open_decimal = CASE WHEN EXCLUDED.open_time < odds_latest.open_time
            THEN EXCLUDED.open_decimal ELSE odds_latest.open_decimal END,
        open_point = CASE WHEN EXCLUDED.open_time < odds_latest.open_time
            THEN EXCLUDED.open_point ELSE odds_latest.open_point END,
        open_time = LEAST(EXCLUDED.open_time, odds_latest.open_time),
        event_time = EXCLUDED.event_time, ingest_time = EXCLUDED.ingest_time,
        write_time = now()
    WHERE EXCLUDED.event_time >= odds_latest.event_time";

async fn upsert_latest_rows(
    conn: &mut PgConnection,
    rows: Vec<OddsLatestRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&OddsLatestRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let opt = |f: fn(&OddsLatestRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&OddsLatestRow) -> DateTime<Utc>| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&OddsLatestRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(UPSERT_LATEST)
        .bind(text(|r| &r.sport))
        .bind(text(|r| &r.event_id))
        .bind(text(|r| &r.market))
        .bind(text(|r| &r.bookmaker))
        .bind(text(|r| r.outcome))
        .bind(opt(|r| r.point))
        .bind(col(|r| r.price_decimal))
        .bind(opt(|r| r.price_american))
        .bind(col(|r| r.implied_probability))
        .bind(col(|r| r.no_vig_probability))
        .bind(col(|r| r.overround))
        .bind(col(|r| r.open_decimal))
        .bind(opt(|r| r.open_point))
        .bind(time(|r| r.open_time))
        .bind(time(|r| r.event_time))
        .bind(time(|r| r.ingest_time))
        .execute(conn)
        .await?;
    Ok(())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const UPSERT_WINDOW: &str = "INSERT INTO serving.odds_windows (processor, key, window_start,
        outcome, window_end, sport, event_id, market, bookmaker, events, snapshots, open_time,
        latest_time, open_decimal, open_point, latest_decimal, latest_point, move_decimal,
        move_american, move_point, implied_probability, no_vig_probability, volatility,
        outcome_snapshots, overround_latest, overround_avg, overround_min, overround_max,
        event_time, ingest_time, write_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,
        $23,$24,$25,$26,$27,$28,$29,$30, now())
    ON CONFLICT (processor, key, window_start, outcome) DO UPDATE SET
        window_end = EXCLUDED.window_end, sport = EXCLUDED.sport,
        event_id = EXCLUDED.event_id, market = EXCLUDED.market,
        bookmaker = EXCLUDED.bookmaker, events = EXCLUDED.events,
        snapshots = EXCLUDED.snapshots, open_time = EXCLUDED.open_time,
        latest_time = EXCLUDED.latest_time, open_decimal = EXCLUDED.open_decimal,
        open_point = EXCLUDED.open_point, latest_decimal = EXCLUDED.latest_decimal,
        latest_point = EXCLUDED.latest_point, move_decimal = EXCLUDED.move_decimal,
        move_american = EXCLUDED.move_american, move_point = EXCLUDED.move_point,
        implied_probability = EXCLUDED.implied_probability,
        no_vig_probability = EXCLUDED.no_vig_probability, volatility = EXCLUDED.volatility,
        outcome_snapshots = EXCLUDED.outcome_snapshots,
        overround_latest = EXCLUDED.overround_latest, overround_avg = EXCLUDED.overround_avg,
        overround_min = EXCLUDED.overround_min, overround_max = EXCLUDED.overround_max,
        event_time = EXCLUDED.event_time, ingest_time = EXCLUDED.ingest_time,
        write_time = now()";

async fn upsert_window(conn: &mut PgConnection, r: &OddsWindowRow) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT_WINDOW)
        .bind(r.processor)
        .bind(&r.key)
        .bind(r.window_start)
        .bind(r.outcome)
        .bind(r.window_end)
        .bind(&r.sport)
        .bind(&r.event_id)
        .bind(&r.market)
        .bind(&r.bookmaker)
        .bind(count(r.events))
        .bind(count(r.snapshots))
        .bind(r.open_time)
        .bind(r.latest_time)
        .bind(r.open_decimal)
        .bind(r.open_point)
        .bind(r.latest_decimal)
        .bind(r.latest_point)
        .bind(r.move_decimal)
        .bind(r.move_american)
        .bind(r.move_point)
        .bind(r.implied_probability)
        .bind(r.no_vig_probability)
        .bind(r.volatility)
        .bind(count(r.outcome_snapshots))
        .bind(r.overround_latest)
        .bind(r.overround_avg)
        .bind(r.overround_min)
        .bind(r.overround_max)
        .bind(r.event_time)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}

const UPSERT_ALERT: &str = "INSERT INTO serving.arbitrage_alerts (sport, event_id, market, line,
        margin, legs, event_time, ingest_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
    ON CONFLICT ON CONSTRAINT arbitrage_alerts_unique DO UPDATE SET
        margin = EXCLUDED.margin, legs = EXCLUDED.legs, ingest_time = EXCLUDED.ingest_time,
        write_time = now()";

async fn upsert_alert(conn: &mut PgConnection, r: &ArbitrageAlertRow) -> Result<(), sqlx::Error> {
    let legs: serde_json::Value = serde_json::to_value(&r.legs).unwrap_or_default();
    sqlx::query(UPSERT_ALERT)
        .bind(&r.sport)
        .bind(&r.event_id)
        .bind(&r.market)
        .bind(r.line)
        .bind(r.margin)
        .bind(legs)
        .bind(r.event_time)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event: &str, outcome: &'static str, at: i64, price: f64, open_at: i64) -> OddsLatestRow {
        let t = |s: i64| DateTime::from_timestamp(1_767_000_000 + s, 0).expect("time");
        OddsLatestRow {
            sport: "nba".to_string(),
            event_id: event.to_string(),
            market: "h2h".to_string(),
            bookmaker: "book".to_string(),
            outcome,
            point: None,
            price_decimal: price,
            price_american: None,
            implied_probability: 1.0 / price,
            no_vig_probability: 0.5,
            overround: 0.04,
            open_decimal: price,
            open_point: None,
            open_time: t(open_at),
            event_time: t(at),
            ingest_time: t(at + 1),
        }
    }

    #[test]
    fn coalescing_keeps_the_newest_price_and_the_earliest_open_per_key() {
        let rows = vec![
            row("e1", "home", 10, 1.90, 0),
            row("e1", "away", 10, 1.95, 0),
            row("e2", "home", 10, 2.50, 5),
            row("e1", "home", 20, 1.80, 3),
            // Older than what the batch already has for e2: not applied.
            row("e2", "home", 5, 2.70, 5),
        ];
        let out = coalesce_latest(rows);
        let got: Vec<(&str, &str, f64, f64)> = out
            .iter()
            .map(|r| {
                (
                    r.event_id.as_str(),
                    r.outcome,
                    r.price_decimal,
                    r.open_decimal,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("e1", "home", 1.80, 1.90),
                ("e1", "away", 1.95, 1.95),
                ("e2", "home", 2.50, 2.50),
            ]
        );
        assert_eq!(out[0].open_time, row("x", "home", 0, 1.9, 0).open_time);
    }
}
