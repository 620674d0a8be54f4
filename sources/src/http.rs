//! Shared HTTP plumbing: base URL, timeouts, rate limiting, retries with
//! backoff on 429/5xx (honouring `Retry-After`), secret masking and the
//! Odds API quota headers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::error::{excerpt, SourceError};
use super::rate_limit::RateLimiter;

/// Query parameters whose values are secrets; masked in every URL we log or
/// put in an error.
const SECRET_PARAMS: &[&str] = &["apiKey", "apikey", "appid", "api_key", "key", "token"];

/// How long an error's body excerpt may be.
const BODY_EXCERPT_CHARS: usize = 300;

/// An API key. Its `Debug` and `Display` never show the value, so it cannot
/// leak through a `{:?}` of a config or client.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The secret itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Connection and retry settings of one source.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Scheme, host and optional path prefix, e.g. `https://api.the-odds-api.com`.
    pub base_url: String,
    /// Whole-request timeout (10 s in production: docs/data-model.md#sources).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// First backoff; doubles per retry (1, 2, 4 … s in production; tests
    /// shrink it).
    pub backoff_base: Duration,
    /// Cap of the exponential backoff and of a server's `Retry-After`.
    pub max_backoff: Duration,
    /// Requests per second (ESPN 2, Odds 1, OpenWeather 1, Open-Meteo 2:
    /// docs/data-model.md#sources).
    pub rate_per_second: f64,
    /// Longest body read, in bytes ([`MAX_BODY_BYTES`] in production): a
    /// server that sends without end must not take the process's memory.
    pub max_body_bytes: usize,
}

/// The longest response body a client reads by default: a day's largest
/// payloads (an Odds API snapshot of every bookmaker, a busy scoreboard)
/// are a few megabytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

impl HttpConfig {
    /// Production defaults for `base_url` at `rate_per_second`.
    pub fn new(base_url: impl Into<String>, rate_per_second: f64) -> Self {
        Self {
            base_url: base_url.into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            backoff_base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            rate_per_second,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }

    /// Backoff before retry number `retry` (1-based): min(max, base · 2^(retry−1)).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor: u32 = 2u32.saturating_pow(retry.saturating_sub(1));
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// The Odds API's credit counters, from `x-requests-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quota {
    pub remaining: Option<f64>,
    pub used: Option<f64>,
    /// Cost of this request.
    pub last: Option<f64>,
}

impl Quota {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let read = |name: &str| -> Option<f64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let quota = Quota {
            remaining: read("x-requests-remaining"),
            used: read("x-requests-used"),
            last: read("x-requests-last"),
        };
        (quota != Quota::default()).then_some(quota)
    }
}

/// A successful response: the untouched body (the lake stores these bytes)
/// and the quota headers, if the source sends them.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The request URL with secrets masked.
    pub url: String,
    pub body: Vec<u8>,
    pub quota: Option<Quota>,
}

impl Fetched {
    /// Decodes the body as `T`, naming the failing serde path.
    pub fn decode<T: DeserializeOwned>(&self, api: &'static str) -> Result<T, SourceError> {
        decode_bytes(api, &self.url, &self.body)
    }
}

