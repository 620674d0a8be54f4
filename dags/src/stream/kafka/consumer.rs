//! The odds consumer: a consumer-group stream task over every
//! `betflow.odds.{sport}` topic. Each message is decoded (a bad one becomes a
//! `serving.dead_letter` row with its topic/partition/offset and reason), run
//! through the [`OddsProcessor`] and upserted into `serving.odds_latest`,
//! `serving.odds_windows` and `serving.arbitrage_alerts` in one transaction;
//! its offset is committed only after that transaction. Every upsert is
//! idempotent, so a redelivery after a crash rewrites the same rows.

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use orchestrator::{StreamContext, StreamTask, TaskError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::json;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use crate::stream::envelope::{decode, Envelope, Kind, Topic};
use crate::stream::odds::rows::{arbitrage_rows, latest_rows, window_rows};
use crate::stream::odds::{OddsBatch, OddsPayload, OddsProcessor, PROCESSOR};
use crate::stream::serving::DeadLetterRow;
use crate::stream::window::WindowSpec;

/// Consumer group of the odds consumer.
pub const ODDS_GROUP: &str = "betflow-odds";

/// The odds consumer's configuration.
#[derive(Debug, Clone)]
pub struct OddsConsumer {
    pub brokers: String,
    pub group_id: String,
    /// Partitions of topics it creates when missing.
    pub partitions: i32,
    /// Window size of `serving.odds_windows`.
    pub window: TimeDelta,
    pub allowed_lateness: TimeDelta,
}

impl OddsConsumer {
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            group_id: ODDS_GROUP.to_string(),
            partitions: super::partitions_from_env(),
            window: TimeDelta::minutes(5),
            allowed_lateness: TimeDelta::minutes(1),
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::msg(format!("{what}: {e}"))
}

#[async_trait]
impl StreamTask for OddsConsumer {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        // The process's own database (embedded or DATABASE_URL) holds `serving`.
        let pool: PgPool = ctx.store().pool().clone();
        let topics: Vec<String> = Topic::all()
            .into_iter()
            .filter(|t| t.kind == Kind::Odds)
            .map(|t| t.to_string())
            .collect();
        super::producer::ensure_topics(&self.brokers, &topics, self.partitions)
            .await
            .map_err(|e| fail("creating odds topics", e))?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()
            .map_err(|e| fail("creating the Kafka consumer", e))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| fail("subscribing", e))?;
        let spec = WindowSpec::tumbling(self.window).map_err(|e| fail("window", e))?;
        let mut processor = OddsProcessor::new(spec, self.allowed_lateness)
            .map_err(|e| fail("odds processor", e))?;
        let mut stats = Stats::default();
        ctx.report(stats.health());
        loop {
            let msg: BorrowedMessage<'_> = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Ok(()),
                m = consumer.recv() => m.map_err(|e| fail("receiving", e))?,
            };
            let mut tx: Transaction<'_, Postgres> = pool
                .begin()
                .await
                .map_err(|e| fail("starting a transaction", e))?;
            sink_message(&mut tx, &mut processor, &msg, &mut stats)
                .await
                .map_err(|e| fail("writing serving rows", e))?;
            tx.commit()
                .await
                .map_err(|e| fail("committing serving rows", e))?;
            consumer
                .commit_message(&msg, CommitMode::Async)
                .map_err(|e| fail("committing the offset", e))?;
            stats.messages += 1;
            ctx.report(stats.health());
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    messages: u64,
    latest_rows: u64,
    window_rows: u64,
    alerts: u64,
    dead_letters: u64,
}

impl Stats {
    fn health(&self) -> serde_json::Value {
        json!({
            "messages": self.messages,
            "latest_rows": self.latest_rows,
            "window_rows": self.window_rows,
            "arbitrage_alerts": self.alerts,
            "dead_letters": self.dead_letters,
            "last_message": Utc::now().to_rfc3339(),
        })
    }
}

