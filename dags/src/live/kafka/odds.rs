//! The odds consumer's sink: [`OddsProcessor`] per partition, upserting
//! `serving.odds_latest`, `serving.odds_windows` and
//! `serving.arbitrage_alerts`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

use crate::live::envelope::Kind;
use crate::live::odds::rows::{
    arbitrage_rows, latest_rows, window_rows, ArbitrageAlertRow, MarketAlertRow, OddsLatestRow,
    OddsWindowRow,
};
use crate::live::odds::{EventInfo, OddsBatch, OddsProcessor, PROCESSOR};
use crate::settings::LiveSettings;
use streaming::kafka::config::DEFAULT_ALLOWED_LATENESS;
use streaming::kafka::consumer::{Counters, KafkaConsumer, Meta, TopicProcessor};
use streaming::kafka::KafkaSettings;
use streaming::window::{WindowError, WindowSpec};

/// Windows of `serving.odds_windows` and their allowed lateness.
#[derive(Debug, Clone)]
pub struct OddsSink {
    pub spec: WindowSpec,
    pub allowed_lateness: TimeDelta,
    /// How value and steam alerts are judged.
    pub rules: pricing::Rules,
}

impl Default for OddsSink {
    /// 5-minute tumbling windows, 1 minute of lateness.
    fn default() -> Self {
        Self {
            spec: WindowSpec::tumbling_whole_minutes(5),
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            rules: pricing::Rules::default(),
        }
    }
}

/// The odds consumer on `kafka`'s cluster (group `{prefix}-odds`),
/// with the deployment's windows and price rules.
pub fn odds_consumer(
    kafka: &KafkaSettings,
    live: &LiveSettings,
    rules: &pricing::Rules,
) -> KafkaConsumer<OddsSink> {
    let sink = OddsSink {
        spec: live.odds_window,
        allowed_lateness: live.allowed_lateness,
        rules: rules.clone(),
    };
    KafkaConsumer::new(kafka.consumer(PROCESSOR), sink)
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
        format!("v2 {}", self.spec.fingerprint(self.allowed_lateness))
    }

    fn fresh(&self) -> Result<OddsProcessor, WindowError> {
        Ok(OddsProcessor::new(self.spec, self.allowed_lateness)?.with_rules(self.rules.clone()))
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
        upsert_events(conn, &[(meta, batch)]).await?;
        write_windows_and_alerts(conn, &[(meta, batch)], counters).await
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
        upsert_events(conn, outputs).await?;
        write_windows_and_alerts(conn, outputs, counters).await
    }
}

/// The newest name and start of each event, one statement per batch: a
/// source may correct a start time, never moving it back to an older poll's.
const UPSERT_EVENTS: &str = "INSERT INTO serving.odds_events (event_id, sport, home_team,
        away_team, commence_time, event_time)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
        $6::timestamptz[])
    ON CONFLICT (event_id) DO UPDATE SET
        sport = EXCLUDED.sport, home_team = EXCLUDED.home_team,
        away_team = EXCLUDED.away_team, commence_time = EXCLUDED.commence_time,
        event_time = EXCLUDED.event_time, write_time = now()
    WHERE EXCLUDED.event_time >= odds_events.event_time";

async fn upsert_events(
    conn: &mut PgConnection,
    outputs: &[(&Meta, &OddsBatch)],
) -> Result<(), sqlx::Error> {
    let mut newest: HashMap<&str, (&str, &EventInfo)> = HashMap::new();
    for (meta, batch) in outputs {
        if let Some(e) = &batch.event {
            let keep = newest
                .get(e.event_id.as_str())
                .is_none_or(|(_, kept)| e.event_time >= kept.event_time);
            if keep {
                newest.insert(&e.event_id, (&meta.sport, e));
            }
        }
    }
    if newest.is_empty() {
        return Ok(());
    }
    let (mut ids, mut sports, mut homes, mut aways, mut starts, mut times) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (sport, e) in newest.into_values() {
        ids.push(e.event_id.clone());
        sports.push(sport.to_owned());
        homes.push(e.home_team.clone());
        aways.push(e.away_team.clone());
        starts.push(e.commence_time);
        times.push(e.event_time);
    }
    sqlx::query(UPSERT_EVENTS)
        .bind(ids)
        .bind(sports)
        .bind(homes)
        .bind(aways)
        .bind(starts)
        .bind(times)
        .execute(conn)
        .await?;
    Ok(())
}

