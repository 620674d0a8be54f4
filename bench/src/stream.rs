//! `betflow bench stream`: the odds processor under load, end to end through
//! a real broker and Postgres. Prints figures; asserts nothing.
//!
//! 1. Throughput: a backlog of odds updates is produced first, then the odds
//!    consumer (the same stream task `live_streams` runs) drains it; the
//!    rate is updates applied per second between its first and last health
//!    reports.
//! 2. Latency: updates are produced at a steady rate while a watcher polls
//!    `serving.odds_latest`; each update's latency is from the producer
//!    stamping its envelope (`ingest_time`, just before the send) to the
//!    watcher first seeing its row or a newer one of its event (an update
//!    overtaken before a poll saw it still counts, with its own, longer
//!    wait), so it includes up to one poll interval.
//! 3. Memory: the process's RSS (producer, consumer and watcher) is sampled
//!    every second of the steady run and printed as a mean per minute; flat
//!    means the minutes stay level. The watcher counts latencies in fixed
//!    buckets ([`super::histogram`]), so its own memory does not grow.
//!
//! One update is one message: one event, one bookmaker, the h2h market
//! with two prices, keyed by event id over a fixed set of events.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::histogram::Histogram;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use dags::live::envelope::{encode, Envelope, Kind, Topic, SCHEMA_VERSION};
use dags::live::kafka::odds::OddsSink;
use dags::live::odds::OddsPayload;
use dags::live_streams::STREAM_RESTART;
use futures_util::StreamExt;
use orchestrator::cpus::EngineCpus;
use orchestrator::setting::ProcessEnv;
use orchestrator::{Dag, DagBag, Store};
use serde::Serialize;
use sources::odds_api::{Bookmaker, Market, OddsEvent, OddsFormat, Outcome};
use sqlx::postgres::PgPool;
use streaming::kafka::consumer::KafkaConsumer;
use streaming::kafka::producer::Producer;
use streaming::kafka::KafkaSettings;
use tokio_util::sync::CancellationToken;

use super::process::{peak_rss, rss};
use services::broker::{BrokerLog, EmbeddedBroker, INSTALL_HINT};
use services::database::Database;

const DAG: &str = "bench_stream";
const TASK: &str = "odds_consumer";
/// How often the watcher looks for new rows.
const WATCH_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub backlog: usize,
    pub rate: u32,
    pub seconds: u64,
    pub events: usize,
    pub linger_ms: u64,
}

#[derive(Serialize)]
struct Report {
    partitions: i32,
    events: usize,
    backlog_updates: usize,
    produce_per_sec: f64,
    drain_secs: f64,
    throughput_per_sec: f64,
    target_throughput_per_sec: f64,
    steady_rate_per_sec: u32,
    steady_secs: u64,
    producer_linger_ms: u64,
    steady_sent: usize,
    latency_samples: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    target_p99_ms: f64,
    watch_interval_ms: u64,
    rss_first_minute_mib: f64,
    rss_last_minute_mib: f64,
    rss_max_mib: f64,
    rss_peak_mib: f64,
    /// Mean RSS of each minute of the steady run, to judge "flat".
    rss_by_minute_mib: Vec<f64>,
}

/// The stream tasks' supervisor: on the process's runtime, or placed on
/// the engine's CPUs on a thread and runtime of its own, as `betflow up`'s
/// engine runs them under `BETFLOW_ENGINE_CPUS`.
enum Supervisor {
    Shared(tokio::task::JoinHandle<()>),
    Placed(std::thread::JoinHandle<()>),
}

