//! The batch transforms: raw lake → bronze → silver → gold, with polars.
//!
//! * [`bronze`]: raw payloads flattened to typed rows, one per source
//!   record, with ingestion metadata (source, raw key, run id, time);
//!   [`bronze_odds`]: bronze.odds decoded straight into its columns.
//! * [`silver`]: cleaned and conformed (deduplicated, canonical ids, UTC,
//!   both price formats, opening and closing lines, events mapped to the
//!   games modelled so far);
//!   [`silver_news`]: articles per team they name, with sentiment.
//! * [`gold`]: the marts and dimensions of docs/data-model.md#gold-tables,
//!   rebuilt over the whole silver history each night, odds events mapped
//!   to games again over all of it ([`event_games`]).
//!
//! Layers are pure functions over DataFrames; [`tasks`] binds them to the
//! lake, the Iceberg tables and the quality gates.

pub mod bronze;
pub mod bronze_odds;
pub mod event_games;
pub mod frame;
pub mod gold;
pub mod gold_tables;
pub mod gold_tasks;
pub mod silver;
pub mod silver_news;
pub mod silver_tables;
pub mod spark;
pub mod suites;
pub mod tasks;

use orchestrator::setting::{Lookup, SettingError};

/// Where the bronze and silver transforms run (`BETFLOW_TRANSFORM_ENGINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// In this process, with polars (the default).
    #[default]
    Local,
    /// As AWS Glue job runs ([`lakehouse::glue_job::GlueJob`]), one job per
    /// transform task, named by `BETFLOW_GLUE_JOB_NAME_{TASK}` or
    /// `BETFLOW_GLUE_JOB_PREFIX` + task (e.g. `bronze_odds`). Transforms
    /// BetFlow ships a script for ([`spark::scripts::JOBS`]) run it and
    /// are committed by BetFlow; the others run the user's job as it is.
    Glue,
    /// BetFlow's Spark scripts under a local `spark-submit`
    /// ([`spark::submit`]); transforms without a script run in polars.
    Spark,
}

/// The variable choosing the [`Engine`].
pub const ENGINE_VAR: &str = "BETFLOW_TRANSFORM_ENGINE";

impl Engine {
    /// The engine `BETFLOW_TRANSFORM_ENGINE` names (`local` when unset).
    pub fn resolve(env: &impl Lookup) -> Result<Engine, SettingError> {
        let Some(value) = env.get(ENGINE_VAR) else {
            return Ok(Engine::Local);
        };
        match value.to_ascii_lowercase().as_str() {
            "local" | "polars" => Ok(Engine::Local),
            "glue" => Ok(Engine::Glue),
            "spark" => Ok(Engine::Spark),
            _ => Err(SettingError::invalid(
                ENGINE_VAR,
                &value,
                "expected `local` (polars in process), `spark` (BetFlow's Spark scripts under a \
                 local spark-submit) or `glue` (AWS Glue job runs)",
            )),
        }
    }
}