/// The closed windows and arbitrage alerts of a batch's messages, one
/// statement each. Windows close in bursts (every key's window when the
/// watermark crosses a boundary), so row-by-row writes would stall there.
async fn write_windows_and_alerts(
    conn: &mut PgConnection,
    outputs: &[(&Meta, &OddsBatch)],
    counters: &mut Counters,
) -> Result<(), sqlx::Error> {
    let mut windows: Vec<OddsWindowRow> = Vec::new();
    let mut alerts: Vec<ArbitrageAlertRow> = Vec::new();
    let mut signals: Vec<MarketAlertRow> = Vec::new();
    for (meta, batch) in outputs {
        signals.extend(
            batch
                .signals
                .iter()
                .map(|s| MarketAlertRow::signal(&meta.sport, s)),
        );
        *counters.entry("repeated_quotes").or_default() += batch.repeats as u64;
        for closed in &batch.closed {
            windows.extend(window_rows(&meta.sport, closed));
        }
        alerts.extend(arbitrage_rows(
            &meta.sport,
            &batch.best,
            meta.event_time,
            meta.ingest_time,
        ));
    }
    *counters.entry("window_rows").or_default() += windows.len() as u64;
    *counters.entry("arbitrage_alerts").or_default() += alerts.len() as u64;
    signals.extend(alerts.iter().map(MarketAlertRow::arbitrage));
    *counters.entry("market_alerts").or_default() += signals.len() as u64;
    upsert_market_alerts(conn, signals).await?;
    upsert_windows(
        conn,
        last_per_key(windows, |r| (r.key.clone(), r.window_start, r.outcome)),
    )
    .await?;
    upsert_alerts(
        conn,
        last_per_key(alerts, |r| {
            (
                r.event_id.clone(),
                r.market.clone(),
                r.line.map(f64::to_bits),
                r.event_time,
            )
        }),
    )
    .await
}

/// The last row of each key, in first-seen order: one statement may not
/// upsert the same row twice, and the last is what writing them in turn
/// would leave.
fn last_per_key<R, K: std::hash::Hash + Eq>(rows: Vec<R>, key: impl Fn(&R) -> K) -> Vec<R> {
    let mut at: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<R> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.entry(key(&row)) {
            std::collections::hash_map::Entry::Occupied(i) => out[*i.get()] = row,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(row);
            }
        }
    }
    out
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
/// processor state), whichever batch brings it, and never lets an older
/// snapshot replace a newer one's price: what [`coalesce_latest`] does
/// within a batch, so a crashed run and a clean one end with the same rows.
/// Rows come as arrays, one statement per batch; their keys must be distinct
/// ([`coalesce_latest`]).
const UPSERT_LATEST: &str = "INSERT INTO serving.odds_latest (sport, event_id, market, bookmaker,
        outcome, point, price_decimal, price_american, implied_probability, no_vig_probability,
        overround, open_decimal, open_point, open_time, event_time, ingest_time, write_time)
    SELECT t.*, now() FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[],
        $12::float8[], $13::float8[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[]) AS t
    ON CONFLICT (event_id, market, bookmaker, outcome) DO UPDATE SET
        sport = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.sport ELSE odds_latest.sport END,
        point = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.point ELSE odds_latest.point END,
        price_decimal = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.price_decimal ELSE odds_latest.price_decimal END,
        price_american = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.price_american ELSE odds_latest.price_american END,
        implied_probability = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.implied_probability ELSE odds_latest.implied_probability END,
        no_vig_probability = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.no_vig_probability ELSE odds_latest.no_vig_probability END,
        overround = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.overround ELSE odds_latest.overround END,
        event_time = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.event_time ELSE odds_latest.event_time END,
        ingest_time = CASE WHEN EXCLUDED.event_time >= odds_latest.event_time THEN EXCLUDED.ingest_time ELSE odds_latest.ingest_time END,
        open_decimal = CASE WHEN EXCLUDED.open_time < odds_latest.open_time
            THEN EXCLUDED.open_decimal ELSE odds_latest.open_decimal END,
        open_point = CASE WHEN EXCLUDED.open_time < odds_latest.open_time
            THEN EXCLUDED.open_point ELSE odds_latest.open_point END,
        open_time = LEAST(EXCLUDED.open_time, odds_latest.open_time),
        write_time = now()
    WHERE EXCLUDED.event_time >= odds_latest.event_time
       OR EXCLUDED.open_time < odds_latest.open_time";

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

