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
use polars::prelude::{polars_err, DataFrame, IntoLazy};
use serde_json::{json, Value};

use super::gold::{self, OddsBySport, SilverInputs};
use super::gold_tables as g;
use super::{event_games, silver_tables};
use crate::ingest::SharedSettings;
use lakehouse::iceberg::commit::RUN_ID_PROPERTY;
use lakehouse::iceberg::write::PartValue;
use lakehouse::iceberg::{
    read_columns, read_table, write_table, Filter, IcebergError, Replace, TableDef, Warehouse,
};
use lakehouse::quality::{Check, Suite};

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

async fn warehouse(ctx: &TaskContext, settings: &SharedSettings) -> Result<Warehouse, TaskError> {
    let database = ctx.database().ok_or_else(|| {
        TaskError::msg(
            "gold tasks read and write Iceberg tables registered in the metadata database",
        )
    })?;
    (settings.lake)
        .warehouse(database)
        .await
        .map_err(IcebergError::into_task_error)
}

/// What one gold task read: the silver columns [`gold::reads`] names for
/// its table, and, when the table maps odds to games, the odds' events from
/// a scan of their own (reduced to one row per event before the prices are
/// read, so the team names are never held for every price).
async fn read_silver(
    ctx: &TaskContext,
    wh: &Warehouse,
    def: &'static TableDef,
) -> Result<SilverInputs, TaskError> {
    use silver_tables::{GAMES, GAME_PERIODS, NEWS, ODDS, WEATHER};
    // A table that maps odds to games builds one sport at a time: it reads
    // each sport's odds when it gets to it, never the whole history.
    let by_sport = gold::maps_events(def);
    let mut inputs = SilverInputs::default();
    for (input, slot) in [
        (&GAMES, &mut inputs.games),
        (&GAME_PERIODS, &mut inputs.game_periods),
        (&ODDS, &mut inputs.odds),
        (&WEATHER, &mut inputs.weather),
        (&NEWS, &mut inputs.news),
    ] {
        let columns = gold::reads(def, input);
        if columns.is_empty() || (by_sport && input.name == ODDS.name) {
            continue;
        }
        *slot = read_columns(wh, input, columns, &Filter::All).await?;
        ctx.log.info(format!(
            "read {}: {} rows, {} of its {} columns",
            input.full_name(),
            slot.height(),
            columns.len(),
            input.columns.len()
        ));
    }
    if by_sport {
        inputs.odds_events = Some(read_events(ctx, wh).await?);
        inputs.odds_by_sport = Some(odds_by_sport(ctx, wh, gold::reads(def, &ODDS)));
    }
    Ok(inputs)
}

fn of_sport(sport: &str) -> Filter {
    Filter::In("sport", vec![PartValue::Str(sport.to_owned())])
}

/// The odds' events ([`event_games::events`]), one sport's scan at a time,
/// each reduced to one row per event before the next is read. Every sport
/// of [`crate::SPORTS`]: silver holds no other (bronze keys its rows by the
/// DAGs' sport groups).
async fn read_events(ctx: &TaskContext, wh: &Warehouse) -> Result<DataFrame, TaskError> {
    let odds = &silver_tables::ODDS;
    let mut events: Option<DataFrame> = None;
    for sport in crate::SPORTS {
        let rows =
            read_columns(wh, odds, &event_games::EVENT_COLUMNS, &of_sport(sport.key)).await?;
        let reduced =
            tokio::task::spawn_blocking(move || event_games::events(rows.lazy()).collect())
                .await?
                .map_err(|e| {
                    TaskError::msg(format!(
                        "reducing the {} events of silver.odds: {e}",
                        sport.key
                    ))
                })?;
        match events.as_mut() {
            Some(all) => {
                all.vstack_mut(&reduced)
                    .map_err(|e| TaskError::msg(format!("stacking the odds events: {e}")))?;
            }
            None => events = Some(reduced),
        }
    }
    let events = events.unwrap_or_default();
    ctx.log.info(format!(
        "read the events of {}: {} events",
        odds.full_name(),
        events.height()
    ));
    Ok(events)
}

