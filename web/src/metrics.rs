//! `/metrics`: orchestration state in the Prometheus text format, read from
//! the metadata database at scrape time.
//!
//! Like `/health`, it needs no login: it is for scrapers (the role Airflow's
//! statsd exporter plays), and it shows only counts, durations and ids of
//! DAGs, tasks and processes, never conf, logs or connection URLs. With
//! `BETFLOW_METRICS_TOKEN` set it answers only scrapers that send that
//! token (`Authorization: Bearer …`), for deployments where DAG ids, worker
//! ids and host names are not for everyone.
//!
//! Every value is computed by the database from the same tables the
//! scheduler writes; nothing is kept in process memory, so any process
//! serving the web UI reports the state of the whole deployment.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use orchestrator::{StreamState, TaskState};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::problem::Problem;
use crate::AppState;

/// One partition's lag as a Kafka consumer reports it in its health
/// (`"lag": {"topic/partition": n}`), parsed here once so `/metrics` and the
/// streams page cannot disagree about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionLag {
    pub topic: String,
    /// Kept as text: it is a label here and a cell on the page, and a key
    /// without a `/` still shows up rather than vanishing.
    pub partition: String,
    pub lag: i64,
}

/// `None` when the health has no `lag` object: the task is not a Kafka
/// consumer (the ticker, the archive), which is not the same as a consumer
/// with no partitions assigned yet (`Some(vec![])`). Sorted by topic, then
/// partition as a number, since the JSON keys sort `10` before `2`.
pub(crate) fn partition_lags(health: &Value) -> Option<Vec<PartitionLag>> {
    let lag = health.get("lag")?.as_object()?;
    let mut parts: Vec<PartitionLag> = lag
        .iter()
        .map(|(key, n)| {
            let (topic, partition) = key.rsplit_once('/').unwrap_or((key.as_str(), ""));
            PartitionLag {
                topic: topic.to_owned(),
                partition: partition.to_owned(),
                lag: n.as_i64().unwrap_or(0),
            }
        })
        .collect();
    parts.sort_by(|a, b| {
        (
            a.topic.as_str(),
            a.partition.parse::<i64>().ok(),
            a.partition.as_str(),
        )
            .cmp(&(
                b.topic.as_str(),
                b.partition.parse::<i64>().ok(),
                b.partition.as_str(),
            ))
    });
    Some(parts)
}

/// The consumer's count of applied messages since it (re)started: a counter,
/// so its rate over time is the throughput.
pub(crate) fn messages_applied(health: &Value) -> Option<u64> {
    health.get("messages")?.as_u64()
}

/// Window of the task-duration figures: tries that ended in the last day.
const DURATION_WINDOW_SECS: i64 = 86_400;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    dag_id: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    dag_id: String,
    task_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker_id: String,
    hostname: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeartbeatLabels {
    worker_id: String,
    hostname: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    dag_id: String,
    task_id: String,
    worker_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    dag_id: String,
    task_id: String,
    worker_id: String,
    topic: String,
    partition: String,
}

/// A float gauge (seconds).
type Seconds = Gauge<f64, AtomicU64>;