/// Rows come as arrays, one statement per batch, with distinct keys
/// ([`last_per_key`]).
const UPSERT_WINDOWS: &str = "INSERT INTO serving.odds_windows (processor, key, window_start,
        outcome, window_end, sport, event_id, market, bookmaker, events, snapshots, open_time,
        latest_time, open_decimal, open_point, latest_decimal, latest_point, move_decimal,
        move_american, move_point, implied_probability, no_vig_probability, volatility,
        outcome_snapshots, overround_latest, overround_avg, overround_min, overround_max,
        event_time, ingest_time, write_time)
    SELECT t.*, now() FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[],
        $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[],
        $11::int8[], $12::timestamptz[], $13::timestamptz[], $14::float8[], $15::float8[],
        $16::float8[], $17::float8[], $18::float8[], $19::float8[], $20::float8[],
        $21::float8[], $22::float8[], $23::float8[], $24::int8[], $25::float8[], $26::float8[],
        $27::float8[], $28::float8[], $29::timestamptz[], $30::timestamptz[]) AS t
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

async fn upsert_windows(
    conn: &mut PgConnection,
    rows: Vec<OddsWindowRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let num = |f: fn(&OddsWindowRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let opt = |f: fn(&OddsWindowRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&OddsWindowRow) -> u64| rows.iter().map(|r| count(f(r))).collect::<Vec<_>>();
    let time = |f: fn(&OddsWindowRow) -> DateTime<Utc>| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&OddsWindowRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(UPSERT_WINDOWS)
        .bind(text(|r| r.processor))
        .bind(text(|r| &r.key))
        .bind(time(|r| r.window_start))
        .bind(text(|r| r.outcome))
        .bind(time(|r| r.window_end))
        .bind(text(|r| &r.sport))
        .bind(text(|r| &r.event_id))
        .bind(text(|r| &r.market))
        .bind(text(|r| &r.bookmaker))
        .bind(int(|r| r.events))
        .bind(int(|r| r.snapshots))
        .bind(time(|r| r.open_time))
        .bind(time(|r| r.latest_time))
        .bind(opt(|r| r.open_decimal))
        .bind(opt(|r| r.open_point))
        .bind(num(|r| r.latest_decimal))
        .bind(opt(|r| r.latest_point))
        .bind(opt(|r| r.move_decimal))
        .bind(opt(|r| r.move_american))
        .bind(opt(|r| r.move_point))
        .bind(num(|r| r.implied_probability))
        .bind(num(|r| r.no_vig_probability))
        .bind(opt(|r| r.volatility))
        .bind(int(|r| r.outcome_snapshots))
        .bind(num(|r| r.overround_latest))
        .bind(num(|r| r.overround_avg))
        .bind(num(|r| r.overround_min))
        .bind(num(|r| r.overround_max))
        .bind(time(|r| r.event_time))
        .bind(time(|r| r.ingest_time))
        .execute(conn)
        .await?;
    Ok(())
}

/// Rows come as arrays with distinct keys ([`last_per_key`]).
const UPSERT_ALERTS: &str = "INSERT INTO serving.arbitrage_alerts (sport, event_id, market, line,
        margin, legs, event_time, ingest_time)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],
        $6::jsonb[], $7::timestamptz[], $8::timestamptz[])
    ON CONFLICT ON CONSTRAINT arbitrage_alerts_unique DO UPDATE SET
        margin = EXCLUDED.margin, legs = EXCLUDED.legs, ingest_time = EXCLUDED.ingest_time,
        write_time = now()";

/// One row per signal; a signal seen again later moves `last_seen` and
/// counts once more, the same moment again (a redelivery) changes nothing.
const UPSERT_MARKET_ALERTS: &str = "INSERT INTO serving.market_alerts (kind, sport, event_id,
        market, outcome, line, magnitude, bookmakers, detail, first_seen, last_seen, times_seen)
    SELECT kind, sport, event_id, market, outcome, line, magnitude,
        ARRAY(SELECT jsonb_array_elements_text(books)), detail, first_seen, last_seen, seen
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[],
        $7::float8[], $8::jsonb[], $9::jsonb[], $10::timestamptz[], $11::timestamptz[], $12::int8[])
        AS t(kind, sport, event_id, market, outcome, line, magnitude, books, detail, first_seen,
            last_seen, seen)
    ON CONFLICT ON CONSTRAINT market_alerts_unique DO UPDATE SET
        magnitude = EXCLUDED.magnitude, bookmakers = EXCLUDED.bookmakers,
        detail = EXCLUDED.detail, last_seen = EXCLUDED.last_seen,
        first_seen = least(market_alerts.first_seen, EXCLUDED.first_seen),
        times_seen = market_alerts.times_seen + EXCLUDED.times_seen, write_time = now()
    WHERE EXCLUDED.last_seen > market_alerts.last_seen";

