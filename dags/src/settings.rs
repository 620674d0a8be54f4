//! The deployment's settings for BetFlow's pipelines, resolved once when
//! the binary starts (a bad value stops it, naming the variable) and handed
//! to every DAG and task: no task reads the environment when it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::transform::spark::submit::SparkSubmit;
use lakehouse::glue_job::GlueConfig;
use lakehouse::LakeSettings;
use orchestrator::setting::{self, Lookup, SettingError};
use pricing::steam::SteamRule;
use pricing::Rules;
use sources::espn;
use sources::odds_api;
use sources::weather::{OPENWEATHER_KEY_VAR, OPEN_METEO_ARCHIVE_URL};
use sources::{ApiKey, DataKind};
use streaming::kafka::config::{lateness_setting, window_setting, DEFAULT_ALLOWED_LATENESS};
use streaming::kafka::{KafkaSettings, BROKERS_ENV};
use streaming::window::WindowSpec;

use crate::live::kafka::games::GamesSink;
use crate::live::kafka::news::NewsSink;
use crate::live::kafka::odds::OddsSink;
use crate::live::notify::AlertWebhook;
use crate::live::publish::replay::FROM_ENV as REPLAY_FROM_ENV;
use crate::transform::Engine;

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

/// What BetFlow's tasks need to know of the deployment, resolved once.
#[derive(Debug, Clone)]
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
    /// The raw lake and the warehouse (`BETFLOW_S3_*`,
    /// `BETFLOW_ICEBERG_CATALOG`, `BETFLOW_GLUE_*`, `AWS_*`).
    pub lake: LakeSettings,
    /// Where bronze and silver run (`BETFLOW_TRANSFORM_ENGINE`).
    pub engine: Engine,
    /// The Glue job of each transform task (`bronze_games`, …) when the
    /// engine is Glue; empty otherwise.
    pub glue_jobs: BTreeMap<String, GlueConfig>,
    /// How the Spark engine starts its jobs (`BETFLOW_SPARK_*`), when the
    /// engine is Spark.
    pub spark: Option<SparkSubmit>,
    /// The live side: Kafka, windows, publishers.
    pub live: LiveSettings,
    /// How prices are judged: `BETFLOW_DEVIG`, `BETFLOW_FAIR_ANCHOR`,
    /// `BETFLOW_STEAM_MIN_MOVE`, `BETFLOW_STEAM_MIN_BOOKMAKERS`,
    /// `BETFLOW_VALUE_EDGE`, `BETFLOW_KELLY_FRACTION`, `BETFLOW_LOW_HOLD`
    /// (steam's time span is the odds window). The stream's alerts, the
    /// markets pages and the gold marts judge prices by the same rules.
    pub rules: Rules,
}

/// `BETFLOW_LIVE_PUBLISH`: `auto` (default) publishes from the configured
/// sources; `off` publishes nothing (the topics are fed by another
/// deployment, or a test replays into them itself).
pub const PUBLISH_ENV: &str = "BETFLOW_LIVE_PUBLISH";

/// The live pipeline's settings.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// The cluster the stream tasks use; `None` (no `KAFKA_BROKERS` and no
    /// embedded broker): no Kafka stream tasks.
    pub kafka: Option<KafkaSettings>,
    /// Whether this deployment feeds the topics (`BETFLOW_LIVE_PUBLISH`).
    pub publish: bool,
    /// `BETFLOW_ODDS_WINDOW`, `BETFLOW_GAMES_WINDOW`, `BETFLOW_NEWS_WINDOW`.
    pub odds_window: WindowSpec,
    pub games_window: WindowSpec,
    pub news_window: WindowSpec,
    /// `BETFLOW_ALLOWED_LATENESS`, for every windowed processor.
    pub allowed_lateness: TimeDelta,
    /// The live pollers' periods (`BETFLOW_LIVE_{KIND}_SECS`, at least 5).
    pub poll_every: PollPeriods,
    /// Where the replay publisher's first catch-up starts
    /// (`BETFLOW_REPLAY_FROM`, RFC 3339); `None`: today's sports day.
    pub replay_from: Option<DateTime<Utc>>,
    /// `OPENWEATHER_API_KEY`: the live weather poller runs only with it.
    pub openweather_key: Option<ApiKey>,
    /// `BETFLOW_ALERT_WEBHOOK_URL`: where market alerts are POSTed, if anywhere.
    pub alert_webhook: Option<AlertWebhook>,
}

