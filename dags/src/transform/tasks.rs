//! The orchestrator tasks of the transforms: `transform.bronze_{family}`,
//! `transform.silver_{family}` and `quality.silver_{family}` of the four
//! nightly ingest DAGs.
//!
//! Each reads the run's sports day for the sports its `sports` param
//! selects and replaces exactly those (sport, day) partitions, so a re-run
//! or a backfill of a date range is idempotent. Polars runs on tokio's
//! blocking pool: its engine blocks the thread it runs on.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use orchestrator::{Task, TaskContext, TaskError, TaskResult, TaskSpec};
use polars::prelude::{polars_err, DataFrame, IntoLazy, PolarsResult};
use serde_json::{json, Value};

use super::bronze::{self, Origin};
use super::bronze_odds::OddsColumns;
use super::{event_games, silver, silver_news, silver_tables, suites};
use crate::ingest::SharedSettings;
use crate::lake::layout::date_prefix;
use crate::lake::{read_raw, ObjectStore, RawKey};
use crate::selected_sports;
use crate::sports_day;
use crate::DataKind;
use lakehouse::iceberg::commit::RUN_ID_PROPERTY;
use lakehouse::iceberg::write::PartValue;
use lakehouse::iceberg::{
    read_columns, read_table, write_table, Filter, IcebergError, Replace, TableDef, Warehouse,
    WriteSummary,
};

/// The bronze table a data kind is modelled into.
pub(crate) fn bronze_table(kind: DataKind) -> &'static TableDef {
    match kind {
        DataKind::Games => &bronze::GAMES,
        DataKind::Odds => &bronze::ODDS,
        DataKind::Weather => &bronze::WEATHER,
        DataKind::News => &bronze::NEWS,
    }
}

/// What every transform task of a run works on.
pub(crate) struct Scope {
    pub(crate) settings: SharedSettings,
    pub(crate) warehouse: Warehouse,
    pub(crate) date: NaiveDate,
    pub(crate) sports: Vec<String>,
}

impl Scope {
    pub(crate) async fn of(
        ctx: &TaskContext,
        settings: &SharedSettings,
    ) -> Result<Scope, TaskError> {
        let settings = SharedSettings::clone(settings);
        let database = ctx.database().ok_or_else(|| {
            TaskError::msg(
                "this task writes Iceberg tables registered in the metadata database; run it \
                 through the scheduler or `betflow tasks run`, not without a database",
            )
        })?;
        let warehouse = (settings.lake)
            .warehouse(database)
            .await
            .map_err(IcebergError::into_task_error)?;
        Ok(Scope {
            warehouse,
            date: sports_day(ctx.data_interval.start),
            sports: selected_sports(ctx)?,
            settings,
        })
    }

    /// Every (sport, day) partition this run owns, even empty ones: a day
    /// whose data disappeared on re-run must be cleared, not kept.
    fn partitions(&self) -> Vec<Vec<PartValue>> {
        self.sports
            .iter()
            .map(|s| vec![PartValue::Str(s.clone()), PartValue::Date(self.date)])
            .collect()
    }

    pub(crate) fn filter(&self) -> Filter {
        Filter::And(vec![
            Filter::In(
                "sport",
                self.sports
                    .iter()
                    .map(|s| PartValue::Str(s.clone()))
                    .collect(),
            ),
            Filter::In("sports_date", vec![PartValue::Date(self.date)]),
        ])
    }

    async fn read(&self, def: &TableDef) -> Result<DataFrame, TaskError> {
        Ok(read_table(&self.warehouse, def, &self.filter()).await?)
    }

    /// The silver games the day's odds events can map to that are modelled
    /// by now (the map's columns only): the odds DAG waits for the day's
    /// games, and later days are mapped by gold once they are in.
    async fn games_around(&self) -> Result<DataFrame, TaskError> {
        Ok(read_columns(
            &self.warehouse,
            &silver_tables::GAMES,
            &event_games::GAME_COLUMNS,
            &self.games_window(),
        )
        .await?)
    }

