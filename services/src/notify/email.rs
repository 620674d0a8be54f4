//! Alerts as plain-text email through an SMTP server (lettre):
//! `smtp://host:port` (STARTTLS when the server offers it is not forced;
//! local relays and test sinks speak plain SMTP), `smtps://user:pass@host`
//! (TLS from the start), or `smtp://…?tls=required` (STARTTLS required).

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use orchestrator::alert::{Alert, EMAIL};
use orchestrator::Notifier;

pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Why `url` is not an SMTP server address, if it is not.
pub fn smtp_url_problem(url: &str) -> Option<String> {
    if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
        return Some("must start with smtp:// or smtps://".to_owned());
    }
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .err()
        .map(|e| e.to_string())
}

impl EmailNotifier {
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("BETFLOW_SMTP_URL is not an SMTP server address")?
            .timeout(Some(std::time::Duration::from_secs(8)))
            .build();
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("BETFLOW_NOTIFY_EMAIL_FROM={from:?} is not an address"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn channel(&self) -> &'static str {
        EMAIL
    }

    async fn send(&self, alert: &Alert, to: &str) -> Result<(), String> {
        let mut builder = Message::builder().from(self.from.clone()).subject(format!(
            "[BetFlow] {} {}{}",
            alert.event.as_str().replace('_', " "),
            alert.dag_id,
            alert
                .task_id
                .as_deref()
                .map(|t| format!(".{t}"))
                .unwrap_or_default()
        ));
        for address in to.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| format!("recipient {address:?} is not an address: {e}"))?;
            builder = builder.to(mailbox);
        }
        let body = format!(
            "{}\n\nDAG: {}\nRun: {}\n{}{}Detail: {}\n",
            alert.message,
            alert.dag_id,
            alert.run_id,
            alert
                .task_id
                .as_deref()
                .map(|t| format!("Task: {t}\n"))
                .unwrap_or_default(),
            alert
                .try_number
                .map(|n| format!("Try: {n}\n"))
                .unwrap_or_default(),
            alert.detail
        );
        let message = builder
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("the alert email could not be built: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| format!("the SMTP server refused or could not be reached: {e}"))
    }
}