/// The deployment's [`Rules`] from its variables, each defaulting to
/// docs/formulas.md's values.
pub fn rules(env: &impl Lookup) -> Result<Rules, SettingError> {
    let d = Rules::default();
    let fraction = |name: &str, default: f64| -> Result<f64, SettingError> {
        match setting::parsed::<f64>(env, name, "must be a number between 0 and 1")? {
            None => Ok(default),
            Some(v) if v > 0.0 && v <= 1.0 => Ok(v),
            Some(v) => Err(SettingError::invalid(
                name,
                &v.to_string(),
                "must be above 0 and at most 1",
            )),
        }
    };
    Ok(Rules {
        devig: setting::parsed(
            env,
            "BETFLOW_DEVIG",
            "use multiplicative, additive, power or shin",
        )?
        .unwrap_or(d.devig),
        anchor: match env.get("BETFLOW_FAIR_ANCHOR") {
            None => d.anchor,
            Some(text) => text
                .parse()
                .map_err(|why: String| SettingError::invalid("BETFLOW_FAIR_ANCHOR", &text, &why))?,
        },
        steam: SteamRule {
            min_move: fraction("BETFLOW_STEAM_MIN_MOVE", d.steam.min_move)?,
            min_bookmakers: setting::positive(env, "BETFLOW_STEAM_MIN_BOOKMAKERS")?
                .unwrap_or(d.steam.min_bookmakers),
        },
        value_edge: fraction("BETFLOW_VALUE_EDGE", d.value_edge)?,
        kelly_fraction: fraction("BETFLOW_KELLY_FRACTION", d.kelly_fraction)?,
        low_hold: fraction("BETFLOW_LOW_HOLD", d.low_hold)?,
    })
}

/// `BETFLOW_ALERT_WEBHOOK_URL`: an http(s) URL market alerts are POSTed to.
pub const ALERT_WEBHOOK_ENV: &str = "BETFLOW_ALERT_WEBHOOK_URL";
/// `BETFLOW_ALERT_WEBHOOK_MAX_AGE_SECS`: older alerts are not sent (default 900).
pub const ALERT_MAX_AGE_ENV: &str = "BETFLOW_ALERT_WEBHOOK_MAX_AGE_SECS";

/// How often each live poller asks its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPeriods {
    pub odds: Duration,
    pub games: Duration,
    pub weather: Duration,
    pub news: Duration,
}

impl Default for PollPeriods {
    fn default() -> Self {
        PollPeriods {
            // Each odds poll costs markets × regions credits of the API's quota.
            odds: Duration::from_secs(300),
            games: Duration::from_secs(30),
            weather: Duration::from_secs(600),
            news: Duration::from_secs(300),
        }
    }
}

impl PollPeriods {
    pub fn of(&self, kind: DataKind) -> Duration {
        match kind {
            DataKind::Odds => self.odds,
            DataKind::Games => self.games,
            DataKind::Weather => self.weather,
            DataKind::News => self.news,
        }
    }

    fn resolve(env: &impl Lookup) -> Result<Self, SettingError> {
        let d = PollPeriods::default();
        let secs = |name: &str, default: Duration| -> Result<Duration, SettingError> {
            match env.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s >= 5)
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        SettingError::invalid(name, &v, "must be whole seconds, at least 5")
                    }),
            }
        };
        Ok(PollPeriods {
            odds: secs("BETFLOW_LIVE_ODDS_SECS", d.odds)?,
            games: secs("BETFLOW_LIVE_GAMES_SECS", d.games)?,
            weather: secs("BETFLOW_LIVE_WEATHER_SECS", d.weather)?,
            news: secs("BETFLOW_LIVE_NEWS_SECS", d.news)?,
        })
    }
}

impl Default for LiveSettings {
    /// No Kafka; publishing on; the processors' own windows.
    fn default() -> Self {
        LiveSettings {
            kafka: None,
            publish: true,
            odds_window: OddsSink::default().spec,
            games_window: GamesSink::default().spec,
            news_window: NewsSink::default().spec,
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            poll_every: PollPeriods::default(),
            replay_from: None,
            openweather_key: None,
            alert_webhook: None,
        }
    }
}

impl LiveSettings {
    /// `KAFKA_BROKERS` and the other `KAFKA_*` ([`KafkaSettings::resolve`]),
    /// `BETFLOW_LIVE_PUBLISH`, the windows, the poll periods,
    /// `BETFLOW_REPLAY_FROM` and `OPENWEATHER_API_KEY`.
    pub fn resolve(env: &impl Lookup) -> Result<Self, SettingError> {
        let d = LiveSettings::default();
        let kafka = match env.get(BROKERS_ENV) {
            Some(brokers) => Some(KafkaSettings::resolve(&brokers, env)?),
            None => None,
        };
        let publish = match env.get(PUBLISH_ENV).as_deref() {
            None | Some("auto") => true,
            Some("off") => false,
            Some(other) => {
                return Err(SettingError::invalid(
                    PUBLISH_ENV,
                    other,
                    "must be `auto` or `off`",
                ))
            }
        };
        let replay_from = match env.get(REPLAY_FROM_ENV) {
            None => None,
            Some(v) => Some(
                DateTime::parse_from_rfc3339(&v)
                    .map_err(|e| {
                        SettingError::invalid(
                            REPLAY_FROM_ENV,
                            &v,
                            format!("is not an RFC 3339 time ({e})"),
                        )
                    })?
                    .with_timezone(&Utc),
            ),
        };
        let alert_webhook = match env.get(ALERT_WEBHOOK_ENV) {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                let max_age: u64 = setting::positive(env, ALERT_MAX_AGE_ENV)?.unwrap_or(900);
                Some(AlertWebhook {
                    url,
                    max_age: Duration::from_secs(max_age),
                    every: Duration::from_secs(2),
                    backoff: Duration::from_millis(500),
                })
            }
            Some(url) => {
                let shown: String = url.chars().take(12).collect();
                return Err(SettingError::invalid(
                    ALERT_WEBHOOK_ENV,
                    &format!("{shown}…"),
                    "must be an http:// or https:// URL",
                ));
            }
        };
        Ok(LiveSettings {
            alert_webhook,
            kafka,
            publish,
            odds_window: window_setting(env, crate::live::odds::PROCESSOR, d.odds_window)?,
            games_window: window_setting(env, crate::live::games::PROCESSOR, d.games_window)?,
            news_window: window_setting(env, crate::live::news::PROCESSOR, d.news_window)?,
            allowed_lateness: lateness_setting(env)?,
            poll_every: PollPeriods::resolve(env)?,
            replay_from,
            openweather_key: env.get(OPENWEATHER_KEY_VAR).map(ApiKey::new),
        })
    }
}