async fn sink_message(
    tx: &mut Transaction<'_, Postgres>,
    processor: &mut OddsProcessor,
    msg: &BorrowedMessage<'_>,
    stats: &mut Stats,
) -> Result<(), sqlx::Error> {
    let dead = |reason_code: &str, reason: String| DeadLetterRow {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        processor: Some(PROCESSOR),
        reason_code: reason_code.to_string(),
        reason,
        message_key: msg.key().map(<[u8]>::to_vec),
        payload: msg.payload().unwrap_or_default().to_vec(),
        received_at: Utc::now(),
        event_time: None,
        ingest_time: None,
    };
    let envelope: Envelope<OddsPayload> =
        match decode(msg.topic(), msg.key(), msg.payload().unwrap_or_default()) {
            Ok(e) => e,
            Err(e) => {
                stats.dead_letters += 1;
                return upsert_dead_letter(tx, &dead(e.code(), e.to_string())).await;
            }
        };
    let batch: OddsBatch = processor.handle(&envelope);
    let sport: &str = &envelope.sport;
    for row in latest_rows(sport, &batch.latest, envelope.ingest_time) {
        upsert_latest(tx, &row).await?;
        stats.latest_rows += 1;
    }
    for closed in &batch.closed {
        for row in window_rows(sport, closed) {
            upsert_window(tx, &row).await?;
            stats.window_rows += 1;
        }
    }
    for row in arbitrage_rows(
        sport,
        &batch.best,
        envelope.event_time,
        envelope.ingest_time,
    ) {
        insert_alert(tx, &row).await?;
        stats.alerts += 1;
    }
    let mut problems: Vec<String> = batch
        .rejected
        .iter()
        .map(|r| format!("{}/{}: {}", r.bookmaker, r.market, r.reason))
        .collect();
    let rejected: bool = !problems.is_empty();
    problems.extend(batch.late.iter().map(|l| {
        format!(
            "{}: late (event {} behind watermark {})",
            l.key.as_key(),
            l.event_time,
            l.watermark
        )
    }));
    if !problems.is_empty() {
        let code: &str = if rejected { "rejected" } else { "late" };
        let mut row = dead(code, problems.join("; "));
        row.event_time = Some(envelope.event_time);
        row.ingest_time = Some(envelope.ingest_time);
        upsert_dead_letter(tx, &row).await?;
        stats.dead_letters += 1;
    }
    Ok(())
}

async fn upsert_latest(
    tx: &mut Transaction<'_, Postgres>,
    r: &crate::stream::odds::rows::OddsLatestRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO serving.odds_latest (sport, event_id, market, bookmaker, outcome, point,
            price_decimal, price_american, implied_probability, no_vig_probability, overround,
            open_decimal, open_point, open_time, event_time, ingest_time, write_time)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16, now())
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
         WHERE EXCLUDED.event_time >= odds_latest.event_time",
    )
    .bind(&r.sport)
    .bind(&r.event_id)
    .bind(&r.market)
    .bind(&r.bookmaker)
    .bind(r.outcome)
    .bind(r.point)
    .bind(r.price_decimal)
    .bind(r.price_american)
    .bind(r.implied_probability)
    .bind(r.no_vig_probability)
    .bind(r.overround)
    .bind(r.open_decimal)
    .bind(r.open_point)
    .bind(r.open_time)
    .bind(r.event_time)
    .bind(r.ingest_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn upsert_window(
    tx: &mut Transaction<'_, Postgres>,
    r: &crate::stream::odds::rows::OddsWindowRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO serving.odds_windows (processor, key, window_start, outcome, window_end,
            sport, event_id, market, bookmaker, events, snapshots, open_time, latest_time,
            open_decimal, open_point, latest_decimal, latest_point, move_decimal, move_american,
            move_point, implied_probability, no_vig_probability, volatility, outcome_snapshots,
            overround_latest, overround_avg, overround_min, overround_max, event_time,
            ingest_time, write_time)
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
            write_time = now()",
    )
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_alert(
    tx: &mut Transaction<'_, Postgres>,
    r: &crate::stream::odds::rows::ArbitrageAlertRow,
) -> Result<(), sqlx::Error> {
    let legs: serde_json::Value = serde_json::to_value(&r.legs).unwrap_or_default();
    sqlx::query(
        "INSERT INTO serving.arbitrage_alerts (sport, event_id, market, line, margin, legs,
            event_time, ingest_time)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
         ON CONFLICT ON CONSTRAINT arbitrage_alerts_unique DO UPDATE SET
            margin = EXCLUDED.margin, legs = EXCLUDED.legs, ingest_time = EXCLUDED.ingest_time,
            write_time = now()",
    )
    .bind(&r.sport)
    .bind(&r.event_id)
    .bind(&r.market)
    .bind(r.line)
    .bind(r.margin)
    .bind(legs)
    .bind(r.event_time)
    .bind(r.ingest_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_dead_letter(
    tx: &mut Transaction<'_, Postgres>,
    r: &DeadLetterRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"INSERT INTO serving.dead_letter (topic, partition, "offset", processor, reason_code,
            reason, message_key, payload, received_at, event_time, ingest_time)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
         ON CONFLICT ON CONSTRAINT dead_letter_message DO UPDATE SET
            processor = EXCLUDED.processor, reason_code = EXCLUDED.reason_code,
            reason = EXCLUDED.reason, message_key = EXCLUDED.message_key,
            payload = EXCLUDED.payload, event_time = EXCLUDED.event_time,
            ingest_time = EXCLUDED.ingest_time, write_time = now()"#,
    )
    .bind(&r.topic)
    .bind(r.partition)
    .bind(r.offset)
    .bind(r.processor)
    .bind(&r.reason_code)
    .bind(&r.reason)
    .bind(r.message_key.as_deref())
    .bind(r.payload.as_slice())
    .bind(r.received_at)
    .bind(r.event_time)
    .bind(r.ingest_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