/// Sum and count of the tries that ended in the window per task, as the
/// database computed them: histograms with only the `+Inf` bucket, since
/// the client has no summary type and `_sum`/`_count` are what dashboards
/// divide.
#[derive(Debug, Default)]
struct Durations(Vec<(TaskLabels, f64, u64)>);

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, sum, count) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, &[(f64::INFINITY, *count)], None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Every figure of one scrape, registered under its name and help.
/// A worker as the metrics name it: itself behind a token; without one,
/// an opaque stable tag and no host name, so an open `/metrics` does not
/// map the deployment's hosts and processes.
fn worker_label(worker_id: &str, hostname: &str, open: bool) -> (String, String) {
    if !open {
        return (worker_id.to_owned(), hostname.to_owned());
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(worker_id.as_bytes());
    let tag: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    (format!("worker-{tag}"), String::new())
}

async fn scrape(state: &AppState) -> Result<Registry, Problem> {
    let store = &state.store;
    let open: bool = state.metrics_token.is_none();
    let mut registry = Registry::default();

    let runs = Family::<RunLabels, Gauge>::default();
    for (dag_id, run_state, n) in store.run_counts_by_dag().await? {
        let labels = RunLabels {
            dag_id,
            state: run_state.as_str().to_owned(),
        };
        runs.get_or_create(&labels).set(n);
    }
    registry.register("betflow_dag_runs", "DAG runs by DAG and state", runs);

    let mut durations = Durations::default();
    for d in store.task_duration_summary(DURATION_WINDOW_SECS).await? {
        let labels = TaskLabels {
            dag_id: d.dag_id,
            task_id: d.task_id,
        };
        durations
            .0
            .push((labels, d.sum_secs, u64::try_from(d.count).unwrap_or(0)));
    }
    registry.register(
        "betflow_task_duration_seconds",
        "Duration of task tries that finished in the last 24 hours, by DAG and task",
        durations,
    );

    for (name, help, task_state) in [
        (
            "betflow_queued_task_instances",
            "Task instances waiting for an executor slot (queue depth), by pool",
            TaskState::Queued,
        ),
        (
            "betflow_running_task_instances",
            "Task instances running now, by pool",
            TaskState::Running,
        ),
    ] {
        let family = Family::<PoolLabels, Gauge>::default();
        for (pool, n) in store.task_instance_counts_by_pool(task_state).await? {
            family.get_or_create(&PoolLabels { pool }).set(n);
        }
        registry.register(name, help, family);
    }

    let workers = store.live_workers().await?;
    let loop_secs = Family::<WorkerLabels, Seconds>::default();
    let heartbeat_age = Family::<HeartbeatLabels, Seconds>::default();
    for w in &workers {
        let (worker_id, hostname) = worker_label(&w.worker_id, &w.hostname, open);
        if let Some(secs) = w.scheduler_loop_seconds {
            let labels = WorkerLabels {
                worker_id: worker_id.clone(),
                hostname: hostname.clone(),
            };
            loop_secs.get_or_create(&labels).set(secs);
        }
        let labels = HeartbeatLabels {
            worker_id,
            hostname,
            kind: w.kind.clone(),
        };
        heartbeat_age
            .get_or_create(&labels)
            .set(w.heartbeat_age_secs.max(0.0));
    }
    registry.register(
        "betflow_scheduler_loop_seconds",
        "Duration of each live process's latest scheduler pass",
        loop_secs,
    );
    registry.register(
        "betflow_worker_heartbeat_age_seconds",
        "Seconds since each live betflow process (scheduler and executor) last heartbeated",
        heartbeat_age,
    );

    // Stopped rows belong to processes that have exited; leaving them out
    // keeps the series set bounded as processes come and go.
    let streams = store.stream_tasks().await?;
    let restarts = Family::<StreamLabels, Counter>::default();
    let lag = Family::<LagLabels, Gauge>::default();
    let messages = Family::<StreamLabels, Counter>::default();
    for s in streams.iter().filter(|s| s.state != StreamState::Stopped) {
        let (worker_id, _) = worker_label(&s.worker_id, "", open);
        let labels = StreamLabels {
            dag_id: s.dag_id.clone(),
            task_id: s.task_id.clone(),
            worker_id: worker_id.clone(),
        };
        restarts
            .get_or_create(&labels)
            .inc_by(u64::try_from(s.restarts).unwrap_or(0));
        if let Some(n) = messages_applied(&s.health) {
            messages.get_or_create(&labels).inc_by(n);
        }
        for p in partition_lags(&s.health).unwrap_or_default() {
            let labels = LagLabels {
                dag_id: s.dag_id.clone(),
                task_id: s.task_id.clone(),
                worker_id: worker_id.clone(),
                topic: p.topic,
                partition: p.partition,
            };
            lag.get_or_create(&labels).set(p.lag);
        }
    }
    registry.register(
        "betflow_stream_task_restarts",
        "Restarts of each stream task under the process supervising it",
        restarts,
    );
    registry.register(
        "betflow_consumer_lag",
        "Messages in a partition past the consumer's position (high watermark - next offset)",
        lag,
    );
    registry.register(
        "betflow_consumer_messages",
        "Messages a stream consumer has applied since it started (throughput is its rate)",
        messages,
    );
    Ok(registry)
}

pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    if let Some(token) = &state.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !crate::auth::extract::constant_time_eq(sent.as_bytes(), token.as_bytes()) {
            return Err(Problem::unauthorized(
                "send the metrics token as `Authorization: Bearer <BETFLOW_METRICS_TOKEN>`",
            ));
        }
    }
    // One read of the store per few seconds, whoever scrapes: a scraper
    // storm or a slow database cannot take connections from scheduling.
    let out: std::sync::Arc<str> = state
        .metrics_cache
        .get_or_load(String::new(), async {
            let registry = scrape(&state).await?;
            let mut out = String::with_capacity(4096);
            encode(&mut out, &registry)
                .map_err(|e| Problem::internal(format!("encoding metrics: {e}")))?;
            Ok::<_, Problem>(std::sync::Arc::from(out))
        })
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out.to_string(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_metrics_name_workers_by_an_opaque_tag_and_no_host() {
        let (id, host) = worker_label("db-7-1234-abcdef", "db-7", true);
        assert!(
            id.starts_with("worker-") && id.len() == "worker-".len() + 8,
            "{id}"
        );
        assert!(!id.contains("db-7") && host.is_empty());
        assert_eq!(
            worker_label("db-7-1234-abcdef", "db-7", true).0,
            id,
            "stable"
        );
        assert_eq!(
            worker_label("db-7-1234-abcdef", "db-7", false),
            ("db-7-1234-abcdef".to_owned(), "db-7".to_owned())
        );
    }

    #[test]
    fn lag_keys_split_into_topic_and_partition_in_numeric_order() {
        let health = serde_json::json!({
            "messages": 5,
            "lag": {"b.t/10": 1, "b.t/2": 3, "a.t/0": 0, "odd": 4},
        });
        let got: Vec<(String, String, i64)> = partition_lags(&health)
            .unwrap()
            .into_iter()
            .map(|p| (p.topic, p.partition, p.lag))
            .collect();
        let want = [
            ("a.t", "0", 0),
            ("b.t", "2", 3),
            ("b.t", "10", 1),
            ("odd", "", 4),
        ];
        let want: Vec<(String, String, i64)> = want
            .iter()
            .map(|(t, p, n)| ((*t).to_owned(), (*p).to_owned(), *n))
            .collect();
        assert_eq!(got, want);
        assert_eq!(messages_applied(&health), Some(5));
        assert_eq!(partition_lags(&serde_json::json!({"ticks": 3})), None);
        assert_eq!(
            partition_lags(&serde_json::json!({"lag": {}})),
            Some(vec![])
        );
    }

    #[test]
    fn durations_encode_as_sum_and_count_per_task() {
        let mut registry = Registry::default();
        let labels = TaskLabels {
            dag_id: "etl".to_owned(),
            task_id: "load".to_owned(),
        };
        registry.register(
            "betflow_task_duration_seconds",
            "durations",
            Durations(vec![(labels, 2.5, 2)]),
        );
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        for line in [
            "# TYPE betflow_task_duration_seconds histogram",
            r#"betflow_task_duration_seconds_sum{dag_id="etl",task_id="load"} 2.5"#,
            r#"betflow_task_duration_seconds_count{dag_id="etl",task_id="load"} 2"#,
            r#"betflow_task_duration_seconds_bucket{le="+Inf",dag_id="etl",task_id="load"} 2"#,
        ] {
            assert!(out.contains(line), "{line} not in\n{out}");
        }
    }
}
