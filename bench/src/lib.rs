//! `betflow bench …`: benchmarks that print figures and assert nothing.
//! Their own crate, so the binary does not carry polars, iceberg and
//! parquet for them and editing a bench rebuilds only this crate.

#[macro_use]
extern crate services;

mod batch;
mod catchup;
mod histogram;
mod mixed;
mod process;
mod scheduler;
mod spark;
mod stream;
mod web;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use orchestrator::EngineConfig;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Chains and fan-outs of no-op tasks through the real scheduler and executor.
    Scheduler {
        #[arg(long)]
        json: bool,
        /// Runs per shape; the median wall time is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Seconds to sample the idle scheduler's CPU and RSS.
        #[arg(long, default_value_t = 10)]
        idle_secs: u64,
        /// Then this many hourly DAGs catch up a day at once, for the
        /// scheduler pass times and fairness (0: skip).
        #[arg(long, default_value_t = 500)]
        catchup_dags: usize,
        /// Run only these shapes (by DAG id, e.g. `bench_fanout_10000`;
        /// repeatable); all of them when absent.
        #[arg(long = "shape")]
        shapes: Vec<String>,
    },
    /// The DAGs page with many DAGs and runs, and a large grid, under load from wrk.
    Web {
        /// DAGs on the DAGs page.
        #[arg(long, default_value_t = 200)]
        dags: usize,
        /// Runs spread over those DAGs.
        #[arg(long, default_value_t = 100_000)]
        runs: usize,
        /// Seconds of load per page.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections wrk keeps open.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Then load the pages and the API for this many seconds while the scheduler runs a 1,000-task chain, and compare its dispatch latency with the idle one (0: skip).
        #[arg(long, default_value_t = 0)]
        mixed_seconds: u64,
        /// Concurrent connections of the mixed load, shared between its paths.
        #[arg(long, default_value_t = 200)]
        mixed_clients: usize,
        /// Paths the mixed load requests instead of the DAGs page, a grid,
        /// the runs API and the markets board (comma-separated, e.g.
        /// `/static/app.css`: a load that reads nothing from the database).
        #[arg(long, value_delimiter = ',')]
        mixed_paths: Vec<String>,
        /// The mixed run's engine commits without waiting for the WAL
        /// flush (`synchronous_commit = off` on its sessions): what the
        /// flush on every hop costs under the load. A diagnostic only:
        /// `betflow up` never commits so, as a Postgres crash would then
        /// lose the last claims and outcomes of tries that ran.
        #[arg(long)]
        mixed_async_commit: bool,
    },
    /// Odds updates through a real broker, the odds processor and Postgres:
    /// throughput draining a backlog, latency and RSS at a steady rate.
    Stream {
        #[arg(long)]
        json: bool,
        /// Updates produced before the consumer starts, for the throughput figure.
        #[arg(long, default_value_t = 1_000_000)]
        backlog: usize,
        /// Updates per second of the steady run.
        #[arg(long, default_value_t = 5_000)]
        rate: u32,
        /// Seconds of the steady run (600 for the 10-minute memory check).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Distinct events the updates cycle over.
        #[arg(long, default_value_t = 1_000)]
        events: usize,
        /// How long the load generator's producer gathers a partition's
        /// updates into one record batch (a steady high-rate producer
        /// batches; tansu's in-memory log slows with the number of batches).
        #[arg(long, default_value_t = 25)]
        linger_ms: u64,
    },
    /// A generated season of odds through raw → bronze → silver → gold, per
    /// layer, with peak RSS, and the comparable part in DuckDB for a ratio.
    Batch {
        #[arg(long)]
        json: bool,
        /// Odds rows wanted at least: the snapshot spacing is chosen to reach them.
        #[arg(long, default_value_t = 10_000_000)]
        odds_rows: usize,
        /// Minutes between odds snapshots instead of the spacing `--odds-rows` picks.
        #[arg(long)]
        snapshot_minutes: Option<u32>,
        /// Engine to compare with: `duckdb` re-runs silver odds and two gold
        /// marts, for a ratio; `spark` runs games and odds bronze and silver
        /// through BetFlow's Spark scripts and prints a Glue cost model.
        #[arg(long, value_enum, default_value = "duckdb")]
        compare: batch::Compare,
        /// Keep the Parquet files handed to DuckDB in this directory (to run
        /// scripts/bench_duckdb.py by hand) instead of a removed temporary one.
        #[arg(long)]
        export_dir: Option<std::path::PathBuf>,
        /// Threads parsing a day's raw odds into bronze (default: one per core;
        /// 1 is what the DAG's bronze task does within one run).
        #[arg(long)]
        bronze_threads: Option<usize>,
        /// Silver odds columns held for gold: `gold` (only the columns gold
        /// reads, as the nightly gold tasks scan them) or `all` (every column).
        #[arg(long, value_enum, default_value = "gold")]
        silver_columns: batch::SilverColumns,
    },
}

/// Runs one benchmark with the process's home and engine settings.
pub async fn run(home: &Path, engine: EngineConfig, cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Stream {
            json,
            backlog,
            rate,
            seconds,
            events,
            linger_ms,
        } => {
            let opts = stream::Options {
                backlog,
                rate,
                seconds,
                events,
                linger_ms,
            };
            stream::run(home, json, opts, engine.cpus).await
        }
        BenchCommand::Scheduler {
            json,
            repeat,
            idle_secs,
            catchup_dags,
            shapes,
        } => {
            scheduler::run(
                home,
                engine,
                scheduler::Options {
                    as_json: json,
                    repeat,
                    idle_secs,
                    catchup_dags,
                    shapes,
                },
            )
            .await
        }
        BenchCommand::Web {
            dags,
            runs,
            seconds,
            connections,
            mixed_seconds,
            mixed_clients,
            mixed_paths,
            mixed_async_commit,
        } => {
            let mixed = web::Mixed {
                seconds: mixed_seconds,
                clients: mixed_clients,
                paths: mixed_paths,
                async_commit: mixed_async_commit,
                engine,
            };
            web::run(home, dags, runs, seconds, connections, mixed).await
        }
        BenchCommand::Batch {
            json,
            odds_rows,
            snapshot_minutes,
            compare,
            export_dir,
            bronze_threads,
            silver_columns,
        } => {
            batch::run(batch::Options {
                json,
                odds_rows,
                snapshot_minutes,
                compare,
                export_dir,
                bronze_threads,
                silver_columns,
                cpus: engine.cpus,
            })
            .await
        }
    }
}