impl Settings {
    /// `mode` with the production URLs, no Odds API key and the default
    /// snapshot interval.
    pub fn new(home: impl Into<PathBuf>, mode: SourceMode) -> Self {
        let home: PathBuf = home.into();
        Settings {
            home: home.clone(),
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
            lake: LakeSettings::local(&home),
            engine: Engine::Local,
            glue_jobs: BTreeMap::new(),
            spark: None,
            live: LiveSettings::default(),
            rules: Rules::default(),
        }
    }

    /// The settings of `home` (the binary's `--home`) from `BETFLOW_SOURCES`
    /// (`replay`, the default, or `live`), the live base URLs
    /// `BETFLOW_ESPN_URL`, `BETFLOW_ODDS_API_URL` and `BETFLOW_OPEN_METEO_URL`
    /// (for tests and proxies), `ODDS_API_KEY`,
    /// `BETFLOW_ODDS_SNAPSHOT_MINUTES`, `BETFLOW_NEWS_FEEDS_{SPORT}`, the
    /// lake's ([`LakeSettings::resolve`]) and the transform engine's.
    pub fn resolve(home: PathBuf, env: &impl Lookup) -> Result<Self, SettingError> {
        let sources: String = env.get("BETFLOW_SOURCES").unwrap_or_default();
        let mode: SourceMode = match sources.as_str() {
            "" | "replay" => SourceMode::Replay,
            "live" => SourceMode::Live {
                base_url: env
                    .get("BETFLOW_ESPN_URL")
                    .unwrap_or_else(|| espn::BASE_URL.to_owned()),
            },
            other => {
                return Err(SettingError::invalid(
                    "BETFLOW_SOURCES",
                    other,
                    "is not a source mode; use `replay` (default) or `live`",
                ))
            }
        };
        let minutes: u32 = match env.get("BETFLOW_ODDS_SNAPSHOT_MINUTES") {
            None => DEFAULT_ODDS_SNAPSHOT_MINUTES,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|m| (5..=1440).contains(m))
                .ok_or_else(|| {
                    SettingError::invalid(
                        "BETFLOW_ODDS_SNAPSHOT_MINUTES",
                        &v,
                        "must be whole minutes from 5 to 1440",
                    )
                })?,
        };
        let mut settings = Settings::new(home, mode);
        settings.odds_api_url = env
            .get("BETFLOW_ODDS_API_URL")
            .unwrap_or(settings.odds_api_url);
        settings.odds_api_key = env.get(odds_api::KEY_VAR).map(ApiKey::new);
        settings.odds_snapshot_minutes = minutes;
        settings.open_meteo_url = env
            .get("BETFLOW_OPEN_METEO_URL")
            .unwrap_or(settings.open_meteo_url);
        settings.news_feeds = crate::SPORTS
            .iter()
            .map(|s| {
                (
                    s.key.to_owned(),
                    sources::news::feeds_from(s, env.get_raw(&sources::news::feeds_var(s))),
                )
            })
            .collect();
        settings.lake = LakeSettings::resolve(&settings.home, env)?;
        settings.engine = Engine::resolve(env)?;
        settings.live = LiveSettings::resolve(env)?;
        settings.rules = rules(env)?;
        if settings.engine == Engine::Spark {
            settings.spark = Some(SparkSubmit::resolve(env)?);
            if settings.lake.s3.is_some() {
                return Err(SettingError::invalid(
                    crate::transform::ENGINE_VAR,
                    "spark",
                    "the local Spark engine reads the lake from this machine's disk; with the \
                     lake in S3 (BETFLOW_S3_BUCKET) use `glue`",
                ));
            }
        }
        if settings.engine == Engine::Glue {
            for kind in DataKind::ALL {
                for layer in ["bronze", "silver"] {
                    let key = format!("{layer}_{}", kind.as_str());
                    let config = GlueConfig::resolve(&key, env)?;
                    settings.glue_jobs.insert(key, config);
                }
            }
        }
        Ok(settings)
    }
}
