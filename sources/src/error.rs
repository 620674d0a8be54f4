//! The sources' typed errors. Every variant names the API it came from and a
//! URL with secrets masked, so an error can be logged as is.

use std::time::Duration;

/// What went wrong talking to, or understanding, an external source.
///
/// Field names avoid `source`: thiserror would treat such a field as the
/// error's cause.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server answered with a non-success status that is not retried
    /// (or was the last of the retried ones).
    #[error("{api}: HTTP {status} from {url}: {body_excerpt}")]
    Status {
        api: &'static str,
        status: u16,
        url: String,
        body_excerpt: String,
    },
    /// No complete response within the configured timeout.
    #[error("{api}: request to {url} timed out after {timeout:?}")]
    Timeout {
        api: &'static str,
        url: String,
        timeout: Duration,
    },
    /// Connection, TLS or protocol failure before a status arrived.
    #[error("{api}: request to {url} failed: {message}")]
    Transport {
        api: &'static str,
        url: String,
        message: String,
    },
    /// The body is not the JSON shape we expect; `path` is the serde path of
    /// the offending field (`.` for the root).
    #[error("{api}: cannot decode {what} at {path}: {message}")]
    Decode {
        api: &'static str,
        what: String,
        path: String,
        message: String,
    },
    /// Retries on 429/5xx/timeouts were used up.
    #[error("{api}: failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        api: &'static str,
        attempts: u32,
        last: Box<SourceError>,
    },
    /// The body went past the client's limit (`HttpConfig::max_body_bytes`);
    /// what was read of it is dropped.
    #[error("{api}: the response from {url} is larger than {limit} bytes; not read")]
    TooLarge {
        api: &'static str,
        url: String,
        limit: usize,
    },
    /// A required setting (an API key, a base URL) is missing or invalid.
    #[error("{api}: configuration: {message}")]
    Config { api: &'static str, message: String },
}

impl SourceError {
    /// Whether another attempt may succeed: rate limiting, server errors,
    /// timeouts and transport failures are transient; other 4xx are not.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Status { status, .. } => *status == 429 || *status >= 500,
            SourceError::Timeout { .. } | SourceError::Transport { .. } => true,
            // Not at once: the same server would likely send it again; the
            // task's next try may find it answering properly.
            SourceError::Decode { .. }
            | SourceError::RetriesExhausted { .. }
            | SourceError::TooLarge { .. }
            | SourceError::Config { .. } => false,
        }
    }
}

impl SourceError {
    /// Whether a later try of the whole task may succeed: everything
    /// transient, and retries the client already used up (the source may
    /// be back by the task's next try). Settings and other 4xx will not
    /// change; a body that does not decode is the caller's to judge.
    pub fn retry_can_help(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                SourceError::RetriesExhausted { .. } | SourceError::TooLarge { .. }
            )
    }
}

/// At most `max` characters of a response body, on a char boundary, so a
/// huge HTML error page does not flood the logs.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
