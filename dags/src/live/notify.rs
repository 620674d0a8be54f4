//! The alert webhook: every new market alert (arbitrage, steam, value) of
//! `serving.market_alerts` POSTed as JSON to one URL — Slack's incoming
//! webhook body (`text`), plus the alert's fields for other receivers.
//!
//! It runs as its own stream task, reading the table the odds consumer
//! writes, so a slow or failing receiver never holds a consumer back. One
//! process of a deployment delivers (a publisher lease); each alert is
//! tried a few times with backoff, then marked delivered or given up on
//! (`notify_error`), so one bad alert cannot stall the ones behind it.
//! Alerts first seen longer ago than the webhook's maximum age (a replay
//! catching up on a day, a notifier that was down) are marked, not sent.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::{StreamContext, StreamTask, TaskError};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use streaming::publish::lease;

/// Lease name: one deliverer per deployment.
pub const NAME: &str = "alert_webhook";

/// Tries per alert.
const ATTEMPTS: u32 = 3;

/// Alerts read per pass.
const BATCH: i64 = 100;

/// Where and how alerts are delivered.
#[derive(Clone)]
pub struct AlertWebhook {
    pub url: String,
    /// Older alerts are marked, not sent.
    pub max_age: Duration,
    /// Between passes over the table.
    pub every: Duration,
    /// First backoff between tries; it doubles.
    pub backoff: Duration,
}

impl AlertWebhook {
    /// The URL's scheme and host: webhook URLs carry their secret in the
    /// path (Slack's do), so only this part is ever shown or logged.
    pub fn host(&self) -> &str {
        orchestrator::alert::url_host(&self.url)
    }
}

/// Hand-written so the URL's secret never reaches a log line.
impl std::fmt::Debug for AlertWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertWebhook")
            .field("host", &self.host())
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// An alert as read for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Pending {
    id: i64,
    kind: String,
    sport: String,
    event_id: String,
    market: String,
    outcome: Option<String>,
    line: Option<f64>,
    magnitude: f64,
    bookmakers: Vec<String>,
    first_seen: DateTime<Utc>,
    home_team: Option<String>,
    away_team: Option<String>,
}

const PENDING: &str = "SELECT a.id, a.kind, a.sport, a.event_id, a.market, a.outcome, a.line,
        a.magnitude, a.bookmakers, a.first_seen, e.home_team, e.away_team
    FROM serving.market_alerts a LEFT JOIN serving.odds_events e USING (event_id)
    WHERE a.notified_at IS NULL ORDER BY a.id LIMIT $1";

const MARK: &str = "UPDATE serving.market_alerts SET notified_at = now(), notify_error = $2
    WHERE id = $1";

/// The JSON body: Slack's `text`, and the alert for other receivers.
#[derive(Debug, Serialize)]
struct Body<'a> {
    text: String,
    alert: AlertJson<'a>,
}

#[derive(Debug, Serialize)]
struct AlertJson<'a> {
    kind: &'a str,
    sport: &'a str,
    event_id: &'a str,
    home_team: Option<&'a str>,
    away_team: Option<&'a str>,
    market: &'a str,
    outcome: Option<&'a str>,
    line: Option<f64>,
    magnitude: f64,
    bookmakers: &'a [String],
    first_seen: DateTime<Utc>,
}

/// One line a person reads: what, where, how big, at whom.
fn text_of(a: &Pending) -> String {
    let game = match (&a.away_team, &a.home_team) {
        (Some(away), Some(home)) => format!("{away} @ {home}"),
        _ => a.event_id.clone(),
    };
    let side = a.outcome.clone().unwrap_or_else(|| "all sides".to_owned());
    let line = a.line.map(|l| format!(" {l}")).unwrap_or_default();
    let size = match a.kind.as_str() {
        "arbitrage" => format!("margin {:.2}%", a.magnitude * 100.0),
        "value" => format!("edge {:+.1}%", a.magnitude * 100.0),
        _ => format!("move {:+.1} pts", a.magnitude * 100.0),
    };
    format!(
        "{} · {} {game} · {}{line} {side} · {size} · {}",
        a.kind,
        a.sport.to_uppercase(),
        a.market,
        a.bookmakers.join(", ")
    )
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub sent: u64,
    pub stale: u64,
    pub failed: u64,
}

impl Delivered {
    fn add(&mut self, other: Delivered) {
        self.sent += other.sent;
        self.stale += other.stale;
        self.failed += other.failed;
    }
}

