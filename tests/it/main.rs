//! The `betflow` binary as a user runs it: every integration test, one
//! test crate (one link of the workspace instead of one per file). Each
//! test starts its own throwaway Postgres cluster (`common`).

mod common;
#[path = "../../dags/tests/it/support/mod.rs"]
#[allow(dead_code)]
mod support;

mod accounts;
mod airflow_client;
mod api;
mod assets;
mod browser;
mod cli;
mod dag_versions;
mod glue_catalog;
mod grafana;
mod ingest;
mod kafka;
mod mapping;
mod processes;
mod run_alerts;
mod runs;
mod spark;
mod warehouse;
mod web_analytics;
mod web_markets;
mod web_pages;
mod web_streams;
