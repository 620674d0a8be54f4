//! The real ingestion tasks of the nightly batch DAGs. Each family fetches
//! a sport's day from its source into the raw lake, then a separate task
//! reads the stored object back and validates it, sending bad records to
//! the dead-letter area. Both are in the mapped task group `sport`
//! (docs/mapping.md): each has one instance per sport of the run's `sports`
//! param, and a sport's validate reads that sport's fetch output:
//!
//! - [`games`]: ESPN scoreboards (`historical_games_daily`);
//! - [`odds`]: The Odds API historical snapshots (`historical_odds_daily`);
//! - [`weather`]: Open-Meteo history at the day's outdoor venues (`weather_daily`);
//! - [`news`]: the sports' RSS/Atom feeds, or the recorded NewsAPI
//!   responses offline (`news_daily`).
//!
//! Sources come from the deployment's [`Settings`], resolved once when the
//! binary starts: offline replay by default, the real APIs with
//! `BETFLOW_SOURCES=live`.

pub mod games;
pub mod news;
pub mod odds;
pub mod weather;

use std::sync::Arc;

use orchestrator::{Output, TaskContext, TaskError, TypedSpec};

use crate::{sport, Sport, SPORTS};

pub use games::{FetchOutput, FetchScoreboard, ValidateOutput, ValidateScoreboard};
pub use news::{FetchNews, ValidateNews};
pub use odds::{FetchOddsSnapshots, ValidateOddsSnapshots};
pub use weather::{FetchOpenMeteo, SelectOutdoorVenues, ValidateWeather, VenuesOutput};

/// Seed of the offline season generator: fixed, so a replayed date always
/// yields the same games (re-runs and tests are deterministic).
pub const REPLAY_SEED: u64 = 2024;

pub use crate::settings::{Settings, SourceMode, DEFAULT_ODDS_SNAPSHOT_MINUTES};

/// The deployment's settings, resolved once when the binary starts and
/// shared by every task.
pub type SharedSettings = Arc<Settings>;

/// The mapped task group of each nightly load's fetch and validate: one
/// instance of each per sport of the run's `sports` param. There are no
/// more distinct sports than [`SPORTS`], so a longer list fails the
/// expansion.
pub const SPORT_GROUP: &str = "sport";

/// Makes [`SPORT_GROUP`] a group mapped over the run's `sports` param.
pub(crate) fn map_sport_group(b: &mut orchestrator::DagBuilder) {
    b.mapped_group(
        SPORT_GROUP,
        orchestrator::MapOver::Param("sports".into()),
        SPORTS.len(),
    );
}

/// A fetch task's spec, for the [`SPORT_GROUP`]: each instance in its
/// source's pool.
pub(crate) fn per_sport<T>(spec: TypedSpec<T>, pool: &str) -> TypedSpec<T> {
    spec.pool(pool, 1)
}

/// The sport a fetch instance was expanded for. A key we do not cover, or
/// one listed a second time in the param, fails the instance at once (no
/// retry changes the run's conf), so a typo is loud instead of a silent
/// gap, and no sport is fetched twice into the same raw object.
pub(crate) fn mapped_sport(ctx: &TaskContext) -> Result<&'static Sport, TaskError> {
    let key: String = ctx.item()?;
    let Some(found) = sport(&key) else {
        let known: Vec<&str> = SPORTS.iter().map(|s| s.key).collect();
        return Err(TaskError::fatal(format!(
            "unknown sport `{key}` in the `sports` param; known: {}",
            known.join(", ")
        )));
    };
    let listed: Vec<String> = ctx.param("sports")?;
    let before: usize = usize::try_from(ctx.map_index).unwrap_or(0);
    if let Some(first) = listed.iter().take(before).position(|k| *k == key) {
        return Err(TaskError::fatal(format!(
            "sport `{key}` is listed twice in the `sports` param (items {first} and {before}); it is fetched by instance {first}"
        )));
    }
    Ok(found)
}

/// What every `validate` task starts from: the output of the fetch task
/// that names the raw object to check. Both are in the [`SPORT_GROUP`], so
/// each validate instance reads its own sport's fetch instance.
#[derive(Debug, Clone)]
pub struct ValidateFrom<F> {
    pub(crate) fetch: Output<F>,
    settings: SharedSettings,
}

