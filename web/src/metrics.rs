//! `/metrics`: orchestration state in the Prometheus text format, read from
//! the metadata database at scrape time.
//!
//! Like `/health`, it needs no login: it is for scrapers (the role Airflow's
//! statsd exporter plays), and it shows only counts, durations and ids of
//! DAGs, tasks and processes, never conf, logs or connection URLs. Keep it
//! on a network only the monitoring system reaches if DAG ids are sensitive.
//!
//! Every value is computed by the database from the same tables the
//! scheduler writes; nothing is kept in process memory, so any process
//! serving the web UI reports the state of the whole deployment.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use orchestrator::{StreamState, TaskState};
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

/// Window of the task-duration summary: tries that ended in the last day.
const DURATION_WINDOW_SECS: i64 = 86_400;

/// Escape a label value as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A float as Prometheus prints it (integers without a fraction).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, Problem> {
    let store = &state.store;
    let runs = store.run_counts_by_dag().await?;
    let durations = store.task_duration_summary(DURATION_WINDOW_SECS).await?;
    let queued = store
        .task_instance_counts_by_pool(TaskState::Queued)
        .await?;
    let running = store
        .task_instance_counts_by_pool(TaskState::Running)
        .await?;
    let workers = store.live_workers().await?;
    let streams = store.stream_tasks().await?;

    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "betflow_dag_runs",
        "gauge",
        "DAG runs by DAG and state.",
    );
    for (dag_id, run_state, n) in &runs {
        let _ = writeln!(
            out,
            "betflow_dag_runs{{dag_id=\"{}\",state=\"{}\"}} {n}",
            label(dag_id),
            label(run_state.as_str())
        );
    }

    family(
        &mut out,
        "betflow_task_duration_seconds",
        "summary",
        "Duration of task tries that finished in the last 24 hours, by DAG and task.",
    );
    for d in &durations {
        let labels = format!(
            "dag_id=\"{}\",task_id=\"{}\"",
            label(&d.dag_id),
            label(&d.task_id)
        );
        let _ = writeln!(
            out,
            "betflow_task_duration_seconds_sum{{{labels}}} {}",
            num(d.sum_secs)
        );
        let _ = writeln!(
            out,
            "betflow_task_duration_seconds_count{{{labels}}} {}",
            d.count
        );
    }

    family(
        &mut out,
        "betflow_queued_task_instances",
        "gauge",
        "Task instances waiting for an executor slot (queue depth), by pool.",
    );
    for (pool, n) in &queued {
        let _ = writeln!(
            out,
            "betflow_queued_task_instances{{pool=\"{}\"}} {n}",
            label(pool)
        );
    }
    family(
        &mut out,
        "betflow_running_task_instances",
        "gauge",
        "Task instances running now, by pool.",
    );
    for (pool, n) in &running {
        let _ = writeln!(
            out,
            "betflow_running_task_instances{{pool=\"{}\"}} {n}",
            label(pool)
        );
    }

    family(
        &mut out,
        "betflow_scheduler_loop_seconds",
        "gauge",
        "Duration of each live process's latest scheduler pass.",
    );
    for w in &workers {
        if let Some(secs) = w.scheduler_loop_seconds {
            let _ = writeln!(
                out,
                "betflow_scheduler_loop_seconds{{worker_id=\"{}\",hostname=\"{}\"}} {:.6}",
                label(&w.worker_id),
                label(&w.hostname),
                secs
            );
        }
    }

    family(
        &mut out,
        "betflow_worker_heartbeat_age_seconds",
        "gauge",
        "Seconds since each live betflow process (scheduler and executor) last heartbeated.",
    );
    for w in &workers {
        let _ = writeln!(
            out,
            "betflow_worker_heartbeat_age_seconds{{worker_id=\"{}\",hostname=\"{}\",kind=\"{}\"}} {:.3}",
            label(&w.worker_id),
            label(&w.hostname),
            label(&w.kind),
            w.heartbeat_age_secs.max(0.0)
        );
    }

    family(
        &mut out,
        "betflow_stream_task_restarts_total",
        "counter",
        "Restarts of each stream task under the process supervising it.",
    );
    // Stopped rows belong to processes that have exited; leaving them out
    // keeps the series set bounded as processes come and go.
    for s in streams.iter().filter(|s| s.state != StreamState::Stopped) {
        let _ = writeln!(
            out,
            "betflow_stream_task_restarts_total{{dag_id=\"{}\",task_id=\"{}\",worker_id=\"{}\"}} {}",
            label(&s.dag_id),
            label(&s.task_id),
            label(&s.worker_id),
            s.restarts
        );
    }

    family(
        &mut out,
        "betflow_consumer_lag",
        "gauge",
        "Messages in a partition past the consumer's position (high watermark - next offset).",
    );
    for s in streams.iter().filter(|s| s.state != StreamState::Stopped) {
        for p in partition_lags(&s.health).unwrap_or_default() {
            let _ = writeln!(
                out,
                "betflow_consumer_lag{{dag_id=\"{}\",task_id=\"{}\",worker_id=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                label(&s.dag_id),
                label(&s.task_id),
                label(&s.worker_id),
                label(&p.topic),
                label(&p.partition),
                p.lag
            );
        }
    }
    family(
        &mut out,
        "betflow_consumer_messages_total",
        "counter",
        "Messages a stream consumer has applied since it started (throughput is its rate).",
    );
    for s in streams.iter().filter(|s| s.state != StreamState::Stopped) {
        let Some(n) = messages_applied(&s.health) else {
            continue;
        };
        let _ = writeln!(
            out,
            "betflow_consumer_messages_total{{dag_id=\"{}\",task_id=\"{}\",worker_id=\"{}\"}} {}",
            label(&s.dag_id),
            label(&s.task_id),
            label(&s.worker_id),
            n
        );
    }

    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
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
    fn whole_numbers_print_without_a_fraction() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.25), "0.25");
    }
}
