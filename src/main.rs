//! `betflow`: one binary for the scheduler, executor, web server and CLI.
//! This file only wires the command line to the crates that do the work.

#[macro_use]
extern crate services;

mod cli;
mod settings;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the batch transforms allocate and
/// free column buffers of hundreds of megabytes from several threads, which
/// glibc's per-thread arenas fragment and keep resident. mimalloc returns
/// freed pages to the system shortly after (its purge delay), so a season
/// through gold does not keep the gigabytes it freed while the next sport is
/// built, and its C source builds in seconds where jemalloc's took a minute.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    settings::init_tracing(args.command.is_daemon());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(args));
    // Close connections and stop an owned embedded Postgres before exiting.
    drop(runtime);
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<services::output::StdoutClosed>().is_some() {
                return ExitCode::SUCCESS;
            }
            if let Some(usage) = e.downcast_ref::<cli::UsageError>() {
                eprintln!("error: {usage}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