impl Supervisor {
    fn start(
        db: &Database,
        bag: DagBag,
        worker: String,
        shutdown: CancellationToken,
        placed: Option<EngineCpus>,
    ) -> Result<Self> {
        const GRACE: Duration = Duration::from_secs(10);
        let Some(placed) = placed else {
            let store = db.store.clone();
            let supervise =
                orchestrator::stream::supervise_all(store, bag, worker, shutdown, GRACE);
            return Ok(Self::Shared(tokio::spawn(supervise)));
        };
        let cpus = placed.placement.engine.clone();
        let runtime = placed.runtime()?;
        let url = db.url.clone();
        let backends = placed.backends.then(|| cpus.clone());
        Ok(Self::Placed(std::thread::spawn(move || {
            if let Err(e) = cpus.pin_this_thread() {
                tracing::warn!("{e}");
            }
            runtime.block_on(async move {
                match Store::connect_engine(&url, 20, backends).await {
                    Ok(store) => {
                        orchestrator::stream::supervise_all(store, bag, worker, shutdown, GRACE)
                            .await
                    }
                    Err(e) => tracing::error!("the consumer's pool: {e}"),
                }
            });
        })))
    }

    async fn join(self) {
        match self {
            Self::Shared(task) => {
                let _ = task.await;
            }
            Self::Placed(thread) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }
}

/// With `cpus` (`BETFLOW_ENGINE_CPUS`), the consumer runs as `betflow up`
/// would run it, on the engine's CPUs with its Postgres backends, and the
/// broker, the cluster's other processes and the load generator on the
/// others.
pub async fn run(
    home: &Path,
    as_json: bool,
    opts: Options,
    cpus: Option<EngineCpus>,
) -> Result<ExitCode> {
    if opts.events == 0 || opts.rate == 0 || opts.seconds == 0 {
        bail!("--events, --rate and --seconds must be positive");
    }
    let bench_home = home.join("bench");
    std::fs::create_dir_all(&bench_home)
        .with_context(|| format!("creating {}", bench_home.display()))?;
    if let Some(placed) = &cpus {
        // Before the broker and the cluster start, as `up` does.
        placed.placement.rest.pin_this_process()?;
    }
    let broker = EmbeddedBroker::start_if_wanted(&bench_home, BrokerLog::Memory)?;
    let brokers: String = match (&broker, std::env::var("KAFKA_BROKERS")) {
        (Some(b), _) => b.bootstrap.clone(),
        (None, Ok(b)) if !b.trim().is_empty() => {
            eprintln!("note: producing to betflow.odds.nba on {b}; use a cluster of its own for benchmarks");
            b
        }
        _ => bail!("bench stream needs a Kafka broker: install tansu (`{INSTALL_HINT}`) or set KAFKA_BROKERS"),
    };
    let run_id: String = format!("bench-{}", Utc::now().format("%Y%m%d%H%M%S"));
    let kafka = KafkaSettings::resolve(&brokers, &ProcessEnv)?;
    let mut config = kafka.consumer("odds");
    config.group_id = format!("{run_id}-odds");
    let mut dag = Dag::builder(DAG)
        .description("bench stream")
        .tags(&["bench"]);
    dag.stream(
        TASK,
        Arc::new(KafkaConsumer::new(config, OddsSink::default())),
        STREAM_RESTART,
    );
    let mut bag = DagBag::new();
    bag.add(dag.build()?);
    let db = Database::open_isolated(&bench_home, &bag).await?;
    let pool: PgPool = db.pool.clone();
    let placed: Option<EngineCpus> = match cpus {
        Some(mut placed) => {
            db.place_cluster(&placed.placement.rest)?;
            placed.backends &= db.is_embedded();
            if !as_json {
                println!(
                    "the consumer on CPUs {}{}, the broker, the cluster's other processes and the load on {} (BETFLOW_ENGINE_CPUS)",
                    placed.placement.engine,
                    if placed.backends { " with its Postgres backends" } else { "" },
                    placed.placement.rest
                );
            }
            Some(placed)
        }
        None => None,
    };

    let topic = Topic::new(Kind::Odds, dags::sport("nba").context("nba")?);
    let producer = Producer::with_linger(&kafka, opts.linger_ms)?;
    producer.ensure_topics(&[topic]).await?;
    let gen = Updates::new(&run_id, opts.events);

    // 1. Backlog, then drain.
    if !as_json {
        println!(
            "producing a backlog of {} updates over {} events…",
            opts.backlog, opts.events
        );
    }
    let started = Instant::now();
    futures_util::stream::iter(0..opts.backlog)
        .map(|i| {
            let producer = producer.clone();
            let (key, value) = gen.encode(i, Utc::now());
            async move {
                producer
                    .send_raw(&topic.to_string(), Some(&key), &value)
                    .await
            }
        })
        .buffered(20_000)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!("bench send: {e}");
            }
        })
        .await;
    let produce_per_sec = opts.backlog as f64 / started.elapsed().as_secs_f64();
    if !as_json {
        println!("  produced at {produce_per_sec:.0}/s; starting the odds consumer");
    }
    let shutdown = CancellationToken::new();
    let worker: String = format!("{run_id}-worker");
    let supervisor = Supervisor::start(&db, bag.clone(), worker.clone(), shutdown.clone(), placed)?;
    let (drain_secs, throughput) = drain(&pool, &worker, opts.backlog).await?;
    if !as_json {
        println!("  drained in {drain_secs:.1} s: {throughput:.0} updates/s");
        println!(
            "steady load: {} updates/s for {} s, watching serving.odds_latest every {} ms…",
            opts.rate,
            opts.seconds,
            WATCH_EVERY.as_millis()
        );
    }

    // 2 and 3. Steady rate, latency and memory.
    let steady = steady(&producer, topic, &gen, &pool, opts).await?;
    shutdown.cancel();
    supervisor.join().await;
    cleanup(&pool, &run_id).await?;
    db.close().await?;
    // Clients first: a broker gone under them is logged as an error.
    drop(producer);
    drop(broker);

    let lat: Histogram = steady.latencies;
    let minute = |samples: &[f64]| -> f64 {
        if samples.is_empty() {
            f64::NAN
        } else {
            samples.iter().sum::<f64>() / samples.len() as f64
        }
    };
    let n = steady.rss_mib.len();
    let window = n.clamp(1, 60);
    let report = Report {
        partitions: kafka.partitions,
        events: opts.events,
        backlog_updates: opts.backlog,
        produce_per_sec,
        drain_secs,
        throughput_per_sec: throughput,
        target_throughput_per_sec: 50_000.0,
        steady_rate_per_sec: opts.rate,
        steady_secs: opts.seconds,
        producer_linger_ms: opts.linger_ms,
        steady_sent: steady.sent,
        latency_samples: lat.len() as usize,
        latency_p50_ms: lat.quantile_ms(0.50),
        latency_p99_ms: lat.quantile_ms(0.99),
        latency_max_ms: lat.max_ms(),
        target_p99_ms: 500.0,
        watch_interval_ms: WATCH_EVERY.as_millis() as u64,
        rss_first_minute_mib: minute(&steady.rss_mib[..window.min(n)]),
        rss_last_minute_mib: minute(&steady.rss_mib[n.saturating_sub(window)..]),
        rss_max_mib: steady.rss_mib.iter().copied().fold(0.0, f64::max),
        rss_peak_mib: peak_rss() as f64 / 1024.0 / 1024.0,
        rss_by_minute_mib: steady.rss_mib.chunks(60).map(minute).collect(),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report) {
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!(
        "throughput: {:.0} updates/s through the odds processor (target {:.0}/s: {})",
        r.throughput_per_sec,
        r.target_throughput_per_sec,
        mark(r.throughput_per_sec >= r.target_throughput_per_sec)
    );
    println!(
        "latency at {}/s, producer lingering {} ms ({} samples of {} sent): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 < {:.0} ms: {}; includes up to {} ms of polling)",
        r.steady_rate_per_sec,
        r.producer_linger_ms,
        r.latency_samples,
        r.steady_sent,
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latency_max_ms,
        r.target_p99_ms,
        mark(r.latency_p99_ms < r.target_p99_ms),
        r.watch_interval_ms
    );
    println!(
        "RSS over {} s: first minute {:.0} MiB, last minute {:.0} MiB, max {:.0} MiB (process peak {:.0} MiB, backlog included)",
        r.steady_secs, r.rss_first_minute_mib, r.rss_last_minute_mib, r.rss_max_mib, r.rss_peak_mib
    );
    let by_minute: Vec<String> = r
        .rss_by_minute_mib
        .iter()
        .map(|m| format!("{m:.0}"))
        .collect();
    println!("RSS by minute (MiB): {}", by_minute.join(" "));
}