/// POSTs `body`, retrying network errors, 429 and 5xx with backoff; the
/// last error when every try failed.
async fn post(
    client: &reqwest::Client,
    hook: &AlertWebhook,
    body: &Body<'_>,
) -> Result<(), String> {
    let mut wait = hook.backoff;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match client.post(&hook.url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                last = format!("the webhook answered {status}");
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Err(last);
                }
            }
            // Without the URL: a webhook's path is its secret.
            Err(e) if e.is_timeout() => {
                last = "the webhook did not answer in time".to_owned();
            }
            Err(e) => last = format!("posting to the webhook failed: {}", e.without_url()),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(format!("{last} (after {ATTEMPTS} tries)"))
}

/// Delivers every undelivered alert, oldest first: the whole pass's work.
pub async fn deliver_pending(
    pool: &PgPool,
    client: &reqwest::Client,
    hook: &AlertWebhook,
) -> Result<Delivered, sqlx::Error> {
    let mut total = Delivered::default();
    loop {
        let pending: Vec<Pending> = sqlx::query_as(PENDING).bind(BATCH).fetch_all(pool).await?;
        if pending.is_empty() {
            return Ok(total);
        }
        let mut pass = Delivered::default();
        let oldest = Utc::now() - chrono::TimeDelta::from_std(hook.max_age).unwrap_or_default();
        for a in &pending {
            let error: Option<String> = if a.first_seen < oldest {
                pass.stale += 1;
                Some(format!(
                    "not sent: first seen {} (older than the webhook's maximum age)",
                    a.first_seen
                ))
            } else {
                let body = Body {
                    text: text_of(a),
                    alert: AlertJson {
                        kind: &a.kind,
                        sport: &a.sport,
                        event_id: &a.event_id,
                        home_team: a.home_team.as_deref(),
                        away_team: a.away_team.as_deref(),
                        market: &a.market,
                        outcome: a.outcome.as_deref(),
                        line: a.line,
                        magnitude: a.magnitude,
                        bookmakers: &a.bookmakers,
                        first_seen: a.first_seen,
                    },
                };
                match post(client, hook, &body).await {
                    Ok(()) => {
                        pass.sent += 1;
                        None
                    }
                    Err(e) => {
                        pass.failed += 1;
                        Some(e)
                    }
                }
            };
            sqlx::query(MARK)
                .bind(a.id)
                .bind(error)
                .execute(pool)
                .await?;
        }
        total.add(pass);
    }
}

/// The stream task: a pass every `every` while it holds the lease.
pub struct AlertNotifier {
    pub hook: AlertWebhook,
}

#[async_trait]
impl StreamTask for AlertNotifier {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        let pool: PgPool = ctx.database().clone();
        let fail =
            |what: &str, e: &dyn std::fmt::Display| TaskError::msg(format!("{NAME}: {what}: {e}"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| fail("building the HTTP client", &e))?;
        let standby = || ctx.report(json!({"role": "standby", "lease": NAME}));
        let Some(mut held) =
            lease::acquire(&pool, NAME, &ctx.cancel, Duration::from_secs(15), standby)
                .await
                .map_err(|e| fail("taking the lease", &e))?
        else {
            return Ok(());
        };
        let mut total = Delivered::default();
        let mut last_error: Option<String> = None;
        loop {
            held.check()
                .await
                .map_err(|e| fail("keeping the lease", &e))?;
            match deliver_pending(&pool, &client, &self.hook).await {
                Ok(d) => total.add(d),
                Err(e) => last_error = Some(e.to_string()),
            }
            ctx.report(json!({
                "role": "leader",
                "webhook": self.hook.host(),
                "sent": total.sent,
                "stale": total.stale,
                "failed": total.failed,
                "last_error": last_error,
            }));
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.hook.every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_of_the_url_is_shown() {
        let hook = AlertWebhook {
            url: "https://hooks.slack.com/services/T000/B000/secret".into(),
            max_age: Duration::from_secs(900),
            every: Duration::from_secs(2),
            backoff: Duration::from_millis(500),
        };
        assert_eq!(hook.host(), "https://hooks.slack.com");
        assert!(!format!("{hook:?}").contains("secret"));
    }

    #[test]
    fn the_text_says_what_where_how_big_and_at_whom() {
        let a = Pending {
            id: 1,
            kind: "value".into(),
            sport: "nfl".into(),
            event_id: "e1".into(),
            market: "h2h".into(),
            outcome: Some("away".into()),
            line: None,
            magnitude: 0.0265,
            bookmakers: vec!["b".into()],
            first_seen: Utc::now(),
            home_team: Some("Kansas City Chiefs".into()),
            away_team: Some("Baltimore Ravens".into()),
        };
        assert_eq!(
            text_of(&a),
            "value · NFL Baltimore Ravens @ Kansas City Chiefs · h2h away · edge +2.6% · b"
        );
    }
}
