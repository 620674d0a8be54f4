//! The real ingestion tasks of the nightly batch DAGs. Each family fetches
//! a sport's day from its source into the raw lake, then a separate task
//! reads the stored object back and validates it, sending bad records to
//! the dead-letter area:
//!
//! - [`games`]: ESPN scoreboards (`historical_games_daily`);
//! - [`odds`]: The Odds API historical snapshots (`historical_odds_daily`);
//! - [`weather`]: Open-Meteo history at the day's outdoor venues (`weather_daily`);
//! - [`news`]: the sports' RSS/Atom feeds, or the recorded NewsAPI
//!   responses offline (`news_daily`).
//!
//! Sources come from the environment ([`Settings::from_env`]) when a task
//! runs, or from a fixed [`Settings`] in tests: offline replay by default,
//! the real APIs with `BETFLOW_SOURCES=live`.

pub mod games;
pub mod news;
pub mod odds;
pub mod weather;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use orchestrator::{Output, TaskContext, TaskError};

use crate::selected_sports;
use crate::{sport, Sport};
use sources::espn;
use sources::odds_api;
use sources::weather::OPEN_METEO_ARCHIVE_URL;
use sources::ApiKey;

pub use games::{FetchOutput, FetchScoreboard, ValidateOutput, ValidateScoreboard};
pub use news::{FetchNews, ValidateNews};
pub use odds::{FetchOddsSnapshots, ValidateOddsSnapshots};
pub use weather::{FetchOpenMeteo, SelectOutdoorVenues, ValidateWeather, VenuesOutput};

/// Seed of the offline season generator: fixed, so a replayed date always
/// yields the same games (re-runs and tests are deterministic).
pub const REPLAY_SEED: u64 = 2024;

/// Default minutes between two historical odds snapshots pulled in live
/// mode: each snapshot costs markets × regions credits, so a day is 24
/// calls per sport rather than the API's ~200 (one every 5–10 minutes).
pub const DEFAULT_ODDS_SNAPSHOT_MINUTES: u32 = 60;

/// Where payloads come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMode {
    /// Offline: the bundled captures for a date that has one, else the
    /// season generator's games for that date.
    Replay,
    /// The ESPN site API at `base_url` (the other APIs' URLs are in
    /// [`Settings`]).
    Live { base_url: String },
}

impl SourceMode {
    /// The `{source}` part of the games' raw keys: live and replayed bytes
    /// of a date are kept apart, so a replay run never replaces a real pull.
    pub fn lake_source(&self) -> &'static str {
        self.lake_source_for(espn::API)
    }

    /// `replay`, or `live` (the API's name) when live.
    pub fn lake_source_for(&self, live: &'static str) -> &'static str {
        match self {
            SourceMode::Replay => "replay",
            SourceMode::Live { .. } => live,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, SourceMode::Live { .. })
    }
}

/// What the ingestion tasks need from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `BETFLOW_HOME`: the local lake is `{home}/lake` unless S3 is configured.
    pub home: PathBuf,
    pub mode: SourceMode,
    /// The Odds API base URL (`BETFLOW_ODDS_API_URL`), used when live.
    pub odds_api_url: String,
    /// `ODDS_API_KEY`; live odds fail without it.
    pub odds_api_key: Option<ApiKey>,
    /// Minutes between historical odds snapshots of a day
    /// (`BETFLOW_ODDS_SNAPSHOT_MINUTES`, 5 to 1440, default 60).
    pub odds_snapshot_minutes: u32,
    /// Open-Meteo archive base URL (`BETFLOW_OPEN_METEO_URL`), used when live.
    pub open_meteo_url: String,
    /// RSS/Atom feeds per sport key (`BETFLOW_NEWS_FEEDS_{SPORT}`, default
    /// [`Sport::news_feeds`]), used when live.
    pub news_feeds: BTreeMap<String, Vec<String>>,
}

impl Settings {
    /// `mode` with the production URLs, no Odds API key and the default
    /// snapshot interval.
    pub fn new(home: impl Into<PathBuf>, mode: SourceMode) -> Self {
        Settings {
            home: home.into(),
            mode,
            odds_api_url: odds_api::BASE_URL.to_owned(),
            odds_api_key: None,
            odds_snapshot_minutes: DEFAULT_ODDS_SNAPSHOT_MINUTES,
            open_meteo_url: OPEN_METEO_ARCHIVE_URL.to_owned(),
            news_feeds: crate::SPORTS
                .iter()
                .map(|s| {
                    let feeds = s.news_feeds.iter().map(|f| (*f).to_owned()).collect();
                    (s.key.to_owned(), feeds)
                })
                .collect(),
        }
    }

