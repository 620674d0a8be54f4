//! The lakehouse under BetFlow's pipelines, knowing no sport: object stores
//! for the raw lake ([`lake`]), Apache Iceberg tables with replace-partition
//! commits and column reads ([`iceberg`]), declarative quality checks
//! recorded per task try ([`quality`]), and AWS Glue job runs as tasks
//! ([`glue_job`]). Glue is reached through a small signed JSON client
//! ([`glue_api`]); the keys, region, signing and HTTPS client S3 and Glue
//! share are in [`aws`].
//!
//! Callers bring the meaning: table definitions, key layouts and check
//! suites live with the domain that owns them.

pub mod aws;
pub mod glue_api;
pub mod glue_job;
pub mod iceberg;
pub mod lake;
pub mod quality;
pub mod settings;

pub use settings::{CatalogSetting, LakeSettings};
