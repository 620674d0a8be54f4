//! `betflow stream replay`: the replay source's historical odds snapshots of
//! a date range, published to `betflow.odds.{sport}` as if polled live.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use dags::ingest::odds::replay_day;
use dags::ingest::Settings;
use dags::sources::odds_api::{self, OddsEvent, OddsFormat};
use dags::stream::envelope::{Envelope, Kind, Topic, SCHEMA_VERSION};
use dags::stream::kafka::producer::Producer;
use dags::stream::kafka::{partitions_from_env, BROKERS_ENV};
use dags::stream::odds::OddsPayload;
use dags::Sport;
use serde_json::Value;
use tokio::task::JoinSet;

use super::usage;

#[derive(Subcommand)]
pub enum StreamCommand {
    /// Publish the replay source's historical odds snapshots of a date range to Kafka.
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct ReplayArgs {
    /// First sports day (YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: String,
    /// Last sports day (YYYY-MM-DD), inclusive.
    #[arg(long)]
    to: String,
    /// Only this sport (default: every sport).
    #[arg(long)]
    sport: Option<String>,
    /// N× real time between snapshot timestamps (60: one minute of event time
    /// per second); as fast as possible when not given.
    #[arg(long)]
    speed: Option<f64>,
}

/// Replay prices are American (what the odds DAG records and generates).
const FORMAT: OddsFormat = OddsFormat::American;
/// Upper bound on the days of one replay, against typos like `--to 2204-01-01`.
const MAX_DAYS: i64 = 3_660;
/// Source of the envelopes.
const SOURCE: &str = "replay";

pub async fn run(cmd: StreamCommand) -> Result<ExitCode> {
    match cmd {
        StreamCommand::Replay(args) => replay(args).await,
    }
}

fn parse_day(flag: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| usage(format!("{flag}: `{s}` is not a YYYY-MM-DD date ({e})")))
}

/// One message to publish.
struct Message {
    time: DateTime<Utc>,
    sport: &'static Sport,
    event: OddsEvent,
}

async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let from = parse_day("--from", &args.from)?;
    let to = parse_day("--to", &args.to)?;
    if from > to {
        return Err(usage(format!(
            "--from {} is after --to {}",
            args.from, args.to
        )));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(usage(format!(
            "the range holds more than {MAX_DAYS} days; split it"
        )));
    }
    let sports: Vec<&'static Sport> = match &args.sport {
        Some(key) => vec![dags::sport(key).ok_or_else(|| {
            let known: Vec<&str> = dags::SPORTS.iter().map(|s| s.key).collect();
            usage(format!(
                "unknown sport `{key}` (known: {})",
                known.join(", ")
            ))
        })?],
        None => dags::SPORTS.iter().collect(),
    };
    if let Some(speed) = args.speed {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(usage(format!(
                "--speed must be a positive number, not {speed}"
            )));
        }
    }
    let brokers: String = std::env::var(BROKERS_ENV)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            usage(format!(
                "{BROKERS_ENV} is not set: stream replay needs Kafka bootstrap servers"
            ))
        })?;
    let minutes: u32 = Settings::from_env()
        .map_err(|e| anyhow!("{e}"))?
        .odds_snapshot_minutes;

    let mut messages: Vec<Message> = Vec::new();
    let mut rejected: usize = 0;
    let mut day = from;
    while day <= to {
        for sport in &sports {
            let snapshots = replay_day(sport, day, minutes)
                .map_err(|e| anyhow!("replaying {} odds of {day}: {e}", sport.key))?;
            for f in snapshots {
                let body: Value = serde_json::from_slice(&f.body)
                    .with_context(|| format!("replayed snapshot {} is not JSON", f.url))?;
                let (times, checked) = odds_api::validate_historical(&body, FORMAT)
                    .with_context(|| format!("replayed snapshot {}", f.url))?;
                rejected += checked.rejected.len();
                messages.extend(checked.good.into_iter().map(|event| Message {
                    time: times.timestamp,
                    sport,
                    event,
                }));
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    // Event-time order; stable, so one snapshot's events keep their order.
    messages.sort_by_key(|m| m.time);
    let events: BTreeSet<&str> = messages.iter().map(|m| m.event.id.as_str()).collect();
    let distinct_events = events.len();
    outln!(
        "replaying {} odds message(s) ({distinct_events} distinct event(s), {rejected} rejected) for {} sport(s), {from} to {to}, to {brokers}",
        messages.len(),
        sports.len(),
    );

    let producer = Producer::new(&brokers, partitions_from_env())?;
    let topics: Vec<Topic> = sports.iter().map(|s| Topic::new(Kind::Odds, s)).collect();
    producer.ensure_topics(&topics).await?;

    let total = messages.len();
    let mut failed: usize = 0;
    let mut published: usize = 0;
    let mut previous: Option<DateTime<Utc>> = None;
    let mut batch: JoinSet<Result<(), String>> = JoinSet::new();
    let mut messages = messages.into_iter().peekable();
    while let Some(first) = messages.next() {
        let time = first.time;
        if let (Some(speed), Some(prev)) = (args.speed, previous) {
            let gap = (time - prev).to_std().unwrap_or_default();
            tokio::time::sleep(Duration::from_secs_f64(gap.as_secs_f64() / speed)).await;
        }
        previous = Some(time);
        // One timestamp's messages have distinct keys (one per event):
        // sent concurrently, all delivered before the next timestamp.
        let mut group = vec![first];
        while let Some(m) = messages.next_if(|m| m.time == time) {
            group.push(m);
        }
        for m in group {
            let producer = producer.clone();
            batch.spawn(async move {
                let envelope = Envelope {
                    schema_version: SCHEMA_VERSION,
                    source: SOURCE.to_string(),
                    sport: m.sport.key.to_string(),
                    kind: Kind::Odds,
                    event_time: m.time,
                    ingest_time: Utc::now(),
                    payload: OddsPayload {
                        odds_format: FORMAT,
                        event: m.event,
                    },
                };
                producer
                    .publish(Topic::new(Kind::Odds, m.sport), &envelope)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        }
        while let Some(joined) = batch.join_next().await {
            match joined {
                Ok(Ok(())) => published += 1,
                Ok(Err(e)) => {
                    failed += 1;
                    tracing::warn!("{e}");
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!("publishing task failed: {e}");
                }
            }
        }
        if args.speed.is_some() {
            outln!(
                "{time}: {}/{total} published, {failed} failed",
                published + failed
            );
        }
    }
    let retried = producer.stats().retried.load(Ordering::Relaxed);
    outln!(
        "published {published} message(s) of {total}, {failed} failed deliveries, {retried} retries"
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