    /// The selected sports' silver games of [`event_games::silver_window`].
    pub(crate) fn games_window(&self) -> Filter {
        let (from, to) = event_games::silver_window(self.date);
        Filter::And(vec![
            Filter::In(
                "sport",
                self.sports
                    .iter()
                    .map(|s| PartValue::Str(s.clone()))
                    .collect(),
            ),
            Filter::Between("sports_date", from, to),
        ])
    }

    pub(crate) async fn write(
        &self,
        ctx: &TaskContext,
        def: &TableDef,
        df: &DataFrame,
    ) -> Result<WriteSummary, TaskError> {
        let props = HashMap::from([
            (RUN_ID_PROPERTY.to_owned(), ctx.run_id.clone()),
            ("betflow.dag-id".to_owned(), ctx.dag_id.clone()),
            ("betflow.task-id".to_owned(), ctx.task_id.clone()),
        ]);
        let summary = write_table(
            &self.warehouse,
            def,
            df,
            Replace::Partitions(self.partitions()),
            props,
        )
        .await?;
        ctx.log.info(format!(
            "{}: {} rows for {:?} on {} ({}; snapshot {}, {} rows replaced, {} rows in the table)",
            summary.table,
            summary.added_rows,
            self.sports,
            self.date,
            summary.operation,
            summary.snapshot_id,
            summary.deleted_rows,
            summary.total_rows
        ));
        Ok(summary)
    }
}

/// Run a polars computation on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, TaskError>
where
    T: Send + 'static,
    F: FnOnce() -> PolarsResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await?
        .map_err(|e| TaskError::msg(format!("transform failed: {e}")))
}

/// The newest raw object of `sport`'s `kind` on `date` (a re-run replaces
/// the day's object, so there is normally exactly one).
pub(crate) async fn newest_raw(
    lake: &dyn ObjectStore,
    sport: &str,
    kind: DataKind,
    date: NaiveDate,
) -> Result<Option<(String, String)>, TaskError> {
    let objects = lake.list(&date_prefix(sport, kind, date)).await?;
    Ok(objects
        .into_iter()
        .filter_map(|m| RawKey::parse(&m.key).ok().map(|k| (m, k)))
        .max_by(|(a, _), (b, _)| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
        .map(|(m, k)| (m.key, k.source)))
}

/// `transform.bronze_{family}`: the day's raw objects of the selected
/// sports → bronze rows → one commit replacing those (sport, day) partitions.
#[derive(Debug, Clone)]
pub struct LoadBronze {
    family: DataKind,
    settings: SharedSettings,
}

impl LoadBronze {
    pub fn new(family: DataKind, settings: SharedSettings) -> Self {
        Self { family, settings }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }
}

#[async_trait]
impl Task for LoadBronze {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let scope = Scope::of(&ctx, &self.settings).await?;
        let lake = scope.settings.lake.open()?;
        let mut payloads: Vec<(Payload, Origin)> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for sport in &scope.sports {
            let Some((key, source)) =
                newest_raw(lake.as_ref(), sport, self.family, scope.date).await?
            else {
                missing.push(sport.clone());
                continue;
            };
            let bytes = read_raw(lake.as_ref(), &key).await?.ok_or_else(|| {
                TaskError::msg(format!("raw object {key} vanished while loading"))
            })?;
            let payload = match self.family {
                // Odds objects are large: bronze decodes them straight into
                // its columns, so keep the bytes, checked to be JSON first
                // (UTF-8 apart: skipping values does not check their text).
                DataKind::Odds => std::str::from_utf8(&bytes)
                    .map_err(serde::de::Error::custom)
                    .and_then(|_| serde_json::from_slice::<serde::de::IgnoredAny>(&bytes))
                    .map(|_| Payload::Bytes(bytes)),
                _ => serde_json::from_slice::<Value>(&bytes).map(Payload::Json),
            }
            .map_err(|e| TaskError::msg(format!("raw object {key} is not JSON: {e}")))?;
            payloads.push((
                payload,
                Origin {
                    sport: sport.clone(),
                    sports_date: scope.date,
                    source,
                    raw_key: key,
                    run_id: ctx.run_id.clone(),
                    ingested_at: Utc::now(),
                },
            ));
        }
        if !missing.is_empty() {
            ctx.log.warn(format!(
                "no raw {:?} object on {} for {:?}: their partitions are cleared",
                self.family, scope.date, missing
            ));
        }
        let family = self.family;
        let frame = blocking(move || bronze_frame(family, &payloads)).await?;
        let summary = scope.write(&ctx, bronze_table(family), &frame).await?;
        Ok(json!({
            "table": summary.table,
            "date": scope.date,
            "sports": scope.sports,
            "records": summary.added_rows,
            "snapshot_id": summary.snapshot_id,
            "missing_raw": missing,
        }))
    }
}

