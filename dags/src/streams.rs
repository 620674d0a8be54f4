//! The live side: a DAG without a schedule whose stream task group every
//! `betflow` process supervises (started with the process, restarted with
//! backoff, health visible like any task).
//!
//! Its stream tasks: [`Ticker`], a heartbeat that proves the supervision,
//! health reporting and cancellation paths, and, when `KAFKA_BROKERS` is set,
//! one consumer per topic family, each in its own consumer group so they
//! scale and restart independently: `odds_consumer`, `games_consumer`,
//! `weather_consumer` and `news_consumer` (the generic
//! [`crate::stream::kafka::consumer::KafkaConsumer`] over each sink), and
//! `archive_consumer`, which copies every topic into the lake
//! ([`crate::stream::kafka::archive`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use orchestrator::dag::DagError;
use orchestrator::{Dag, RetryPolicy, StreamContext, StreamTask, TaskError};
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::stream::kafka::archive::ArchiveConsumer;
use crate::stream::kafka::games::games_consumer;
use crate::stream::kafka::news::news_consumer;
use crate::stream::kafka::odds::odds_consumer;
use crate::stream::kafka::weather::weather_consumer;
use crate::stream::kafka::BROKERS_ENV;

pub const LIVE_STREAMS: &str = "live_streams";

/// Restart backoff of stream tasks: 1 s, 2 s, 4 s … capped at a minute. The
/// supervisor restarts them for as long as the process lives and reads only
/// the backoff, so `retries` stays 0.
pub const STREAM_RESTART: RetryPolicy = RetryPolicy {
    retries: 0,
    delay: Duration::from_secs(1),
    exponential: true,
    max_delay: Duration::from_secs(60),
};

/// `live_streams`: manual (it has no batch tasks to schedule), streams only.
pub fn live_streams() -> Result<Dag, DagError> {
    live_streams_with(std::env::var(BROKERS_ENV).ok().as_deref())
}

/// `live_streams` for the given bootstrap servers (`None` or blank: no Kafka tasks).
pub fn live_streams_with(brokers: Option<&str>) -> Result<Dag, DagError> {
    let mut b = Dag::builder(LIVE_STREAMS)
        .description("Long-running stream tasks supervised by every betflow process: a heartbeat ticker and, with KAFKA_BROKERS, the odds, games, weather and news consumers and the raw topic archive")
        .tags(&["stream"])
        .fileloc(file!());
    b.stream(
        "ticker",
        Arc::new(Ticker {
            period: Duration::from_secs(1),
        }),
        STREAM_RESTART,
    );
    if let Some(brokers) = brokers.map(str::trim).filter(|b| !b.is_empty()) {
        b.stream(
            "odds_consumer",
            Arc::new(odds_consumer(brokers)),
            STREAM_RESTART,
        );
        b.stream(
            "games_consumer",
            Arc::new(games_consumer(brokers)),
            STREAM_RESTART,
        );
        b.stream(
            "weather_consumer",
            Arc::new(weather_consumer(brokers)),
            STREAM_RESTART,
        );
        b.stream(
            "news_consumer",
            Arc::new(news_consumer(brokers)),
            STREAM_RESTART,
        );
        b.stream(
            "archive_consumer",
            Arc::new(ArchiveConsumer::new(brokers)),
            STREAM_RESTART,
        );
    }
    b.build()
}

/// Ticks every `period` and reports `{"ticks": n, "last_tick": rfc3339}` as
/// its health, until cancelled.
#[derive(Debug, Clone)]
pub struct Ticker {
    pub period: Duration,
}

#[async_trait]
impl StreamTask for Ticker {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        tick(self.period, &ctx.cancel, |health| ctx.report(health)).await
    }
}

/// The ticker's loop, apart from [`StreamContext`] (whose health cell only
/// the orchestrator can create) so tests can drive it. The first tick is
/// immediate; a late tick is not made up for (a heartbeat counts real ticks).
/// Returns as soon as `cancel` fires, even mid-period.
pub async fn tick(
    period: Duration,
    cancel: &CancellationToken,
    mut report: impl FnMut(Value),
) -> Result<(), TaskError> {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    report(json!({"ticks": ticks, "last_tick": null}));
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            _ = interval.tick() => {
                ticks += 1;
                report(json!({
                    "ticks": ticks,
                    "last_tick": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;

    #[test]
    fn live_streams_is_manual_with_one_stream_and_no_tasks() {
        let dag = live_streams_with(None).expect("builds");
        assert!(dag.schedule.expression().is_none());
        assert!(dag.tasks().is_empty());
        assert_eq!(dag.tags, ["stream"]);
        let ids: Vec<_> = dag.streams.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["ticker"]);
    }

    #[test]
    fn kafka_brokers_add_the_consumers() {
        let dag = live_streams_with(Some("127.0.0.1:9092")).expect("builds");
        let ids: Vec<_> = dag.streams.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ticker",
                "odds_consumer",
                "games_consumer",
                "weather_consumer",
                "news_consumer",
                "archive_consumer"
            ]
        );
        let blank = live_streams_with(Some("  ")).expect("builds");
        assert_eq!(blank.streams.len(), 1);
    }

    #[tokio::test]
    async fn ticker_counts_ticks_and_stops_promptly_when_cancelled() {
        let cancel = CancellationToken::new();
        let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
        let sink = seen.clone();
        let token = cancel.clone();
        let started = Instant::now();
        let run = tokio::spawn(async move {
            tick(Duration::from_secs(1), &token, move |h| {
                sink.lock().unwrap().push(h)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let cancelled_at = Instant::now();
        let ran = started.elapsed();
        cancel.cancel();
        run.await.expect("no panic").expect("clean exit");
        assert!(
            cancelled_at.elapsed() < Duration::from_millis(500),
            "took {:?} to stop",
            cancelled_at.elapsed()
        );

        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], json!({"ticks": 0, "last_tick": null}));
        let last = seen.last().unwrap();
        // Ticks at 0 s and 1 s within 1.5 s; a loaded machine may oversleep.
        let ticks = last["ticks"].as_u64().unwrap();
        let most = 1 + ran.as_secs();
        assert!(
            (2..=most.max(2)).contains(&ticks),
            "{ticks} ticks in {ran:?}: {seen:?}"
        );
        assert_eq!(
            seen.len() as u64,
            ticks + 1,
            "one report per tick after the initial one"
        );
        let at = last["last_tick"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    }
}
