//! `/streams`: every supervised stream task (one row per task and process)
//! with its state, restarts, last error and health JSON, and for Kafka
//! consumers their lag per partition and throughput. The table re-fetches
//! itself from `/streams/live` every 5 s, since stream health changes
//! continuously.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use orchestrator::store::read::StreamTaskRow;
use orchestrator::StreamState;

use super::{dag_url, fmt_duration, fmt_time, pretty_json, render, Nav};
use crate::auth::extract::PageUser;
use crate::metrics::{messages_applied, partition_lags, PartitionLag};
use crate::problem::Problem;
use crate::AppState;

/// Heartbeats older than this mean the supervising process is gone (it
/// records health every second while the task runs).
const STALE_SECS: f64 = 30.0;

/// Two samples closer than this are not turned into a rate: a second view
/// of the page right after another would divide a few messages by a few
/// milliseconds of heartbeat.
const MIN_SAMPLE_SECS: f64 = 1.0;

pub fn routes() -> Router<AppState> {
    // The samples live with the router: a rate needs the sample of the
    // previous view, and only these two handlers read them, so `AppState`
    // keeps to what every page needs.
    Router::new()
        .route("/streams", get(streams_page))
        .route("/streams/live", get(streams_fragment))
        .layer(Extension(Arc::new(Throughput::default())))
}

/// A stream task's place: one row of `stream_tasks`.
type StreamKey = (String, String, String);

/// One reading of a consumer's `messages` counter.
struct Sample {
    /// When the supervisor wrote the health holding `messages`: the database
    /// stamps it, so the rate does not depend on when the page was viewed.
    at: DateTime<Utc>,
    /// A new `started_at` means the task restarted and its counter with it.
    started_at: DateTime<Utc>,
    messages: u64,
    /// Messages per second between the previous sample and this one.
    rate: Option<f64>,
}

/// The last `messages` sample of each consumer seen by this web process.
/// Health holds only a lifetime counter, and a lifetime average would hide a
/// consumer that has stalled, so the rate is the counter's change between
/// the health seen at one page view (or poll) and the next, over the
/// heartbeats that wrote them.
#[derive(Default)]
struct Throughput {
    samples: Mutex<HashMap<StreamKey, Sample>>,
}

impl Throughput {
    /// Record the rows' counters and return each row's rate, `None` until a
    /// consumer has been seen twice since it started. Rows no longer listed
    /// are forgotten, so the map stays as small as the table.
    fn observe(&self, rows: &[StreamTaskRow]) -> Vec<Option<f64>> {
        let mut samples = match self.samples.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let rates = rows
            .iter()
            .map(|r| {
                let messages = messages_applied(&r.health)?;
                let key = (r.dag_id.clone(), r.task_id.clone(), r.worker_id.clone());
                let (rate, replace) = match samples.get(&key) {
                    Some(prev) if prev.started_at == r.started_at && messages >= prev.messages => {
                        let secs = secs_between(prev.at, r.heartbeat_at);
                        if secs < MIN_SAMPLE_SECS {
                            // Keep measuring from the older sample.
                            (prev.rate, false)
                        } else {
                            (Some((messages - prev.messages) as f64 / secs), true)
                        }
                    }
                    // First sighting, or the task restarted and its counter
                    // went back to zero: nothing to measure against yet.
                    _ => (None, true),
                };
                if replace {
                    samples.insert(
                        key,
                        Sample {
                            at: r.heartbeat_at,
                            started_at: r.started_at,
                            messages,
                            rate,
                        },
                    );
                }
                // A stopped or silent process's last rate is not its current one.
                rate.filter(|_| is_live(r))
            })
            .collect();
        samples.retain(|(d, t, w), _| {
            rows.iter()
                .any(|r| &r.dag_id == d && &r.task_id == t && &r.worker_id == w)
        });
        rates
    }
}

/// Still supervised by a process that heartbeats.
fn is_live(r: &StreamTaskRow) -> bool {
    r.state != StreamState::Stopped && r.heartbeat_age_secs <= STALE_SECS
}

fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// `12.3 msg/s`; whole numbers once the rate is large enough that tenths
/// are noise.
fn fmt_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0} msg/s")
    } else {
        format!("{rate:.1} msg/s")
    }
}

struct StreamView {
    dag_id: String,
    dag_href: String,
    task_id: String,
    worker: String,
    state: StreamState,
    restarts: i32,
    last_error: String,
    health_json: String,
    started: String,
    heartbeat_age: String,
    stale: bool,
    /// `None` for tasks that are not Kafka consumers: no lag table at all.
    lag: Option<Vec<PartitionLag>>,
    lag_total: i64,
    /// Empty when the task reports no message counter.
    throughput: String,
    /// A live counter seen only once: the rate is coming, not missing.
    throughput_pending: bool,
}

fn view(r: StreamTaskRow, rate: Option<f64>) -> StreamView {
    let lag = partition_lags(&r.health);
    let lag_total = lag.iter().flatten().map(|p| p.lag).sum();
    let live = is_live(&r);
    let counted = messages_applied(&r.health).is_some();
    StreamView {
        dag_href: dag_url(&r.dag_id),
        worker: match &r.hostname {
            Some(h) => format!("{h} / {}", r.worker_id),
            None => r.worker_id.clone(),
        },
        stale: r.state != StreamState::Stopped && !live,
        heartbeat_age: fmt_duration(Some(r.heartbeat_age_secs.max(0.0))),
        started: fmt_time(Some(r.started_at)),
        health_json: pretty_json(&r.health),
        last_error: r.last_error.unwrap_or_default(),
        restarts: r.restarts,
        lag,
        lag_total,
        throughput: rate.map(fmt_rate).unwrap_or_default(),
        throughput_pending: live && counted && rate.is_none(),
        state: r.state,
        dag_id: r.dag_id,
        task_id: r.task_id,
    }
}

