//! Alerts POSTed as JSON: Slack's incoming-webhook body (`text`) plus the
//! alert's fields for other receivers.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use orchestrator::alert::{url_host, Alert, WEBHOOK};
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

#[async_trait]
impl Notifier for WebhookNotifier {
    fn channel(&self) -> &'static str {
        WEBHOOK
    }

    async fn send(&self, alert: &Alert, url: &str) -> Result<(), String> {
        let host = url_host(url);
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