/// A raw object as bronze reads it.
enum Payload {
    Json(Value),
    /// Known to be JSON; decoded by the loader itself.
    Bytes(Vec<u8>),
}

impl Payload {
    fn json(&self) -> Option<&Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Bytes(_) => None,
        }
    }
}

fn bronze_frame(family: DataKind, payloads: &[(Payload, Origin)]) -> PolarsResult<DataFrame> {
    let values = || {
        payloads
            .iter()
            .filter_map(|(p, origin)| p.json().map(|v| (v, origin)))
    };
    match family {
        DataKind::Games => {
            let mut rows = Vec::new();
            for (payload, origin) in values() {
                // The payload was checked by `validate`; an unreadable one
                // there failed that task, so this is only defensive.
                let games = bronze::games(payload, origin).unwrap_or_default();
                rows.extend(games.into_iter().map(|g| (g, origin)));
            }
            bronze::games_frame(&rows)
        }
        DataKind::Odds => {
            let mut columns = OddsColumns::default();
            for (payload, origin) in payloads {
                match payload {
                    Payload::Bytes(bytes) => {
                        columns
                            .add_object(bytes, origin, crate::ingest::odds::FORMAT)
                            .map_err(|e| {
                                polars_err!(ComputeError: "raw object {} is not JSON: {e}", origin.raw_key)
                            })?;
                    }
                    Payload::Json(value) => {
                        columns.add_payload(value, origin, crate::ingest::odds::FORMAT);
                    }
                }
            }
            columns.finish()
        }
        DataKind::Weather => {
            let mut rows = Vec::new();
            for (payload, origin) in values() {
                rows.extend(bronze::weather(payload).into_iter().map(|w| (w, origin)));
            }
            bronze::weather_frame(&rows)
        }
        DataKind::News => {
            let mut rows = Vec::new();
            for (payload, origin) in values() {
                rows.extend(
                    bronze::news(payload, origin)
                        .into_iter()
                        .map(|n| (n, origin)),
                );
            }
            bronze::news_frame(&rows)
        }
    }
}

/// `transform.silver_{family}`: the day's bronze rows → silver.
#[derive(Debug, Clone)]
pub struct BuildSilver {
    family: DataKind,
    settings: SharedSettings,
}

impl BuildSilver {
    pub fn new(family: DataKind, settings: SharedSettings) -> Self {
        Self { family, settings }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }
}