/// The live rows and the stopped ones, in the store's order.
async fn load(
    state: &AppState,
    throughput: &Throughput,
) -> Result<(Vec<StreamView>, Vec<StreamView>), Problem> {
    let rows = state.store.stream_tasks().await?;
    let rates = throughput.observe(&rows);
    Ok(rows
        .into_iter()
        .zip(rates)
        .map(|(r, rate)| view(r, rate))
        .partition(|s| s.state != StreamState::Stopped))
}

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsPage {
    nav: Nav,
    streams: Vec<StreamView>,
    /// Rows of processes that exited cleanly: kept for their last health
    /// and errors, shown apart so they do not crowd the live ones.
    stopped: Vec<StreamView>,
    /// "Kafka broker 127.0.0.1:9092 answers" or why not; empty without Kafka.
    broker: String,
    broker_up: bool,
}

/// What the page polls: the same markup as the page's `#streams`, so a swap
/// leaves the page as a reload would.
#[derive(Template)]
#[template(path = "streams_fragment.html")]
struct StreamsFragment {
    streams: Vec<StreamView>,
    stopped: Vec<StreamView>,
}

async fn streams_page(
    user: PageUser,
    State(state): State<AppState>,
    Extension(throughput): Extension<Arc<Throughput>>,
) -> Result<Response, Problem> {
    let (streams, stopped) = load(&state, &throughput).await?;
    let kafka = crate::health::kafka_status(state.kafka_bootstrap.as_deref()).await;
    let broker_up = kafka["status"] == "healthy";
    let broker = match kafka["bootstrap"].as_str() {
        None => String::new(),
        Some(b) if broker_up => format!("Kafka broker {b} answers."),
        Some(b) => format!(
            "Kafka broker {b} does not answer: consumers and publishers retry until it is back."
        ),
    };
    let page = StreamsPage {
        nav: Nav::new(&user, "streams"),
        streams,
        stopped,
        broker,
        broker_up,
    };
    Ok(render(&page, StatusCode::OK))
}

async fn streams_fragment(
    _user: PageUser,
    State(state): State<AppState>,
    Extension(throughput): Extension<Arc<Throughput>>,
) -> Result<Response, Problem> {
    let (streams, stopped) = load(&state, &throughput).await?;
    Ok(render(
        &StreamsFragment { streams, stopped },
        StatusCode::OK,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    fn row(at: DateTime<Utc>, started_at: DateTime<Utc>, messages: u64) -> StreamTaskRow {
        StreamTaskRow {
            dag_id: "d".into(),
            task_id: "c".into(),
            worker_id: "w".into(),
            hostname: None,
            state: StreamState::Running,
            restarts: 0,
            last_error: None,
            health: json!({"messages": messages, "lag": {"t/0": 1}}),
            started_at,
            heartbeat_at: at,
            heartbeat_age_secs: 0.5,
        }
    }

    #[test]
    fn throughput_is_the_counter_change_over_the_heartbeat_gap() {
        let t = Throughput::default();
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        assert_eq!(t.observe(&[row(t0, t0, 100)]), vec![None]);
        let t1 = t0 + Duration::seconds(4);
        assert_eq!(t.observe(&[row(t1, t0, 300)]), vec![Some(50.0)]);
        // Seen again before the next heartbeat: the same rate, not a new one.
        assert_eq!(t.observe(&[row(t1, t0, 300)]), vec![Some(50.0)]);
        // Idle: the counter stands still, so the rate drops to zero.
        let t2 = t1 + Duration::seconds(5);
        assert_eq!(t.observe(&[row(t2, t0, 300)]), vec![Some(0.0)]);
    }

    #[test]
    fn a_restart_starts_the_rate_over() {
        let t = Throughput::default();
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        t.observe(&[row(t0, t0, 1_000)]);
        let t1 = t0 + Duration::seconds(10);
        // Counter back near zero under a new start: no negative rate.
        assert_eq!(t.observe(&[row(t1, t1, 20)]), vec![None]);
        let t2 = t1 + Duration::seconds(2);
        assert_eq!(t.observe(&[row(t2, t1, 60)]), vec![Some(20.0)]);
    }

    #[test]
    fn a_gap_too_short_to_measure_keeps_the_older_sample() {
        let t = Throughput::default();
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        t.observe(&[row(t0, t0, 0)]);
        let half = t0 + Duration::milliseconds(500);
        assert_eq!(t.observe(&[row(half, t0, 5)]), vec![None]);
        let t1 = t0 + Duration::seconds(2);
        assert_eq!(t.observe(&[row(t1, t0, 20)]), vec![Some(10.0)]);
    }

    #[test]
    fn rows_gone_from_the_table_are_forgotten() {
        let t = Throughput::default();
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        t.observe(&[row(t0, t0, 0)]);
        t.observe(&[]);
        assert!(t.samples.lock().unwrap().is_empty());
    }

    #[test]
    fn tasks_without_lag_or_counter_get_neither() {
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let mut ticker = row(t0, t0, 0);
        ticker.health = json!({"ticks": 3});
        let v = view(ticker, None);
        assert!(v.lag.is_none());
        assert!(v.throughput.is_empty() && !v.throughput_pending);
        let v = view(row(t0, t0, 7), None);
        assert_eq!(v.lag_total, 1);
        assert!(v.throughput_pending);
        assert_eq!(fmt_rate(2.345), "2.3 msg/s");
        assert_eq!(fmt_rate(1234.4), "1234 msg/s");
    }
}
