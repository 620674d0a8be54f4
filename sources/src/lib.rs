//! HTTP clients for the external data sources (ESPN, The Odds API, weather,
//! news feeds), and the offline replay source.
//!
//! Each client fetches the untouched response bytes (the lake stores those)
//! and offers typed models plus a `validate_*` function that turns a payload
//! into good records and [`Rejected`] ones, so one malformed event never
//! loses the rest of a batch. The dead-letter *storage* belongs to the lake.

pub mod error;
pub mod espn;
pub mod generator;
pub mod http;
pub mod lenient;
pub mod news;
pub mod odds_api;
/// Price conversions, from the `pricing` crate every consumer of odds shares.
pub use pricing::convert as odds_math;
pub mod rate_limit;
pub mod replay;
pub mod sport;
pub mod text;
pub mod weather;

pub use error::SourceError;
pub use http::{ApiKey, Fetched, HttpClient, HttpConfig, Quota};
pub use rate_limit::RateLimiter;
pub use sport::{sport, sports_day, DataKind, Sport, SPORTS, TIMEZONE};

use serde::Serialize;
use serde_json::Value;

/// One record a source sent that could not be turned into a typed record:
/// kept whole, with why, for the dead-letter area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// Which source and payload kind, e.g. `espn.scoreboard`.
    pub source: &'static str,
    /// Why it was rejected (a failed rule, or a decode error with its path).
    pub reason: String,
    /// The record exactly as received.
    pub raw: Value,
}

/// The outcome of validating one payload: the records that passed and those
/// that did not. Both lists keep the payload's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated<T> {
    pub good: Vec<T>,
    pub rejected: Vec<Rejected>,
}

impl<T> Default for Validated<T> {
    fn default() -> Self {
        Self {
            good: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<T> Validated<T> {
    /// Records a rejection of `raw` by `source` for `reason`.
    pub(crate) fn reject(&mut self, source: &'static str, reason: impl Into<String>, raw: &Value) {
        self.rejected.push(Rejected {
            source,
            reason: reason.into(),
            raw: raw.clone(),
        });
    }
}

/// Decodes one JSON value into `T`, naming the failing field path, so a
/// rejection says *where* the record was bad, not only that it was.
///
/// Tracking the path costs on every field, so only a value that fails is
/// decoded a second time to find it: nearly every record is good, and a
/// season of odds is millions of them.
pub fn decode_value<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, String> {
    if let Ok(decoded) = <T as serde::Deserialize>::deserialize(value) {
        return Ok(decoded);
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path: String = e.path().to_string();
        format!("at {path}: {}", e.into_inner())
    })
}
