//! Alerts on task and run outcomes, and on missed deadlines
//! (docs/alerts.md).
//!
//! Which events alert is part of a DAG's definition: a DAG's [`Alerts`]
//! cover its runs (failure, success, deadline miss), a task's cover its
//! tries (failure, retry, success), as Airflow's DAG- and task-level
//! callbacks do. The event is written to `alert_deliveries` in the same
//! transaction as the state it reports, one row per channel, so a crash
//! cannot lose it or send it twice for one state change. Delivery is a
//! separate loop of every engine ([`deliver_due`]): rows are claimed with
//! SKIP LOCKED, sent through a [`Notifier`] with a timeout, retried with
//! backoff and finally marked `failed` with the error. A notifier that
//! fails or hangs never touches the task or run it reports on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::dag::DagBag;
use crate::store::{Store, StoreError};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    Failure,
    Retry,
    Success,
    DeadlineMiss,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failure => "failure",
            AlertEvent::Retry => "retry",
            AlertEvent::Success => "success",
            AlertEvent::DeadlineMiss => "deadline_miss",
        }
    }

    /// `failure`, `retry`, `success` or `deadline_miss` (also `deadline`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "failure" | "failed" => Some(AlertEvent::Failure),
            "retry" => Some(AlertEvent::Retry),
            "success" => Some(AlertEvent::Success),
            "deadline_miss" | "deadline" => Some(AlertEvent::DeadlineMiss),
            _ => None,
        }
    }
}

/// Which events alert, and where to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    pub on: Vec<AlertEvent>,
    /// A Slack-compatible incoming webhook. Its path is a secret: it is
    /// never stored or shown, only resolved from the definition when sent.
    pub webhook_url: Option<String>,
    /// Email recipients (sent through the deployment's SMTP server).
    pub email_to: Vec<String>,
}

impl Alerts {
    /// Alerts on `events`, with no channel yet.
    pub fn on(events: &[AlertEvent]) -> Self {
        Self {
            on: events.to_vec(),
            ..Self::default()
        }
    }

    pub fn webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    pub fn email(mut self, to: &[&str]) -> Self {
        self.email_to = to.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// These alerts, with what they leave unset taken from `fallback`
    /// (the deployment's): its events when none are listed, its webhook
    /// and recipients when none are named.
    pub fn or(&self, fallback: &Alerts) -> Alerts {
        Alerts {
            on: if self.on.is_empty() {
                fallback.on.clone()
            } else {
                self.on.clone()
            },
            webhook_url: self
                .webhook_url
                .clone()
                .or_else(|| fallback.webhook_url.clone()),
            email_to: if self.email_to.is_empty() {
                fallback.email_to.clone()
            } else {
                self.email_to.clone()
            },
        }
    }

    /// The channels `event` goes to: `(channel, target)`. The webhook's
    /// target is not stored (see [`Alerts::webhook_url`]).
    fn channels(&self, event: AlertEvent) -> Vec<(&'static str, Option<String>)> {
        if !self.on.contains(&event) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.webhook_url.is_some() {
            out.push((WEBHOOK, None));
        }
        if !self.email_to.is_empty() {
            out.push((EMAIL, Some(self.email_to.join(", "))));
        }
        out
    }
}

/// The scheme and host of a webhook URL
/// (`https://hooks.slack.com/services/T0/B0/secret` → `https://hooks.slack.com`):
/// webhook URLs carry their secret in the path, so only this part is ever
/// shown or logged, here and for the market alerts' webhook.
pub fn url_host(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Channel names in `alert_deliveries.channel`.
pub const WEBHOOK: &str = "webhook";
pub const EMAIL: &str = "email";

/// What a run must meet: finish within `interval` of its logical date or
/// of the time it was queued (Airflow 3.1's deadline alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub reference: DeadlineReference,
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineReference {
    LogicalDate,
    QueuedAt,
}

impl Deadline {
    pub fn after_logical_date(interval: Duration) -> Self {
        Self {
            reference: DeadlineReference::LogicalDate,
            interval,
        }
    }

    pub fn after_queued(interval: Duration) -> Self {
        Self {
            reference: DeadlineReference::QueuedAt,
            interval,
        }
    }

    /// The SQL column the interval counts from.
    fn column(self) -> &'static str {
        match self.reference {
            DeadlineReference::LogicalDate => "logical_date",
            DeadlineReference::QueuedAt => "queued_at",
        }
    }
}

/// One alert as a notifier sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub event: AlertEvent,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: Option<String>,
    pub try_number: Option<i32>,
    /// One line a person reads: what, where, why.
    pub message: String,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// A delivery channel: the webhook and email notifiers of the binary.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The channel it serves (`webhook`, `email`).
    fn channel(&self) -> &'static str;
    /// Sends `alert` to `target` (the webhook URL, or the recipients).
    async fn send(&self, alert: &Alert, target: &str) -> Result<(), String>;
}