/// Deterministic updates: event `i % events`, prices walking around evens.
struct Updates {
    run_id: String,
    events: usize,
    commence: DateTime<Utc>,
}

impl Updates {
    fn new(run_id: &str, events: usize) -> Self {
        Self {
            run_id: run_id.to_string(),
            events,
            commence: Utc::now() + TimeDelta::hours(6),
        }
    }

    fn event_id(&self, i: usize) -> String {
        format!("{}-{}", self.run_id, i % self.events)
    }

    fn encode(&self, i: usize, now: DateTime<Utc>) -> (Vec<u8>, Vec<u8>) {
        // Prices between 1.70 and 2.30 that change every update of an event.
        let step = ((i / self.events) % 60) as f64 / 100.0;
        let (home, away) = (1.70 + step, 2.30 - step);
        let price = |name: &str, price: f64| Outcome {
            name: name.to_string(),
            price,
            point: None,
            description: None,
        };
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            source: "bench".to_string(),
            sport: "nba".to_string(),
            kind: Kind::Odds,
            event_time: now,
            ingest_time: now,
            payload: OddsPayload {
                odds_format: OddsFormat::Decimal,
                event: OddsEvent {
                    id: self.event_id(i),
                    sport_key: Some("basketball_nba".to_string()),
                    sport_title: None,
                    commence_time: self.commence,
                    home_team: "Home".to_string(),
                    away_team: "Away".to_string(),
                    bookmakers: vec![Bookmaker {
                        key: "bench_book".to_string(),
                        title: None,
                        last_update: None,
                        markets: vec![Market {
                            key: "h2h".to_string(),
                            last_update: None,
                            outcomes: vec![price("Home", home), price("Away", away)],
                        }],
                    }],
                },
            },
        };
        encode(&envelope).expect("a bench envelope encodes")
    }
}

