//! The tasks of `gold_marts_nightly`: one per gold table (dims, then the
//! marts that join them), one quality gate over gold, and the copy of gold
//! into the Postgres `serving` schema the dashboards read.
//!
//! Gold is rebuilt whole from the silver history every night (one commit
//! per table replacing all of it), so a late correction to any past day
//! reaches the marts without bookkeeping of what changed.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use orchestrator::{Task, TaskContext, TaskError, TaskResult, TaskSpec};
use polars::prelude::{DataFrame, IntoLazy, PolarsResult};
use serde_json::{json, Value};

use super::gold_tables as g;
use super::{gold, silver_tables};
use crate::iceberg::commit::RUN_ID_PROPERTY;
use crate::iceberg::{read_table, write_table, Filter, Replace, TableDef, Warehouse};
use crate::ingest::{resolve, SettingsOverride};
use crate::quality::{Check, Suite};

/// The grain of each gold table: the columns that identify a row (the
/// serving tables' keys, migration 0006).
pub const GRAINS: &[(&TableDef, &[&str])] = &[
    (&g::MARKET_EFFICIENCY, &["game_id", "bookmaker", "market"]),
    (
        &g::ODDS_MOVEMENT,
        &["game_id", "bookmaker", "market", "outcome"],
    ),
    (
        &g::CLOSING_LINE_VALUE,
        &["game_id", "bookmaker", "market", "outcome"],
    ),
    (&g::BOOKMAKER_COMPARISON, &["bookmaker", "sport", "season"]),
    (&g::TEAM_TRENDS, &["team_id", "season", "side"]),
    (&g::SCORING_PATTERNS, &["team_id", "period"]),
    (&g::WEATHER_IMPACT, &["sport", "wind_bucket"]),
    (&g::NEWS_SENTIMENT_DAILY, &["team_id", "sports_date"]),
    (&g::DIM_TEAMS, &["team_id"]),
    (&g::DIM_VENUES, &["venue_id"]),
    (&g::DIM_BOOKMAKERS, &["bookmaker"]),
    (&g::DIM_MARKETS, &["market", "outcome"]),
    (&g::DIM_DATES, &["date"]),
];

/// The gold table named `name` (`market_efficiency`, `dim_teams`, …).
pub fn table(name: &str) -> Option<&'static TableDef> {
    g::ALL.iter().copied().find(|t| t.name == name)
}

async fn warehouse(ctx: &TaskContext, settings: &SettingsOverride) -> Result<Warehouse, TaskError> {
    let settings = resolve(settings)?;
    let store = ctx.store().ok_or_else(|| {
        TaskError::msg(
            "gold tasks read and write Iceberg tables registered in the metadata database",
        )
    })?;
    Ok(Warehouse::for_lake(store.pool(), &settings.home).await?)
}

/// Which silver tables a gold table is built from.
fn inputs(def: &TableDef) -> Vec<&'static TableDef> {
    use silver_tables::{GAMES, GAME_PERIODS, NEWS, ODDS, WEATHER};
    match def.name {
        "market_efficiency" | "odds_movement" | "closing_line_value" | "dim_bookmakers" => {
            vec![&ODDS]
        }
        "bookmaker_comparison" | "team_trends" => vec![&ODDS, &GAMES],
        "scoring_patterns" => vec![&GAMES, &GAME_PERIODS],
        "weather_impact" | "dim_dates" => vec![&GAMES, &ODDS, &WEATHER],
        "news_sentiment_daily" => vec![&NEWS, &ODDS, &GAMES],
        "dim_teams" | "dim_venues" => vec![&GAMES],
        _ => Vec::new(),
    }
}

fn build(
    def: &TableDef,
    silver: &HashMap<&str, DataFrame>,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let lf = |name: &str| silver.get(name).cloned().unwrap_or_default().lazy();
    let (games, periods, odds, weather, news) = (
        lf("games"),
        lf("game_periods"),
        lf("odds"),
        lf("weather"),
        lf("news"),
    );
    match def.name {
        "market_efficiency" => gold::market_efficiency(odds, run_id),
        "odds_movement" => gold::odds_movement(odds, run_id),
        "closing_line_value" => gold::closing_line_value(odds, run_id),
        "bookmaker_comparison" => gold::bookmaker_comparison(odds, games, run_id),
        "team_trends" => gold::team_trends(games, odds, run_id),
        "scoring_patterns" => gold::scoring_patterns(games, periods, run_id),
        "weather_impact" => gold::weather_impact(games, odds, weather, run_id),
        "news_sentiment_daily" => gold::news_sentiment_daily(news, odds, games, run_id),
        "dim_teams" => gold::dim_teams(games, run_id),
        "dim_venues" => gold::dim_venues(games, run_id),
        "dim_bookmakers" => gold::dim_bookmakers(odds, run_id),
        "dim_markets" => gold::dim_markets(run_id),
        "dim_dates" => gold::dim_dates(games, odds, weather, run_id),
        other => Err(polars::prelude::polars_err!(ComputeError: "no gold builder for `{other}`")),
    }
}

/// `dims.{table}` / `marts.{table}`: rebuild one gold table from silver.
#[derive(Debug, Clone)]
pub struct BuildGold {
    def: &'static TableDef,
    settings: SettingsOverride,
}

