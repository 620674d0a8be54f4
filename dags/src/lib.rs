//! BetFlow's pipelines, defined on the orchestrator.
//!
//! [`dag_bag`] is the one entry point the binary uses: it returns every DAG
//! BetFlow runs, with its real shape (task ids, groups, dependencies,
//! schedules, pools, retries, tags, params), plus the pools that rate-limit
//! the external APIs. The nightly DAGs fetch into the raw lake ([`ingest`]),
//! model bronze and silver Iceberg tables behind quality gates
//! ([`transform`], [`iceberg`], [`quality`]) and rebuild the gold marts
//! that are published to Postgres for dashboards; `live_streams` runs the
//! Kafka consumers ([`stream`]).

pub mod aws;
pub mod batch;
pub mod examples;
pub mod glue;
pub mod iceberg;
pub mod ingest;
pub mod lake;
pub mod marts_serving;
pub mod quality;
pub mod sensors;
pub mod sources;
pub mod stream;
pub mod streams;
pub mod transform;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use orchestrator::{DagBag, TaskContext, TaskError};
use serde_json::Value;

/// One supported league. Adding a sport is a row in [`SPORTS`], not new code:
/// every DAG fans out over this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sport {
    /// Our key: task group ids, the `sports` param, lake paths
    /// (`raw/historical/{key}/…`) and Kafka topics (`betflow.odds.{key}`).
    pub key: &'static str,
    /// ESPN site API path: `/apis/site/v2/sports/{espn_path}/scoreboard`.
    pub espn_path: &'static str,
    /// The Odds API v4 sport key: `/v4/sports/{odds_api_key}/odds`.
    pub odds_api_key: &'static str,
    /// Default RSS/Atom feeds of the league's news (`news_daily`, live mode),
    /// replaced by `BETFLOW_NEWS_FEEDS_{KEY}`. ESPN publishes one per league
    /// at `https://www.espn.com/espn/rss/{league}/news`, where college
    /// football's league is `ncf`.
    pub news_feeds: &'static [&'static str],
}

/// The leagues BetFlow covers (DATA.md, "Sports and leagues").
pub const SPORTS: &[Sport] = &[
    Sport {
        key: "nfl",
        espn_path: "football/nfl",
        odds_api_key: "americanfootball_nfl",
        news_feeds: &["https://www.espn.com/espn/rss/nfl/news"],
    },
    Sport {
        key: "ncaaf",
        espn_path: "football/college-football",
        odds_api_key: "americanfootball_ncaaf",
        news_feeds: &["https://www.espn.com/espn/rss/ncf/news"],
    },
    Sport {
        key: "nba",
        espn_path: "basketball/nba",
        odds_api_key: "basketball_nba",
        news_feeds: &["https://www.espn.com/espn/rss/nba/news"],
    },
    Sport {
        key: "nhl",
        espn_path: "hockey/nhl",
        odds_api_key: "icehockey_nhl",
        news_feeds: &["https://www.espn.com/espn/rss/nhl/news"],
    },
];

/// The row of a sport key, if we cover it.
pub fn sport(key: &str) -> Option<&'static Sport> {
    SPORTS.iter().find(|s| s.key == key)
}

/// The `sports` param's default: every sport in [`SPORTS`].
pub fn all_sports_param() -> Value {
    Value::Array(SPORTS.iter().map(|s| Value::from(s.key)).collect())
}

/// The run's `sports` param, in [`SPORTS`] order, checked against that table
/// so a typo in a run's conf fails loudly instead of silently selecting nothing.
pub fn selected_sports(ctx: &TaskContext) -> Result<Vec<String>, TaskError> {
    let wanted: Vec<String> = ctx.param("sports")?;
    let unknown: BTreeSet<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|s| sport(s).is_none())
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = SPORTS.iter().map(|s| s.key).collect();
        return Err(TaskError::msg(format!(
            "unknown sport(s) {unknown:?} in the `sports` param; known: {}",
            known.join(", ")
        )));
    }
    // Table order and no duplicates, whatever the conf says.
    Ok(SPORTS
        .iter()
        .filter(|s| wanted.iter().any(|w| w == s.key))
        .map(|s| s.key.to_owned())
        .collect())
}

/// Timezone of the nightly schedules and of the "sports day". US leagues
/// list games by their Eastern date (ESPN's `dates=YYYYMMDD`, the original's
/// New York day), and a schedule in this zone stays at the same local hour
/// across daylight saving time.
pub const TIMEZONE: &str = "America/New_York";

/// The sports day a run covers: the New York date of its data interval's start.
pub fn sports_day(interval_start: DateTime<Utc>) -> NaiveDate {
    interval_start
        .with_timezone(&chrono_tz::America::New_York)
        .date_naive()
}

/// Pool of the ESPN site API (no key, but unofficial: stay polite).
pub const ESPN_POOL: &str = "espn_api";
/// Pool of The Odds API: every call costs credits, so one at a time.
pub const ODDS_POOL: &str = "odds_api";
/// Pool of the weather APIs (Open-Meteo history, OpenWeather live).
pub const WEATHER_POOL: &str = "weather_api";
/// Pool of the news feeds (outlets' RSS/Atom; free, but not ours to hammer).
pub const NEWS_POOL: &str = "news_feeds";

/// Pools and their slots. Shared by every DAG and every `betflow` process,
/// so a backfill of many dates cannot hammer a source or burn the quota.
pub const POOLS: &[(&str, u32)] = &[
    (ESPN_POOL, 2),
    (ODDS_POOL, 1),
    (WEATHER_POOL, 2),
    (NEWS_POOL, 2),
];

/// Every BetFlow DAG and the pools they use.
///
/// # Panics
/// When a DAG definition is invalid (a cycle, an unknown or duplicate task,
/// a bad cron expression). Definitions are static code, so that is a bug the
/// unit tests catch, not a runtime condition.
pub fn dag_bag() -> DagBag {
    let brokers = std::env::var(stream::kafka::BROKERS_ENV).ok();
    dag_bag_with_brokers(brokers.as_deref())
}

/// [`dag_bag`] with the Kafka bootstrap servers given explicitly (for
/// `betflow up`, which may start its own broker).
pub fn dag_bag_with_brokers(brokers: Option<&str>) -> DagBag {
    let mut bag = DagBag::new();
    for (name, slots) in POOLS {
        bag.pool(name, *slots);
    }
    let dags = batch::dags()
        .into_iter()
        .chain([streams::live_streams_with(brokers)]);
    for dag in dags {
        bag.add(dag.unwrap_or_else(|e| panic!("invalid BetFlow DAG definition: {e}")));
    }
    bag
}

#[cfg(test)]
mod tests;