#[async_trait]
impl Task for BuildSilver {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let scope = Scope::of(&ctx, &self.settings).await?;
        let bronze = scope.read(bronze_table(self.family)).await?;
        let run_id = ctx.run_id.clone();
        let mut written: Vec<WriteSummary> = Vec::new();
        match self.family {
            DataKind::Games => {
                let (games, periods) =
                    blocking(move || silver::games(bronze.lazy(), &run_id)).await?;
                written.push(scope.write(&ctx, &silver_tables::GAMES, &games).await?);
                written.push(
                    scope
                        .write(&ctx, &silver_tables::GAME_PERIODS, &periods)
                        .await?,
                );
            }
            DataKind::Odds => {
                let games = scope.games_around().await?;
                let until = event_games::modelled_until(scope.date);
                let (odds, counts) = blocking(move || {
                    let odds = silver::odds(bronze.lazy(), games.lazy(), &run_id)?;
                    let counts =
                        event_games::counts(event_games::applied(odds.clone().lazy()), until)?;
                    Ok((odds, counts))
                })
                .await?;
                ctx.log.info(format!(
                    "silver.odds: {} events, {} mapped to a game, {} of games after {} (not modelled yet; gold maps them), {} matching no game",
                    counts.events,
                    counts.mapped,
                    counts.awaiting_games,
                    scope.date,
                    counts.unmatched()
                ));
                written.push(scope.write(&ctx, &silver_tables::ODDS, &odds).await?);
                return Ok(json!({
                    "date": scope.date,
                    "sports": scope.sports,
                    "records": written[0].added_rows,
                    "events": counts,
                    "tables": written,
                }));
            }
            DataKind::Weather => {
                let weather = blocking(move || silver::weather(bronze.lazy(), &run_id)).await?;
                written.push(scope.write(&ctx, &silver_tables::WEATHER, &weather).await?);
            }
            DataKind::News => {
                let news = blocking(move || silver_news::news(bronze.lazy(), &run_id)).await?;
                let unmatched = news.column("team_id").map_or(0, |c| c.null_count());
                ctx.log.info(format!(
                    "silver.news: {} rows, {unmatched} of them articles naming no team",
                    news.height()
                ));
                written.push(scope.write(&ctx, &silver_tables::NEWS, &news).await?);
                return Ok(json!({
                    "date": scope.date,
                    "sports": scope.sports,
                    "records": written[0].added_rows,
                    "unmatched_items": unmatched,
                    "tables": written,
                }));
            }
        }
        Ok(json!({
            "date": scope.date,
            "sports": scope.sports,
            "records": written.first().map(|w| w.added_rows).unwrap_or(0),
            "tables": written,
        }))
    }
}

/// `quality.silver_{family}`: the day's silver rows against the family's
/// suite; results are stored per run, an error-level failure fails the task.
#[derive(Debug, Clone)]
pub struct SilverGate {
    family: DataKind,
    settings: SharedSettings,
}

impl SilverGate {
    pub fn new(family: DataKind, settings: SharedSettings) -> Self {
        Self { family, settings }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }
}

#[async_trait]
impl Task for SilverGate {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let scope = Scope::of(&ctx, &self.settings).await?;
        let (suite, frame) = match self.family {
            DataKind::Games => {
                let games = scope.read(&silver_tables::GAMES).await?;
                let periods = scope.read(&silver_tables::GAME_PERIODS).await?;
                let frame =
                    blocking(move || suites::games_with_period_sums(&games, &periods)).await?;
                (suites::games(), frame)
            }
            DataKind::Odds => {
                let odds = scope.read(&silver_tables::ODDS).await?;
                let until = event_games::modelled_until(scope.date);
                let frame = blocking(move || suites::odds_for_checks(&odds, until)).await?;
                (suites::odds(), frame)
            }
            DataKind::Weather => (
                suites::weather(),
                scope.read(&silver_tables::WEATHER).await?,
            ),
            DataKind::News => {
                let news = scope.read(&silver_tables::NEWS).await?;
                let frame = blocking(move || suites::news_with_team_key(&news)).await?;
                (suites::news(), frame)
            }
        };
        let rows = frame.height();
        let mut out = lakehouse::quality::check_table(&ctx, &suite, &frame).await?;
        if let Value::Object(map) = &mut out {
            map.insert("records".to_owned(), json!(rows));
        }
        Ok(out)
    }
}
