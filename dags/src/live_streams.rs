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
use crate::lake::ObjectStore;
use crate::live::envelope::{TopicScheme, Topics};
use crate::live::kafka::games::games_consumer;
use crate::live::kafka::news::news_consumer;
use crate::live::kafka::odds::odds_consumer;
use crate::live::kafka::weather::weather_consumer;
use crate::live::publish::poll::pollers;
use crate::live::publish::replay::{ReplayPublisher, NAME as REPLAY_PUBLISHER};
use crate::live::publish::SharedProducer;
use streaming::kafka::archive::{ArchiveConsumer, OpenLake};
use streaming::kafka::{partitions_from_env, BROKERS_ENV};

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

/// `BETFLOW_LIVE_PUBLISH`: `auto` (default) publishes from the configured
/// sources; `off` publishes nothing (the topics are fed by another
/// deployment, or a test replays into them itself).
pub const PUBLISH_ENV: &str = "BETFLOW_LIVE_PUBLISH";

/// What feeds the live topics from this deployment.
#[derive(Debug, Clone)]
pub enum Publishing {
    Off,
    /// The replay source's current day, in real time.
    Replay,
    /// The live pollers of these settings.
    Live(Box<Settings>),
}

impl Publishing {
    /// From `BETFLOW_LIVE_PUBLISH` and `BETFLOW_SOURCES`. A bad setting is
    /// logged and publishes nothing rather than stopping every DAG from loading.
    pub fn from_env() -> Self {
        if !publishing_wanted() {
            return Publishing::Off;
        }
        match Settings::from_env() {
            Ok(s) => Publishing::from_settings(&s),
            Err(e) => {
                tracing::error!("live publishers disabled: {e}");
                Publishing::Off
            }
        }
    }

    /// The publishers of `settings`' source mode, unless `BETFLOW_LIVE_PUBLISH=off`.
    pub fn for_settings(settings: &Settings) -> Self {
        if publishing_wanted() {
            Publishing::from_settings(settings)
        } else {
            Publishing::Off
        }
    }

    fn from_settings(settings: &Settings) -> Self {
        match settings.mode {
            SourceMode::Replay => Publishing::Replay,
            SourceMode::Live { .. } => Publishing::Live(Box::new(settings.clone())),
        }
    }
}

/// `BETFLOW_LIVE_PUBLISH`: `auto` (or unset) publishes, `off` does not; any
/// other value is logged and publishes nothing.
fn publishing_wanted() -> bool {
    match std::env::var(PUBLISH_ENV).unwrap_or_default().trim() {
        "" | "auto" => true,
        "off" => false,
        other => {
            tracing::error!(
                "{PUBLISH_ENV}={other:?} is neither `auto` nor `off`; publishing nothing"
            );
            false
        }
    }
}

/// `live_streams`: manual (it has no batch tasks to schedule), streams only.
pub fn live_streams() -> Result<Dag, DagError> {
    live_streams_with(std::env::var(BROKERS_ENV).ok().as_deref())
}

/// `live_streams` for the given bootstrap servers (`None` or blank: no Kafka
/// tasks), publishing as the environment says.
pub fn live_streams_with(brokers: Option<&str>) -> Result<Dag, DagError> {
    let publishing = match brokers.map(str::trim) {
        Some(b) if !b.is_empty() => Publishing::from_env(),
        _ => Publishing::Off,
    };
    live_streams_publishing(brokers, &publishing)
}

/// `live_streams` of a deployment's settings: its publishers and the lake
/// its archive writes to come from them, not from the environment.
pub fn live_streams_for(brokers: Option<&str>, settings: &Arc<Settings>) -> Result<Dag, DagError> {
    let publishing = match brokers.map(str::trim) {
        Some(b) if !b.is_empty() => Publishing::for_settings(settings),
        _ => Publishing::Off,
    };
    let home = settings.home.clone();
    let lake: OpenLake = Arc::new(move || Ok(crate::lake::open_from_env(&home)?));
    build_live_streams(brokers, &publishing, lake)
}

/// `live_streams` with the publishers chosen explicitly.
pub fn live_streams_publishing(
    brokers: Option<&str>,
    publishing: &Publishing,
) -> Result<Dag, DagError> {
    build_live_streams(brokers, publishing, Arc::new(open_archive_lake))
}

fn build_live_streams(
    brokers: Option<&str>,
    publishing: &Publishing,
    archive_lake: OpenLake,
) -> Result<Dag, DagError> {
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
    if let Some(brokers) = brokers.map(str::trim).filter(|b| !b.is_empty()) {
        let producer = Arc::new(SharedProducer::new(brokers, partitions_from_env()));
        let sports: Vec<&'static crate::Sport> = crate::SPORTS.iter().collect();
        match publishing {
            Publishing::Off => {}
            Publishing::Replay => b.stream(
                REPLAY_PUBLISHER,
                Arc::new(ReplayPublisher::new(producer, sports)),
                STREAM_RESTART,
            ),
            Publishing::Live(settings) => {
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
            Arc::new(ArchiveConsumer::new(
                brokers,
                <Topics as TopicScheme>::all(),
                archive_lake,
            )),
            STREAM_RESTART,
        );
    }
    b.build()
}

/// The lake the topic archive writes to, from the environment (tests and
/// tools; the binary hands its settings to [`live_streams_for`]).
fn open_archive_lake() -> Result<Arc<dyn ObjectStore>, TaskError> {
    let settings = crate::ingest::Settings::from_env()?;
    Ok(crate::lake::open_from_env(&settings.home)?)
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
    fn kafka_brokers_add_the_publisher_and_the_consumers() {
        let dag =
            live_streams_publishing(Some("127.0.0.1:9092"), &Publishing::Replay).expect("builds");
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
        let blank = live_streams_publishing(Some("  "), &Publishing::Replay).expect("builds");
        assert_eq!(blank.streams.len(), 1);
        let off =
            live_streams_publishing(Some("127.0.0.1:9092"), &Publishing::Off).expect("builds");
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
        let dag = live_streams_publishing(
            Some("127.0.0.1:9092"),
            &Publishing::Live(Box::new(settings)),
        )
        .expect("builds");
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
