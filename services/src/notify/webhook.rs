//! Alerts POSTed as JSON: Slack's incoming-webhook body (`text`) plus the
//! alert's fields for other receivers.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use orchestrator::alert::{Alert, WEBHOOK};
use orchestrator::Notifier;
use serde_json::json;

pub struct WebhookNotifier {
    client: reqwest::Client,
}

impl WebhookNotifier {
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(8))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("the alert webhook's HTTP client")?;
        Ok(Self { client })
    }
}

/// `https://hooks.slack.com/services/T0/B0/secret` → `https://hooks.slack.com`:
/// the path is the secret, so errors name the host only.
fn host_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn channel(&self) -> &'static str {
        WEBHOOK
    }

    async fn send(&self, alert: &Alert, url: &str) -> Result<(), String> {
        let host = host_of(url);
        let body = json!({
            "text": alert.message,
            "event": alert.event,
            "dag_id": alert.dag_id,
            "run_id": alert.run_id,
            "task_id": alert.task_id,
            "try_number": alert.try_number,
            "detail": alert.detail,
            "created_at": alert.created_at,
        });
        let response = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("the webhook at {host} did not answer in time")
                } else {
                    format!(
                        "the webhook at {host} could not be reached ({})",
                        e.without_url()
                    )
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook at {host} answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_host_of_a_webhook_is_ever_shown() {
        assert_eq!(
            super::host_of("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            super::host_of("http://127.0.0.1:9/x?k=v"),
            "http://127.0.0.1:9"
        );
    }
}