/// Messages this run's consumer reports applied, from its health row.
async fn applied(pool: &PgPool, worker: &str) -> Result<u64> {
    let n: Option<String> = sqlx::query_scalar(
        "SELECT health->>'messages' FROM stream_tasks
         WHERE dag_id = $1 AND task_id = $2 AND worker_id = $3",
    )
    .bind(DAG)
    .bind(TASK)
    .bind(worker)
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(n.and_then(|n| n.parse().ok()).unwrap_or(0))
}

/// Waits until `backlog` messages are applied; (seconds from the first to
/// the last health report that moved, updates per second over them).
async fn drain(pool: &PgPool, worker: &str, backlog: usize) -> Result<(f64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, u64)> = None;
    let mut last: u64 = 0;
    loop {
        let n = applied(pool, worker).await?;
        if n > last {
            last = n;
            if first.is_none() {
                first = Some((Instant::now(), n));
            }
        }
        if n >= backlog as u64 {
            let (t0, n0) = first.unwrap_or((Instant::now(), 0));
            let secs = t0.elapsed().as_secs_f64();
            let rate = if secs > 0.0 {
                (n - n0) as f64 / secs
            } else {
                f64::NAN
            };
            return Ok((secs, rate));
        }
        if Instant::now() > deadline {
            bail!("the odds consumer applied {n} of {backlog} updates in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Ingest times (µs) of the steady phase's updates not seen yet, per event.
type Pending = Arc<std::sync::Mutex<HashMap<String, std::collections::VecDeque<i64>>>>;

struct Steady {
    sent: usize,
    latencies: Histogram,
    rss_mib: Vec<f64>,
}

async fn steady(
    producer: &Producer,
    topic: Topic,
    gen: &Updates,
    pool: &PgPool,
    opts: Options,
) -> Result<Steady> {
    let stop = CancellationToken::new();
    let pending: Pending = Arc::default();
    let watcher = tokio::spawn(watch(
        pool.clone(),
        gen.run_id.clone(),
        pending.clone(),
        stop.clone(),
    ));
    let rss_stop = stop.clone();
    let sampler = tokio::spawn(async move {
        let mut samples: Vec<f64> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = rss_stop.cancelled() => return samples,
                _ = tick.tick() => samples.push(rss() as f64 / 1024.0 / 1024.0),
            }
        }
    });
    // Sends in 10 ms slices; each slice's sends run concurrently.
    let per_slice: usize = (opts.rate as usize).div_ceil(100);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(opts.seconds);
    let name = topic.to_string();
    let mut sent: usize = 0;
    let mut inflight = futures_util::stream::FuturesUnordered::new();
    let mut i: usize = opts.backlog;
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {
                for _ in 0..per_slice {
                    // Postgres keeps microseconds: stamp no finer.
                    let now: DateTime<Utc> =
                        DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
                            .unwrap_or_else(Utc::now);
                    if let Ok(mut p) = pending.lock() {
                        p.entry(gen.event_id(i)).or_default().push_back(now.timestamp_micros());
                    }
                    let (key, value) = gen.encode(i, now);
                    i += 1;
                    let producer = producer.clone();
                    let name = name.clone();
                    inflight.push(async move { producer.send_raw(&name, Some(&key), &value).await });
                }
            }
            Some(r) = inflight.next() => {
                match r {
                    Ok(_) => sent += 1,
                    Err(e) => tracing::warn!("bench send: {e}"),
                }
            }
        }
    }
    while let Some(r) = inflight.next().await {
        if r.is_ok() {
            sent += 1;
        }
    }
    // Let the last updates land before the watcher stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let latencies = watcher.await.context("watcher")??;
    let rss_mib = sampler.await.context("rss sampler")?;
    Ok(Steady {
        sent,
        latencies,
        rss_mib,
    })
}