/// `new` and `spec` of a `validate` task, a newtype over [`ValidateFrom`]
/// of its fetch task's output: the spec reads it, which is its edge.
macro_rules! validate_task {
    ($task:ident, $fetch:ty, $out:ty) => {
        impl $task {
            pub fn new(
                fetch: orchestrator::Output<$fetch>,
                settings: $crate::ingest::SharedSettings,
            ) -> Self {
                Self($crate::ingest::ValidateFrom::new(fetch, settings))
            }

            pub fn spec(self, id: &str, doc: String) -> orchestrator::TypedSpec<$out> {
                let input = self.0.fetch.clone();
                orchestrator::TypedSpec::new(id, self)
                    .doc(doc)
                    .reads(&input)
            }
        }
    };
}
pub(crate) use validate_task;

/// A fetch task's output: where it stored the day's raw object.
pub trait StoredRaw: serde::de::DeserializeOwned {
    /// The sport it fetched.
    fn sport_key(&self) -> &str;
    /// The raw object's key in the lake.
    fn raw_key(&self) -> &str;
    /// The sports day it holds.
    fn sports_date(&self) -> chrono::NaiveDate;
}

macro_rules! stored_raw {
    ($($t:ty),*) => {$(
        impl StoredRaw for $t {
            fn sport_key(&self) -> &str {
                &self.sport
            }
            fn raw_key(&self) -> &str {
                &self.key
            }
            fn sports_date(&self) -> chrono::NaiveDate {
                self.date
            }
        }
    )*};
}
stored_raw!(
    games::FetchOutput,
    odds::FetchOutput,
    weather::FetchOutput,
    news::FetchOutput
);

/// The raw object a fetch task wrote, read back from the lake and parsed.
pub(crate) struct StoredPayload {
    pub sport: &'static Sport,
    pub store: Arc<dyn crate::lake::ObjectStore>,
    pub key: String,
    pub date: chrono::NaiveDate,
    pub payload: serde_json::Value,
}

impl<F: StoredRaw> ValidateFrom<F> {
    pub fn new(fetch: Output<F>, settings: SharedSettings) -> Self {
        Self { fetch, settings }
    }

    /// Resolve settings, find the object of this instance's fetch and
    /// parse it; `what` names the payload in errors (`scoreboard`, `odds
    /// snapshots`, …).
    pub(crate) async fn load(
        &self,
        ctx: &TaskContext,
        what: &str,
    ) -> Result<StoredPayload, TaskError> {
        let settings: &Settings = &self.settings;
        let fetched: F = self.fetch.get(ctx)?;
        let sport: &'static Sport = sport(fetched.sport_key()).ok_or_else(|| {
            TaskError::fatal(format!(
                "{} fetched unknown sport `{}`",
                self.fetch.task_id(),
                fetched.sport_key()
            ))
        })?;
        let store = settings.lake.open().map_err(lake_failed)?;
        let payload = read_fetched_json(
            store.as_ref(),
            fetched.raw_key(),
            self.fetch.task_id(),
            &format!("{} {what}", sport.key),
        )
        .await?;
        Ok(StoredPayload {
            sport,
            store,
            key: fetched.raw_key().to_owned(),
            date: fetched.sports_date(),
            payload,
        })
    }
}