/// Reads `columns` of one sport's silver.odds when gold asks for it (on
/// gold's blocking thread, so the read is driven to completion there).
fn odds_by_sport(
    ctx: &TaskContext,
    wh: &Warehouse,
    columns: &'static [&'static str],
) -> OddsBySport {
    let (wh, log) = (wh.clone(), ctx.log.clone());
    let runtime = tokio::runtime::Handle::current();
    OddsBySport::new(move |sport| {
        let odds = &silver_tables::ODDS;
        let df = runtime
            .block_on(read_columns(&wh, odds, columns, &of_sport(sport)))
            .map_err(
                |e| polars_err!(ComputeError: "reading {} of {sport}: {e}", odds.full_name()),
            )?;
        log.info(format!(
            "read {} of {sport}: {} rows, {} of its {} columns",
            odds.full_name(),
            df.height(),
            columns.len(),
            odds.columns.len()
        ));
        Ok(df)
    })
}

/// `dims.{table}` / `marts.{table}`: rebuild one gold table from silver.
#[derive(Debug, Clone)]
pub struct BuildGold {
    def: &'static TableDef,
    settings: SharedSettings,
}

impl BuildGold {
    pub fn new(def: &'static TableDef, settings: SharedSettings) -> Self {
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
        let silver = read_silver(&ctx, &wh, self.def).await?;
        let (def, run_id) = (self.def, ctx.run_id.clone());
        let rules = self.settings.rules.clone();
        let until = event_games::modelled_until(crate::sports_day(ctx.data_interval.start));
        let (frame, counts) = tokio::task::spawn_blocking(move || {
            let counts = match &silver.odds_events {
                Some(events) => Some(event_games::counts(
                    event_games::event_games(events.clone().lazy(), silver.games.clone().lazy())?,
                    until,
                )?),
                None => None,
            };
            Ok::<_, polars::prelude::PolarsError>((
                gold::build_one(def, &silver, &rules, &run_id)?,
                counts,
            ))
        })
        .await?
        .map_err(|e| TaskError::msg(format!("building {}: {e}", def.full_name())))?;
        if let Some(c) = &counts {
            ctx.log.info(format!(
                "odds events: {} mapped to a game of {}, {} commencing after the day's games (not modelled yet), {} matching no game",
                c.mapped,
                c.events,
                c.awaiting_games,
                c.unmatched()
            ));
        }
        let props = HashMap::from([
            (RUN_ID_PROPERTY.to_owned(), ctx.run_id.clone()),
            ("betflow.dag-id".to_owned(), ctx.dag_id.clone()),
        ]);
        let summary = write_table(&wh, self.def, &frame, Replace::All, props).await?;
        ctx.log.info(format!(
            "{}: {} rows (snapshot {}, replaced {} rows)",
            summary.table, summary.added_rows, summary.snapshot_id, summary.deleted_rows
        ));
        let mut out = json!({
            "table": summary.table,
            "records": summary.added_rows,
            "snapshot_id": summary.snapshot_id,
        });
        if let (Some(c), Value::Object(map)) = (counts, &mut out) {
            map.insert("odds_events".to_owned(), json!(c));
        }
        Ok(out)
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
    settings: SharedSettings,
}

impl GoldGate {
    pub fn new(settings: SharedSettings) -> Self {
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
        let context = lakehouse::quality::Context::for_task(&ctx, &refs).await?;
        let mut results = Vec::new();
        let mut rows = 0usize;
        for ((def, _), suite) in GRAINS.iter().zip(&suites) {
            let df = read_table(&wh, def, &Filter::All).await?;
            rows += df.height();
            results.extend(lakehouse::quality::evaluate_async(suite, &df, &context).await?);
        }
        let mut out = lakehouse::quality::gate(&ctx, &results).await?;
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
    settings: SharedSettings,
}

impl PublishServing {
    pub fn new(settings: SharedSettings) -> Self {
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
        let pool = ctx
            .database()
            .cloned()
            .ok_or_else(|| TaskError::msg("publish_serving writes to the metadata database"))?;
        let mut loaded = serde_json::Map::new();
        let mut total = 0u64;
        for def in g::ALL {
            let df = read_table(&wh, def, &Filter::All).await?;
            let n = crate::marts_serving::replace_serving(&pool, def, &df)
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
