//! `betflow stream replay`: a date range of the replay source, published
//! as if polled live: odds snapshots to `betflow.odds.{sport}`, each game's
//! score progression to `betflow.games.{sport}`, weather around outdoor
//! kickoffs to `betflow.weather.{sport}` and headlines naming a team to
//! `betflow.news.{sport}` (`dags::live::replay`), all in one event-time
//! order.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use dags::live::envelope::{Kind, Topic};
use dags::live::publish::{groups, send_group, Sent};
use dags::live::replay::{replay_day, ReplayMessage, SOURCE};
use dags::Sport;
use streaming::kafka::producer::Producer;
use streaming::kafka::BROKERS_ENV;

use super::usage;
use crate::settings::Settings;

#[derive(Subcommand)]
pub enum StreamCommand {
    /// Publish a date range of the replay source (odds snapshots, live scores,
    /// venue weather, news) to Kafka.
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

/// Upper bound on the days of one replay, against typos like `--to 2204-01-01`.
const MAX_DAYS: i64 = 3_660;

pub async fn run(settings: &Settings, cmd: StreamCommand) -> Result<ExitCode> {
    match cmd {
        StreamCommand::Replay(args) => replay(settings, args).await,
    }
}

fn parse_day(flag: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| usage(format!("{flag}: `{s}` is not a YYYY-MM-DD date ({e})")))
}

async fn replay(settings: &Settings, args: ReplayArgs) -> Result<ExitCode> {
    let home: &Path = &settings.home;
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
    // Else the embedded broker of a `betflow up` running on this home.
    let brokers: String = std::env::var(BROKERS_ENV)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| services::broker::running_bootstrap(home))
        .ok_or_else(|| {
            usage(format!(
                "{BROKERS_ENV} is not set and no `betflow up` with an embedded broker runs on {}: \
                 stream replay needs Kafka bootstrap servers",
                home.display()
            ))
        })?;
    let pipelines = super::pipeline_settings(settings, Some(&brokers))?;
    let minutes: u32 = pipelines.odds_snapshot_minutes;
    let kafka = (pipelines.live.kafka).expect("brokers given");

    let mut messages: Vec<ReplayMessage> = Vec::new();
    let mut rejected: usize = 0;
    let mut day = from;
    while day <= to {
        for sport in &sports {
            let replayed = replay_day(sport, day, minutes)?;
            rejected += replayed.rejected;
            messages.extend(replayed.messages);
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    // Event-time order; stable, so one snapshot's events keep their order.
    messages.sort_by_key(|m| m.time);
    let mut by_kind: BTreeMap<Kind, usize> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for m in &messages {
        *by_kind.entry(m.kind()).or_default() += 1;
    }
    let counts = |counts: &BTreeMap<Kind, usize>| -> String {
        counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!(
        "replaying {} message(s) ({}; {rejected} source record(s) rejected) for {} sport(s), {from} to {to}, to {brokers}",
        messages.len(),
        counts(&by_kind),
        sports.len(),
    );

    let producer = Producer::new(&kafka)?;
    let topics: Vec<Topic> = sports
        .iter()
        .flat_map(|s| Kind::ALL.map(|k| Topic::new(k, s)))
        .collect();
    producer.ensure_topics(&topics).await?;

    let total = messages.len();
    let mut sent = Sent::default();
    let mut previous: Option<DateTime<Utc>> = None;
    for group in groups(messages) {
        let time = group[0].time;
        if let (Some(speed), Some(prev)) = (args.speed, previous) {
            let gap = (time - prev).to_std().unwrap_or_default();
            tokio::time::sleep(Duration::from_secs_f64(gap.as_secs_f64() / speed)).await;
        }
        previous = Some(time);
        let this: Sent = send_group(&producer, SOURCE, group, Utc::now()).await;
        for (kind, e) in &this.failed {
            tracing::warn!("publishing {kind}: {e}");
        }
        sent.add(this);
        if args.speed.is_some() {
            outln!(
                "{time}: {}/{total} published, {} failed",
                sent.delivered() + sent.failed.len(),
                sent.failed.len()
            );
        }
    }
    let (published, failed) = (sent.delivered(), sent.failed.len());
    let mut published_by_kind: BTreeMap<Kind, usize> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for (kind, n) in &sent.by_kind {
        *published_by_kind.entry(*kind).or_default() += n;
    }
    let retried = producer.stats().retried.load(Ordering::Relaxed);
    outln!(
        "published {published} message(s) of {total} ({}), {failed} failed deliveries, {retried} retries",
        counts(&published_by_kind)
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