    /// Reads `BETFLOW_HOME` (default `./.betflow`), `BETFLOW_SOURCES`
    /// (`replay`, the default, or `live`), the live base URLs
    /// `BETFLOW_ESPN_URL`, `BETFLOW_ODDS_API_URL` and `BETFLOW_OPEN_METEO_URL`
    /// (for tests and proxies), `ODDS_API_KEY`,
    /// `BETFLOW_ODDS_SNAPSHOT_MINUTES` and `BETFLOW_NEWS_FEEDS_{SPORT}`.
    /// Read at task time, not at DAG build time, so the process that runs
    /// the task decides.
    pub fn from_env() -> Result<Self, TaskError> {
        let home: PathBuf = std::env::var_os("BETFLOW_HOME")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("./.betflow"), PathBuf::from);
        Self::from_env_at(home)
    }

    /// [`Settings::from_env`] with the home given (the binary's `--home`),
    /// not read from `BETFLOW_HOME`.
    pub fn from_env_at(home: PathBuf) -> Result<Self, TaskError> {
        let var = |name: &str| -> Option<String> {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let sources: String = std::env::var("BETFLOW_SOURCES").unwrap_or_default();
        let mode: SourceMode = match sources.trim() {
            "" | "replay" => SourceMode::Replay,
            "live" => SourceMode::Live {
                base_url: var("BETFLOW_ESPN_URL").unwrap_or_else(|| espn::BASE_URL.to_owned()),
            },
            other => {
                return Err(TaskError::fatal(format!(
                "BETFLOW_SOURCES={other:?} is not a source mode; use `replay` (default) or `live`"
            )))
            }
        };
        let minutes: u32 = match var("BETFLOW_ODDS_SNAPSHOT_MINUTES") {
            None => DEFAULT_ODDS_SNAPSHOT_MINUTES,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|m| (5..=1440).contains(m))
                .ok_or_else(|| {
                    TaskError::fatal(format!(
                        "BETFLOW_ODDS_SNAPSHOT_MINUTES={v:?} must be whole minutes from 5 to 1440"
                    ))
                })?,
        };
        let mut settings = Settings::new(home, mode);
        settings.odds_api_url = var("BETFLOW_ODDS_API_URL").unwrap_or(settings.odds_api_url);
        settings.odds_api_key = ApiKey::from_env(odds_api::KEY_VAR);
        settings.odds_snapshot_minutes = minutes;
        settings.open_meteo_url = var("BETFLOW_OPEN_METEO_URL").unwrap_or(settings.open_meteo_url);
        settings.news_feeds = crate::SPORTS
            .iter()
            .map(|s| (s.key.to_owned(), sources::news::feeds_from_env(s)))
            .collect();
        Ok(settings)
    }
}

/// Settings fixed at DAG build time (tests) or read from the environment
/// when each task runs (`None`, the binary's case).
pub type SettingsOverride = Option<Arc<Settings>>;

/// What every `{sport}.validate` task starts from: the sport, and the
/// output of the fetch task that names the raw object to check.
#[derive(Debug, Clone)]
pub struct ValidateFrom<F> {
    sport: &'static str,
    pub(crate) fetch: Output<F>,
    settings: SettingsOverride,
}

/// `new` and `spec` of a `{sport}.validate` task, a newtype over
/// [`ValidateFrom`] of its fetch task's output: the spec reads that output,
/// which is its edge.
macro_rules! validate_task {
    ($task:ident, $fetch:ty, $out:ty) => {
        impl $task {
            pub fn new(
                sport: &'static str,
                fetch: orchestrator::Output<$fetch>,
                settings: $crate::ingest::SettingsOverride,
            ) -> Self {
                Self($crate::ingest::ValidateFrom::new(sport, fetch, settings))
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
    /// The raw object's key in the lake.
    fn raw_key(&self) -> &str;
    /// The sports day it holds.
    fn sports_date(&self) -> chrono::NaiveDate;
}

macro_rules! stored_raw {
    ($($t:ty),*) => {$(
        impl StoredRaw for $t {
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
    pub fn new(sport: &'static str, fetch: Output<F>, settings: SettingsOverride) -> Self {
        Self {
            sport,
            fetch,
            settings,
        }
    }

    /// Resolve settings, find the fetch task's object and parse it; `what`
    /// names the payload in errors (`scoreboard`, `odds snapshots`, …).
    pub(crate) async fn load(
        &self,
        ctx: &TaskContext,
        what: &str,
    ) -> Result<StoredPayload, TaskError> {
        let sport: &'static Sport = selected(ctx, self.sport)?;
        let settings: Settings = resolve(&self.settings)?;
        let fetched: F = self.fetch.get(ctx)?;
        let store = crate::lake::open_from_env(&settings.home).map_err(lake_failed)?;
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

/// Refuses a fetched body that is not JSON before it becomes the day's raw
/// object: the source may answer properly on the fetch's next try, while a
/// stored bad body would only fail every validate try after it.
pub(crate) fn require_json(body: &[u8], url: &str, what: &str) -> Result<(), TaskError> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Ok(_) => Ok(()),
        Err(e) => Err(TaskError::msg(format!(
            "{what} from {url} is not JSON ({e}); nothing stored, the fetch is retried"
        ))),
    }
}

pub(crate) fn resolve(fixed: &SettingsOverride) -> Result<Settings, TaskError> {
    match fixed {
        Some(s) => Ok((**s).clone()),
        None => Settings::from_env(),
    }
}

/// `sport` if the run selects it, else a skip (the skip flows down its group).
pub(crate) fn selected(ctx: &TaskContext, key: &'static str) -> Result<&'static Sport, TaskError> {
    let chosen: Vec<String> = selected_sports(ctx)?;
    if !chosen.iter().any(|s| s == key) {
        return Err(TaskError::skip(format!(
            "sport `{key}` is not in this run's `sports` param {chosen:?}"
        )));
    }
    sport(key).ok_or_else(|| TaskError::msg(format!("unknown sport `{key}`")))
}