/// The notifiers of a process, by channel.
#[derive(Clone, Default)]
pub struct Notifiers(Arc<HashMap<&'static str, Arc<dyn Notifier>>>);

impl Notifiers {
    pub fn new(list: impl IntoIterator<Item = Arc<dyn Notifier>>) -> Self {
        Self(Arc::new(
            list.into_iter().map(|n| (n.channel(), n)).collect(),
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Records `event` of a run or a try for every channel `alerts` sends it
/// to, inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    alerts: &Alerts,
    event: AlertEvent,
    dag_id: &str,
    run_id: &str,
    task_id: Option<&str>,
    try_number: Option<i32>,
    message: &str,
    detail: &Value,
) -> Result<(), sqlx::Error> {
    for (channel, target) in alerts.channels(event) {
        sqlx::query(
            "INSERT INTO alert_deliveries (event, dag_id, run_id, task_id, try_number, channel,
                target, message, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(event.as_str())
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(channel)
        .bind(&target)
        .bind(message)
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Marks the runs of DAGs with a [`Deadline`] that passed it (still
/// running at the deadline, or finished after it) and records one
/// deadline-miss alert each. Only runs queued before their deadline are
/// judged: a catch-up or backfill run of last month could never meet it.
pub async fn check_deadlines(store: &Store, bag: &DagBag) -> Result<usize, StoreError> {
    let mut missed = 0;
    for dag in bag.dags() {
        let Some(deadline) = dag.deadline else {
            continue;
        };
        let mut tx: Transaction<'_, Postgres> = store.pool().begin().await?;
        let sql = format!(
            "UPDATE dag_runs SET deadline_missed_at = now()
             WHERE dag_id = $1 AND deadline_missed_at IS NULL AND run_type <> 'backfill'
               AND {col} + make_interval(secs => $2) < COALESCE(end_date, now())
               AND {col} + make_interval(secs => $2) > queued_at
             RETURNING run_id, {col} + make_interval(secs => $2), state",
            col = deadline.column()
        );
        let rows: Vec<(String, DateTime<Utc>, String)> = sqlx::query_as(&sql)
            .bind(&dag.id)
            .bind(deadline.interval.as_secs_f64())
            .fetch_all(&mut *tx)
            .await?;
        for (run_id, due, state) in &rows {
            let message = format!(
                "DAG {} run {run_id} missed its deadline of {} ({state} at the deadline or after)",
                dag.id,
                due.format("%Y-%m-%d %H:%M:%S UTC")
            );
            enqueue(
                &mut tx,
                &dag.alerts,
                AlertEvent::DeadlineMiss,
                &dag.id,
                run_id,
                None,
                None,
                &message,
                &json!({"deadline": due, "state": state}),
            )
            .await?;
        }
        tx.commit().await?;
        missed += rows.len();
    }
    Ok(missed)
}

/// Tries per delivery before it is marked `failed`.
pub const MAX_ATTEMPTS: i32 = 5;
/// Longest a notifier may take for one alert.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries claimed per pass.
const BATCH: i64 = 20;

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    event: String,
    dag_id: String,
    run_id: String,
    task_id: Option<String>,
    try_number: Option<i32>,
    channel: String,
    target: Option<String>,
    message: String,
    detail: Value,
    attempts: i32,
    created_at: DateTime<Utc>,
}

/// Sends the deliveries that are due; returns how many were delivered.
/// A claim moves `next_attempt_at` past the send's timeout first, so a
/// process that dies mid-send leaves the row for another to retry, and two
/// processes never send the same row at once.
pub async fn deliver_due(
    store: &Store,
    bag: &DagBag,
    notifiers: &Notifiers,
    backoff: Duration,
) -> Result<usize, StoreError> {
    let due: Vec<Due> = sqlx::query_as(
        "UPDATE alert_deliveries SET attempts = attempts + 1,
                next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM alert_deliveries
                      WHERE state = 'pending' AND next_attempt_at <= now()
                      ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, event, dag_id, run_id, task_id, try_number, channel, target, message,
                   detail, attempts, created_at",
    )
    .bind(BATCH)
    .bind(SEND_TIMEOUT.as_secs_f64() * 2.0)
    .fetch_all(store.pool())
    .await?;
    let mut delivered = 0;
    for d in due {
        let result: Result<(), String> = send(bag, notifiers, &d).await;
        let (state, retry_in) = match &result {
            Ok(()) => ("delivered", Duration::ZERO),
            Err(_) if d.attempts >= MAX_ATTEMPTS => ("failed", Duration::ZERO),
            // 1, 2, 4, 8 × backoff.
            Err(_) => (
                "pending",
                backoff * 2u32.pow((d.attempts - 1).clamp(0, 10) as u32),
            ),
        };
        if let Err(e) = &result {
            tracing::warn!(dag_id = %d.dag_id, run_id = %d.run_id, channel = %d.channel,
                attempt = d.attempts, "alert not delivered: {e}");
        }
        sqlx::query(
            "UPDATE alert_deliveries SET state = $2, last_error = $3,
                    delivered_at = CASE WHEN $2 = 'delivered' THEN now() END,
                    next_attempt_at = now() + make_interval(secs => $4)
             WHERE id = $1",
        )
        .bind(d.id)
        .bind(state)
        .bind(result.err())
        .bind(retry_in.as_secs_f64())
        .execute(store.pool())
        .await?;
        delivered += usize::from(state == "delivered");
    }
    Ok(delivered)
}

async fn send(bag: &DagBag, notifiers: &Notifiers, d: &Due) -> Result<(), String> {
    let notifier = notifiers
        .0
        .get(d.channel.as_str())
        .ok_or_else(|| format!("no {} notifier is configured in this process", d.channel))?;
    let target: String = match (d.channel.as_str(), &d.target) {
        (_, Some(t)) => t.clone(),
        (WEBHOOK, None) => {
            let dag = bag
                .get(&d.dag_id)
                .ok_or_else(|| format!("DAG {} is no longer defined", d.dag_id))?;
            let alerts = match &d.task_id {
                Some(t) => dag
                    .task(t)
                    .and_then(|t| t.alerts.as_ref())
                    .unwrap_or(&dag.alerts),
                None => &dag.alerts,
            };
            alerts
                .webhook_url
                .clone()
                .ok_or_else(|| format!("DAG {} no longer has a webhook", d.dag_id))?
        }
        (channel, None) => return Err(format!("{channel} delivery has no target")),
    };
    let alert = Alert {
        event: AlertEvent::parse(&d.event).unwrap_or(AlertEvent::Failure),
        dag_id: d.dag_id.clone(),
        run_id: d.run_id.clone(),
        task_id: d.task_id.clone(),
        try_number: d.try_number,
        message: d.message.clone(),
        detail: d.detail.clone(),
        created_at: d.created_at,
    };
    match tokio::time::timeout(SEND_TIMEOUT, notifier.send(&alert, &target)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the {} notifier did not answer within {SEND_TIMEOUT:?}",
            d.channel
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_events_alert_and_each_channel_once() {
        let a = Alerts::on(&[AlertEvent::Failure])
            .webhook("http://hooks.example/T0/secret")
            .email(&["ops@example.com", "data@example.com"]);
        assert!(a.channels(AlertEvent::Success).is_empty());
        assert_eq!(
            a.channels(AlertEvent::Failure),
            [
                (WEBHOOK, None),
                (EMAIL, Some("ops@example.com, data@example.com".to_owned()))
            ]
        );
        assert!(Alerts::on(&[AlertEvent::Failure])
            .channels(AlertEvent::Failure)
            .is_empty());
        assert_eq!(
            AlertEvent::parse("deadline"),
            Some(AlertEvent::DeadlineMiss)
        );
        assert_eq!(AlertEvent::parse("nope"), None);
        assert_eq!(
            url_host("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(url_host("http://127.0.0.1:9/x?k=v"), "http://127.0.0.1:9");
    }
}