/// Read back the raw object a fetch task wrote and parse it as JSON. A
/// missing object or bytes that are not JSON fail the task at once: that
/// is the whole day's payload, not one bad record to dead-letter, and no
/// retry of this task changes it (clearing the fetch task does).
async fn read_fetched_json(
    store: &dyn crate::lake::ObjectStore,
    key: &str,
    fetch_task: &str,
    what: &str,
) -> Result<serde_json::Value, TaskError> {
    let bytes: Vec<u8> = crate::lake::raw::read_raw(store, key)
        .await
        .map_err(lake_failed)?
        .ok_or_else(|| {
        TaskError::fatal(format!(
            "raw object {key} is missing from {} (replaced by a newer run?); clear {fetch_task} to fetch it again",
            store.location()
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        TaskError::fatal(format!(
            "{what} {key} is not JSON ({e}); nothing validated; clear {fetch_task} to fetch it again"
        ))
    })
}

/// A source failure as a task failure: retried only when another try may
/// get past it (docs: network errors, 5xx, 429, timeouts).
pub(crate) fn source_failed(e: sources::SourceError) -> TaskError {
    let retry = e.retry_can_help();
    TaskError::classified(e, retry)
}

/// A lake failure as a task failure: a full disk or a bad setting fails at
/// once, I/O and S3 hiccups are retried.
pub(crate) fn lake_failed(e: crate::lake::LakeError) -> TaskError {
    let retry = e.retry_can_help();
    TaskError::classified(e, retry)
}

/// What a fetch needs to keep a body it refuses: the try, the lake, and
/// the dead-letter place of its source, sport and day.
pub(crate) struct BodyCheck<'a> {
    ctx: &'a TaskContext,
    settings: &'a Settings,
    /// The dead-letter `{source}` segment (docs/lake-layout.md#dead-letters).
    source: &'static str,
    sport: &'a str,
    date: chrono::NaiveDate,
}

impl<'a> BodyCheck<'a> {
    pub(crate) fn new(
        ctx: &'a TaskContext,
        settings: &'a Settings,
        source: &'static str,
        sport: &'a str,
        date: chrono::NaiveDate,
    ) -> Self {
        Self {
            ctx,
            settings,
            source,
            sport,
            date,
        }
    }

    /// Refuses a fetched body that is not JSON before it becomes the day's
    /// raw object: the source may answer properly on the fetch's next try
    /// (a maintenance page, a cut-off transfer), while a stored bad body
    /// would only fail every validate try after it. On the last try the
    /// body is kept with the reason in the dead-letter area, so what the
    /// source answered can still be looked at.
    pub(crate) async fn require_json(
        &self,
        fetched: &sources::http::Fetched,
        what: &str,
    ) -> Result<(), TaskError> {
        let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&fetched.body) else {
            return Ok(());
        };
        let reason = format!("{what} from {} is not JSON ({e})", fetched.url);
        if !self.ctx.is_last_try() {
            return Err(TaskError::msg(format!(
                "{reason}; nothing stored, the fetch is retried"
            )));
        }
        let kept = self.keep(&reason, fetched).await?;
        Err(TaskError::msg(format!(
            "{reason}; nothing stored, and this was the last try: the body is kept in {kept}"
        )))
    }

    async fn keep(
        &self,
        reason: &str,
        fetched: &sources::http::Fetched,
    ) -> Result<String, TaskError> {
        let key = crate::lake::layout::fetch_dead_letter_key(
            self.source,
            self.sport,
            self.date,
            &self.ctx.run_id,
        )
        .map_err(lake_failed)?;
        let record = crate::lake::raw::DeadLetter {
            source: self.source.to_owned(),
            reason: reason.to_owned(),
            raw: serde_json::Value::String(String::from_utf8_lossy(&fetched.body).into_owned()),
        };
        let mut line = serde_json::to_vec(&record)
            .map_err(|e| TaskError::msg(format!("encoding the refused body: {e}")))?;
        line.push(b'\n');
        let store = self.settings.lake.open().map_err(lake_failed)?;
        let gz = crate::lake::gzip(&key, &line).map_err(lake_failed)?;
        store.put(&key, gz).await.map_err(lake_failed)?;
        Ok(format!("{}/{key}", store.location()))
    }
}

#[cfg(test)]
mod lake_failure_tests {
    use super::*;
    use crate::lake::LakeError;

    #[test]
    fn a_full_disk_or_a_refused_bucket_fails_at_once_and_a_hiccup_is_retried() {
        let full = LakeError::DiskFull {
            key: "raw/k".into(),
            path: "/lake/raw/k".into(),
        };
        assert!(!lake_failed(full).is_retryable());
        let refused = LakeError::S3 {
            op: "put",
            bucket: "b".into(),
            key: "k".into(),
            message: "PermissionDenied".into(),
            refused: true,
        };
        assert!(!lake_failed(refused).is_retryable());
        let hiccup = LakeError::S3 {
            op: "put",
            bucket: "b".into(),
            key: "k".into(),
            message: "Unexpected: 503".into(),
            refused: false,
        };
        assert!(lake_failed(hiccup).is_retryable());
    }
}
