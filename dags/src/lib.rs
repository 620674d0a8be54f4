//! BetFlow's pipelines, defined on the orchestrator.
//!
//! [`dag_bag`] is the one entry point the binary uses: it returns every DAG
//! BetFlow runs, with its real shape (task ids, groups, dependencies,
//! schedules, pools, retries, tags, params), plus the pools that rate-limit
//! the external APIs. The nightly DAGs fetch into the raw lake ([`ingest`]),
//! model bronze and silver Iceberg tables behind quality gates
//! ([`transform`] over the `lakehouse` crate) and rebuild the gold marts
//! that are published to Postgres for dashboards; `live_streams` runs the
//! Kafka consumers ([`live`]).

pub mod assets;
pub mod batch;
pub mod examples;
pub mod ingest;
pub mod lake;
pub mod live;
pub mod live_streams;
pub mod marts_serving;
pub mod sensors;
pub mod settings;
pub mod transform;

use std::collections::BTreeSet;
use std::sync::Arc;

use orchestrator::{DagBag, TaskContext, TaskError};
use serde_json::Value;
pub use sources::{sport, sports_day, DataKind, Sport, SPORTS, TIMEZONE};

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

/// The `serving` schema the processors, publishers and gold marts write
/// and the dashboards read (`migrations/serving`, docs/data-model.md).
pub static MIGRATIONS: orchestrator::store::Migrations = orchestrator::store::Migrations {
    owner: "serving",
    migrator: sqlx::migrate!("../migrations/serving"),
};

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

/// Every BetFlow DAG for a deployment's settings, resolved once by the
/// binary ([`settings::Settings::resolve`]), and the pools they use: every
/// task works on these (its `--home` included) instead of reading the
/// environment when it runs.
///
/// # Panics
/// When a DAG definition is invalid (a cycle, an unknown or duplicate task,
/// a bad cron expression). Definitions are static code, so that is a bug the
/// unit tests catch, not a runtime condition.
pub fn dag_bag_for(settings: Arc<settings::Settings>) -> DagBag {
    let dags = batch::dags(settings.clone())
        .into_iter()
        .chain([live_streams::live_streams(&settings)]);
    bag_of(dags)
}

fn bag_of(
    dags: impl Iterator<Item = Result<orchestrator::Dag, orchestrator::dag::DagError>>,
) -> DagBag {
    let mut bag = DagBag::new();
    // The files the DAGs are defined in, for `/api/v2/dagSources`.
    bag.source("dags/src/batch.rs", include_str!("batch.rs"));
    bag.source("dags/src/live_streams.rs", include_str!("live_streams.rs"));
    for (name, slots) in POOLS {
        bag.pool(name, *slots);
    }
    for dag in dags {
        bag.add(dag.unwrap_or_else(|e| panic!("invalid BetFlow DAG definition: {e}")));
    }
    bag
}

#[cfg(test)]
mod tests;
