//! The live side: a DAG without a schedule whose stream task group every
//! `betflow` process supervises (started with the process, restarted with
//! backoff, health visible like any task).
//!
//! Its stream tasks: [`Ticker`], a heartbeat that proves the supervision,
//! health reporting and cancellation paths, and, when `KAFKA_BROKERS` is set,
//! one consumer per topic family, each in its own consumer group so they
//! scale and restart independently: `odds_consumer`, `games_consumer`,
//! `weather_consumer` and `news_consumer` (the generic
//! [`streaming::kafka::consumer::KafkaConsumer`] over each sink), and
//! `archive_consumer`, which copies every topic into the lake
//! ([`streaming::kafka::archive`]). With Kafka they also include the
//! publishers ([`crate::live::publish`]): `replay_publisher` offline, the
//! live pollers with `BETFLOW_SOURCES=live`, none with
//! `BETFLOW_LIVE_PUBLISH=off` (when something else feeds the topics).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use orchestrator::dag::DagError;
use orchestrator::{Dag, RetryPolicy, StreamContext, StreamTask, TaskError};
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::ingest::{Settings, SourceMode};
use crate::live::envelope::{TopicScheme, Topics};
use crate::live::kafka::games::games_consumer;
use crate::live::kafka::news::news_consumer;
use crate::live::kafka::odds::odds_consumer;
use crate::live::kafka::weather::weather_consumer;
use crate::live::publish::poll::pollers;
use crate::live::publish::replay::{ReplayPublisher, NAME as REPLAY_PUBLISHER};
use crate::live::publish::SharedProducer;
use streaming::kafka::archive::{ArchiveConsumer, OpenLake};

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

/// What feeds the live topics from this deployment.
#[derive(Debug, Clone)]
pub enum Publishing {
    Off,
    /// The replay source's current day, in real time.
    Replay,
    /// The live pollers of these settings.
    Live,
}

impl Publishing {
    /// The publishers of `settings`' source mode, unless
    /// `BETFLOW_LIVE_PUBLISH=off`.
    pub fn of(settings: &Settings) -> Self {
        match (&settings.live.publish, &settings.mode) {
            (false, _) => Publishing::Off,
            (true, SourceMode::Replay) => Publishing::Replay,
            (true, SourceMode::Live { .. }) => Publishing::Live,
        }
    }
}

/// `live_streams` of a deployment's settings: the ticker always; with a
/// Kafka cluster, its publishers, consumers and the archive.
pub fn live_streams(settings: &Arc<Settings>) -> Result<Dag, DagError> {
    let mut b = Dag::builder(LIVE_STREAMS)
        .description("Long-running stream tasks supervised by every betflow process: a heartbeat ticker and, with KAFKA_BROKERS, the publishers feeding the live topics, the odds, games, weather and news consumers and the raw topic archive")
        .tags(&["stream"]);
    b.stream(
        "ticker",
        Arc::new(Ticker {
            period: Duration::from_secs(1),
        }),
        STREAM_RESTART,
    );
    let live = &settings.live;
    if let Some(hook) = &live.alert_webhook {
        b.stream(
            crate::live::notify::NAME,
            Arc::new(crate::live::notify::AlertNotifier { hook: hook.clone() }),
            STREAM_RESTART,
        );
    }
    if let Some(kafka) = &live.kafka {
        let producer = Arc::new(SharedProducer::new(kafka.clone()));
        let sports: Vec<&'static crate::Sport> = crate::SPORTS.iter().collect();
        match Publishing::of(settings) {
            Publishing::Off => {}
            Publishing::Replay => b.stream(
                REPLAY_PUBLISHER,
                Arc::new(ReplayPublisher::new(producer, sports, live.replay_from)),
                STREAM_RESTART,
            ),
            Publishing::Live => {
                let (tasks, skipped) = pollers(settings, producer, sports);
                for why in skipped {
                    tracing::warn!("live poller left out: {why}");
                }
                for (id, task) in tasks {
                    b.stream(id, task, STREAM_RESTART);
                }
            }
        }
        b.stream(
            "odds_consumer",
            Arc::new(odds_consumer(kafka, live, &settings.rules)),
            STREAM_RESTART,
        );
        b.stream(
            "games_consumer",
            Arc::new(games_consumer(kafka, live)),
            STREAM_RESTART,
        );
        b.stream(
            "weather_consumer",
            Arc::new(weather_consumer(kafka)),
            STREAM_RESTART,
        );
        b.stream(
            "news_consumer",
            Arc::new(news_consumer(kafka, live)),
            STREAM_RESTART,
        );
        let lake_settings = settings.lake.clone();
        let lake: OpenLake = Arc::new(move || Ok(lake_settings.open()?));
        b.stream(
            "archive_consumer",
            Arc::new(ArchiveConsumer::new(
                kafka,
                <Topics as TopicScheme>::all(),
                lake,
            )),
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

    fn with_kafka(mut settings: Settings, brokers: &str, publish: bool) -> Arc<Settings> {
        settings.live.kafka = Some(streaming::kafka::KafkaSettings::new(brokers));
        settings.live.publish = publish;
        Arc::new(settings)
    }

    #[test]
    fn live_streams_is_manual_with_one_stream_and_no_tasks() {
        let settings = Arc::new(Settings::new("/tmp/betflow-test", SourceMode::Replay));
        let dag = live_streams(&settings).expect("builds");
        assert!(dag.schedule.expression().is_none());
        assert!(dag.tasks().is_empty());
        assert_eq!(dag.tags, ["stream"]);
        let ids: Vec<_> = dag.streams.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["ticker"]);
    }

    #[test]
    fn kafka_brokers_add_the_publisher_and_the_consumers() {
        let replay = Settings::new("/tmp/betflow-test", SourceMode::Replay);
        let dag =
            live_streams(&with_kafka(replay.clone(), "127.0.0.1:9092", true)).expect("builds");
        let ids: Vec<_> = dag.streams.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ticker",
                "replay_publisher",
                "odds_consumer",
                "games_consumer",
                "weather_consumer",
                "news_consumer",
                "archive_consumer"
            ]
        );
        let off = live_streams(&with_kafka(replay, "127.0.0.1:9092", false)).expect("builds");
        assert_eq!(off.streams.len(), 6, "consumers only");
    }

    #[test]
    fn live_sources_add_a_poller_per_source_that_has_its_key() {
        let mut settings = Settings::new(
            "/tmp/betflow-test",
            SourceMode::Live {
                base_url: "http://127.0.0.1:9".to_string(),
            },
        );
        settings.odds_api_key = Some(sources::ApiKey::new("k"));
        let dag = live_streams(&with_kafka(settings, "127.0.0.1:9092", true)).expect("builds");
        let ids: Vec<_> = dag.streams.iter().map(|s| s.id.as_str()).collect();
        assert!(ids.contains(&"games_poller"), "{ids:?}");
        assert!(ids.contains(&"odds_poller"), "{ids:?}");
        assert!(ids.contains(&"news_poller"), "{ids:?}");
        assert!(!ids.contains(&"replay_publisher"), "{ids:?}");
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
