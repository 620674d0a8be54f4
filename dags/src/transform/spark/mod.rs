//! Bronze and silver on Spark: BetFlow's own PySpark job scripts
//! (`glue/` at the repository root, carried in the binary), run as AWS
//! Glue job runs (`BETFLOW_TRANSFORM_ENGINE=glue`) or by a local
//! `spark-submit` (`=spark`), and committed by BetFlow (docs/glue.md).
//!
//! A job never touches Iceberg: [`stage`] plans its inputs into a manifest
//! (raw objects for bronze, the bronze partitions' data files for silver),
//! the job writes Parquet files and a manifest of them under a staging
//! prefix of the lake, and [`task::SparkTransform`] checks those files
//! against the table's definition and commits them with the same
//! replace-partition write and quality gates as the polars engine.
//!
//! * [`scripts`]: the scripts, their version, which transforms have one;
//! * [`schemas`]: the table definitions the scripts read (`glue/schemas.json`);
//! * [`news_rules`]: the news scripts' team phrases, lexicon and text
//!   bounds (`glue/news.json`);
//! * [`submit`]: the local `spark-submit` runner;
//! * [`deploy`]: `betflow glue deploy` and `betflow glue status`.

pub mod deploy;
pub mod news_rules;
pub mod schemas;
pub mod scripts;
pub mod stage;
pub mod submit;
pub mod task;