/// Decodes `body` as `T`; a failure names `what` (a masked URL or fixture
/// name) and the JSON path where it happened.
pub fn decode_bytes<T: DeserializeOwned>(
    api: &'static str,
    what: &str,
    body: &[u8],
) -> Result<T, SourceError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path: String = e.path().to_string();
        SourceError::Decode {
            api,
            what: what.to_string(),
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// One source's HTTP client: a reqwest client, its config and its limiter.
/// Cheap to clone; clones share the limiter.
#[derive(Debug, Clone)]
pub struct HttpClient {
    api: &'static str,
    base: Url,
    config: HttpConfig,
    client: reqwest::Client,
    limiter: Arc<RateLimiter>,
}

impl HttpClient {
    /// A client for `api` (a short name used in logs and errors).
    pub fn new(api: &'static str, config: HttpConfig) -> Result<Self, SourceError> {
        let base: Url =
            Url::parse(config.base_url.trim_end_matches('/')).map_err(|e| SourceError::Config {
                api,
                message: format!("invalid base URL {:?}: {e}", config.base_url),
            })?;
        let client: reqwest::Client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("betflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Config {
                api,
                message: format!("cannot build HTTP client: {}", e.without_url()),
            })?;
        let limiter = Arc::new(RateLimiter::new(config.rate_per_second));
        Ok(Self {
            api,
            base,
            config,
            client,
            limiter,
        })
    }

    pub fn api(&self) -> &'static str {
        self.api
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The absolute URL of `path` (starting with `/`) under the base URL,
    /// with `query` appended.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, SourceError> {
        let joined: String = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        let mut url: Url = Url::parse(&joined).map_err(|e| SourceError::Config {
            api: self.api,
            message: format!("invalid URL {joined:?}: {e}"),
        })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// GETs `path?query`, rate-limited and retried on transient failures.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Fetched, SourceError> {
        let url: Url = self.url(path, query)?;
        let shown: String = mask_url(&url);
        let attempts: u32 = self.config.max_attempts.max(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            let (error, retry_after) = match self.once(&url, &shown).await {
                Ok(fetched) => return Ok(fetched),
                Err(failure) => failure,
            };
            if !error.is_transient() {
                return Err(error);
            }
            if attempt >= attempts {
                return Err(SourceError::RetriesExhausted {
                    api: self.api,
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay: Duration = retry_after
                .map(|d| d.min(self.config.max_backoff))
                .unwrap_or_else(|| self.config.backoff(attempt));
            tracing::warn!(
                api = self.api,
                url = %shown,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "transient failure, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt. On failure also returns the server's `Retry-After`.
    async fn once(
        &self,
        url: &Url,
        shown: &str,
    ) -> Result<Fetched, (SourceError, Option<Duration>)> {
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| (self.transport_error(e, shown), None))?;
        let status: StatusCode = response.status();
        let headers: HeaderMap = response.headers().clone();
        let limit: usize = self.config.max_body_bytes;
        let too_large = || SourceError::TooLarge {
            api: self.api,
            url: shown.to_string(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err((too_large(), None));
        }
        let mut response = response;
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| (self.transport_error(e, shown), None))?
        {
            if body.len() + chunk.len() > limit {
                return Err((too_large(), None));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let error = SourceError::Status {
                api: self.api,
                status: status.as_u16(),
                url: shown.to_string(),
                body_excerpt: excerpt(&body, BODY_EXCERPT_CHARS),
            };
            return Err((error, retry_after(&headers)));
        }
        let quota: Option<Quota> = Quota::from_headers(&headers);
        if let Some(q) = quota {
            log_quota(self.api, q);
        }
        Ok(Fetched {
            url: shown.to_string(),
            body,
            quota,
        })
    }

    fn transport_error(&self, e: reqwest::Error, shown: &str) -> SourceError {
        if e.is_timeout() {
            SourceError::Timeout {
                api: self.api,
                url: shown.to_string(),
                timeout: self.config.timeout,
            }
        } else {
            // without_url: reqwest's message would otherwise repeat the
            // unmasked URL, API key included.
            let e = e.without_url();
            let mut message: String = e.to_string();
            let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(c) = cause {
                message.push_str(": ");
                message.push_str(&c.to_string());
                cause = c.source();
            }
            SourceError::Transport {
                api: self.api,
                url: shown.to_string(),
                message,
            }
        }
    }
}

/// `Retry-After` in seconds; HTTP-date values are ignored (we fall back to
/// exponential backoff), as the sources we call send seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Logs the credit counters; warns when fewer than 100 remain, since every
/// further call burns the monthly quota (docs/data-model.md#sources).
fn log_quota(api: &'static str, q: Quota) {
    let remaining: f64 = q.remaining.unwrap_or(f64::NAN);
    if q.remaining.is_some_and(|r| r < 100.0) {
        tracing::warn!(api, remaining, used = ?q.used, last = ?q.last, "API quota nearly used up");
    } else {
        tracing::info!(api, remaining, used = ?q.used, last = ?q.last, "API quota");
    }
}

/// `url` with the values of secret query parameters replaced by `***`.
pub fn mask_url(url: &Url) -> String {
    if url.query().is_none() {
        return url.to_string();
    }
    let mut masked: Url = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secret: bool = SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(&k));
            let value: String = if secret {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), value)
        })
        .collect();
    masked.query_pairs_mut().clear().extend_pairs(pairs);
    masked.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let config: HttpConfig = HttpConfig::new("http://x", 1.0);
        let delays: Vec<u64> = (1..=10).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(config.backoff(200), Duration::from_secs(300));
    }

    #[test]
    fn secrets_are_masked_in_urls() {
        let url: Url =
            Url::parse("https://h/v4/sports?regions=us&apiKey=abc123&appid=zzz").expect("url");
        assert_eq!(
            mask_url(&url),
            "https://h/v4/sports?regions=us&apiKey=***&appid=***"
        );
        assert!(!format!("{:?}", ApiKey::new("abc123")).contains("abc123"));
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers: HeaderMap = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
