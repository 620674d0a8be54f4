//! The alert channels of a process (docs/alerts.md): a Slack-compatible
//! webhook and email over SMTP, behind the orchestrator's [`Notifier`]
//! trait. The engine's delivery loop calls them; a failure is an error
//! string for `alert_deliveries.last_error`, never a task's concern.

mod email;
mod webhook;

use std::sync::Arc;

use orchestrator::{Notifier, Notifiers};

pub use email::{smtp_url_problem, EmailNotifier};
pub use webhook::WebhookNotifier;

/// The notifiers a process delivers with: the webhook always (its URL is
/// each DAG's or the deployment's), email when an SMTP server is set.
pub fn notifiers(smtp_url: Option<&str>, email_from: &str) -> anyhow::Result<Notifiers> {
    let mut list: Vec<Arc<dyn Notifier>> = vec![Arc::new(WebhookNotifier::new()?)];
    if let Some(url) = smtp_url {
        list.push(Arc::new(EmailNotifier::new(url, email_from)?));
    }
    Ok(Notifiers::new(list))
}