/// Rows of one key folded into one (a statement may not upsert a row
/// twice): the newest figures, the earliest first sighting, and the
/// distinct moments it was seen at.
fn fold_market_alerts(rows: Vec<MarketAlertRow>) -> Vec<(MarketAlertRow, i64)> {
    type Key = (
        &'static str,
        String,
        String,
        Option<&'static str>,
        Option<u64>,
    );
    let mut at: HashMap<Key, usize> = HashMap::new();
    let mut out: Vec<(MarketAlertRow, Vec<DateTime<Utc>>)> = Vec::new();
    for row in rows {
        let key: Key = (
            row.kind,
            row.event_id.clone(),
            row.market.clone(),
            row.outcome,
            row.line.map(f64::to_bits),
        );
        match at.get(&key) {
            None => {
                at.insert(key, out.len());
                let seen = vec![row.last_seen];
                out.push((row, seen));
            }
            Some(&i) => {
                let (kept, seen) = &mut out[i];
                if !seen.contains(&row.last_seen) {
                    seen.push(row.last_seen);
                }
                let first = kept.first_seen.min(row.first_seen);
                if row.last_seen >= kept.last_seen {
                    *kept = row;
                }
                kept.first_seen = first;
            }
        }
    }
    out.into_iter()
        .map(|(row, seen)| (row, seen.len() as i64))
        .collect()
}

async fn upsert_market_alerts(
    conn: &mut PgConnection,
    rows: Vec<MarketAlertRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows = fold_market_alerts(rows);
    sqlx::query(UPSERT_MARKET_ALERTS)
        .bind(rows.iter().map(|(r, _)| r.kind).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(r, _)| r.sport.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(r, _)| r.event_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(r, _)| r.market.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(r, _)| r.outcome).collect::<Vec<_>>())
        .bind(rows.iter().map(|(r, _)| r.line).collect::<Vec<_>>())
        .bind(rows.iter().map(|(r, _)| r.magnitude).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(r, _)| serde_json::to_value(&r.bookmakers).unwrap_or_default())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(r, _)| r.detail.clone())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(r, _)| r.first_seen).collect::<Vec<_>>())
        .bind(rows.iter().map(|(r, _)| r.last_seen).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, n)| *n).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

async fn upsert_alerts(
    conn: &mut PgConnection,
    rows: Vec<ArbitrageAlertRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let legs: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::to_value(&r.legs).unwrap_or_default())
        .collect();
    sqlx::query(UPSERT_ALERTS)
        .bind(rows.iter().map(|r| r.sport.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.market.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.line).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.margin).collect::<Vec<_>>())
        .bind(legs)
        .bind(rows.iter().map(|r| r.event_time).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.ingest_time).collect::<Vec<_>>())
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

    /// `serving.odds_latest` as (event, outcome, price, open, open time,
    /// event time), times as [`row`] gives them.
    async fn latest_table(conn: &mut PgConnection) -> Vec<(String, String, f64, f64, i64, i64)> {
        sqlx::query_as(
            "SELECT event_id, outcome, price_decimal, open_decimal,
                    extract(epoch FROM open_time)::int8 - 1767000000,
                    extract(epoch FROM event_time)::int8 - 1767000000
             FROM serving.odds_latest ORDER BY 1, 2",
        )
        .fetch_all(conn)
        .await
        .expect("read odds_latest")
    }

    #[tokio::test]
    async fn upserting_row_by_row_ends_where_one_coalesced_batch_does() {
        let metadata = crate::tests::metadata().await;
        let mut conn = metadata.pool().acquire().await.expect("connection");
        let rows = || {
            vec![
                row("e1", "home", 10, 1.90, 10),
                row("e1", "home", 20, 1.80, 20),
                // Older than both: its price is stale, its line opened first.
                row("e1", "home", 5, 2.10, 5),
                row("e2", "away", 10, 2.50, 10),
                row("e2", "away", 10, 2.40, 10),
            ]
        };
        let mut tables = Vec::new();
        for batches in [vec![rows()], rows().into_iter().map(|r| vec![r]).collect()] {
            sqlx::query("TRUNCATE serving.odds_latest")
                .execute(&mut *conn)
                .await
                .expect("truncate");
            for batch in batches {
                upsert_latest_rows(&mut conn, coalesce_latest(batch))
                    .await
                    .expect("upsert");
            }
            tables.push(latest_table(&mut conn).await);
        }
        assert_eq!(
            tables[0],
            [
                ("e1".into(), "home".into(), 1.80, 2.10, 5, 20),
                ("e2".into(), "away".into(), 2.40, 2.50, 10, 10),
            ]
        );
        assert_eq!(tables[1], tables[0], "one row per batch");
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