impl BuildGold {
    pub fn new(def: &'static TableDef, settings: SettingsOverride) -> Self {
        Self { def, settings }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }
}

#[async_trait]
impl Task for BuildGold {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let wh = warehouse(&ctx, &self.settings).await?;
        let mut silver: HashMap<&str, DataFrame> = HashMap::new();
        for input in inputs(self.def) {
            let df = read_table(&wh, input, &Filter::All).await?;
            ctx.log
                .info(format!("read {}: {} rows", input.full_name(), df.height()));
            silver.insert(input.name, df);
        }
        let (def, run_id) = (self.def, ctx.run_id.clone());
        let frame = tokio::task::spawn_blocking(move || build(def, &silver, &run_id))
            .await?
            .map_err(|e| TaskError::msg(format!("building {}: {e}", def.full_name())))?;
        let props = HashMap::from([
            (RUN_ID_PROPERTY.to_owned(), ctx.run_id.clone()),
            ("betflow.dag-id".to_owned(), ctx.dag_id.clone()),
        ]);
        let summary = write_table(&wh, self.def, &frame, Replace::All, props).await?;
        ctx.log.info(format!(
            "{}: {} rows (snapshot {}, replaced {} rows)",
            summary.table, summary.added_rows, summary.snapshot_id, summary.deleted_rows
        ));
        Ok(json!({
            "table": summary.table,
            "records": summary.added_rows,
            "snapshot_id": summary.snapshot_id,
        }))
    }
}

/// The checks of one gold table: its schema, its grain unique and not
/// null, and the ranges its figures must stay in.
pub fn suite(def: &TableDef, grain: &[&str]) -> Suite {
    let nullable_grain: Vec<&str> = grain
        .iter()
        .copied()
        .filter(|c| def.column(c).is_some_and(|c| c.required))
        .collect();
    let mut suite = Suite::new(def.full_name())
        .key(grain.iter().copied())
        .error(Check::schema(
            def.columns.iter().map(|c| (c.name, c.kind.polars())),
        ))
        .error(Check::not_null(nullable_grain))
        .error(Check::unique(grain.iter().copied()));
    if def.column("avg_vig_pct").is_some() {
        suite = suite.warn(Check::between_exclusive("avg_vig_pct", -5.0, 30.0));
    }
    for (column, check) in [
        (
            "opening_decimal",
            Check::range("opening_decimal", Some(1.0), None, false, false),
        ),
        (
            "closing_decimal",
            Check::range("closing_decimal", Some(1.0), None, false, false),
        ),
        ("win_rate", Check::between("win_rate", 0.0, 1.0)),
        ("games", Check::at_least("games", 0.0)),
        (
            "mean_sentiment",
            Check::between_exclusive("mean_sentiment", -1.0, 1.0),
        ),
        ("prob_before", Check::between("prob_before", 0.0, 1.0)),
        ("prob_after", Check::between("prob_after", 0.0, 1.0)),
    ] {
        if def.column(column).is_some() {
            suite = suite.error(check);
        }
    }
    suite
}

/// `quality.gold`: every gold table against its suite; all results are
/// recorded, and any error-level failure stops the publish.
#[derive(Debug, Clone)]
pub struct GoldGate {
    settings: SettingsOverride,
}

impl GoldGate {
    pub fn new(settings: SettingsOverride) -> Self {
        Self { settings }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }
}

#[async_trait]
impl Task for GoldGate {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let wh = warehouse(&ctx, &self.settings).await?;
        let suites: Vec<Suite> = GRAINS
            .iter()
            .map(|(def, grain)| suite(def, grain))
            .collect();
        let refs: Vec<&Suite> = suites.iter().collect();
        let context = crate::quality::Context::for_task(&ctx, &refs).await?;
        let mut results = Vec::new();
        let mut rows = 0usize;
        for ((def, _), suite) in GRAINS.iter().zip(&suites) {
            let df = read_table(&wh, def, &Filter::All).await?;
            rows += df.height();
            results.extend(crate::quality::evaluate_async(suite, &df, &context).await?);
        }
        let mut out = crate::quality::gate(&ctx, &results).await?;
        if let Value::Object(map) = &mut out {
            map.insert("records".to_owned(), json!(rows));
        }
        Ok(out)
    }
}

/// `publish_serving`: each gold table copied into `serving.gold_{table}`
/// in its own transaction (readers see the old or the new mart, never half).
#[derive(Debug, Clone)]
pub struct PublishServing {
    settings: SettingsOverride,
}

impl PublishServing {
    pub fn new(settings: SettingsOverride) -> Self {
        Self { settings }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }
}

#[async_trait]
impl Task for PublishServing {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let wh = warehouse(&ctx, &self.settings).await?;
        let mut loaded = serde_json::Map::new();
        let mut total = 0u64;
        for def in g::ALL {
            let df = read_table(&wh, def, &Filter::All).await?;
            let n = crate::marts_serving::replace_serving(&wh.pool, def, &df)
                .await
                .map_err(|e| TaskError::msg(e.to_string()))?;
            ctx.log.info(format!(
                "{} ← {}: {n} rows",
                crate::marts_serving::serving_table(def),
                def.full_name()
            ));
            loaded.insert(def.name.to_owned(), json!(n));
            total += n;
        }
        Ok(json!({"records": total, "tables": loaded}))
    }
}