/// Polls the bench events' rows; a row with a newer `ingest_time` than
/// last seen gives a latency sample (now − ingest time) for every pending
/// update of its event up to that time.
async fn watch(
    pool: PgPool,
    run_id: String,
    pending: Pending,
    stop: CancellationToken,
) -> Result<Histogram> {
    let pattern = format!("{run_id}-%");
    let mut seen: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut out = Histogram::default();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(out),
            _ = tick.tick() => {}
        }
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT event_id, ingest_time FROM serving.odds_latest
             WHERE event_id LIKE $1 AND outcome = 'home'",
        )
        .bind(&pattern)
        .fetch_all(&pool)
        .await?;
        let now: DateTime<Utc> = Utc::now();
        let Ok(mut pending) = pending.lock() else {
            bail!("the load generator panicked");
        };
        for (event, ingest) in rows {
            if seen.get(&event).is_some_and(|t| ingest <= *t) {
                continue;
            }
            let upto: i64 = ingest.timestamp_micros();
            if let Some(queue) = pending.get_mut(&event) {
                while let Some(&sent) = queue.front().filter(|sent| **sent <= upto) {
                    queue.pop_front();
                    out.record((now.timestamp_micros() - sent) as f64 / 1000.0);
                }
            }
            seen.insert(event, ingest);
        }
    }
}

/// Removes what the bench wrote to the serving tables and its checkpoints.
async fn cleanup(pool: &PgPool, run_id: &str) -> Result<()> {
    let pattern = format!("{run_id}-%");
    for sql in [
        "DELETE FROM serving.odds_latest WHERE event_id LIKE $1",
        "DELETE FROM serving.odds_windows WHERE event_id LIKE $1",
        "DELETE FROM serving.arbitrage_alerts WHERE event_id LIKE $1",
        "DELETE FROM serving.consumer_checkpoints WHERE group_id LIKE $1",
        // Keys are bytes, and not every dead letter's is UTF-8.
        "DELETE FROM serving.dead_letter WHERE message_key LIKE convert_to($1, 'UTF8')",
    ] {
        sqlx::query(sql).bind(&pattern).execute(pool).await?;
    }
    Ok(())
}
