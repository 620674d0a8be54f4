//! `betflow bench …`: benchmarks that print figures and assert nothing.

mod scheduler;
mod web;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

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
    },
    /// The DAGs page with many DAGs and runs, and a large grid, under load from wrk.
    Web {
        /// DAGs on the DAGs page.
        #[arg(long, default_value_t = 200)]
        dags: usize,
        /// Runs spread over those DAGs.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Seconds of load per page.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections wrk keeps open.
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
}

pub async fn run(home: &Path, cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Scheduler {
            json,
            repeat,
            idle_secs,
        } => scheduler::run(home, json, repeat, idle_secs).await,
        BenchCommand::Web {
            dags,
            runs,
            seconds,
            connections,
        } => web::run(home, dags, runs, seconds, connections).await,
    }
}
