//! `betflow`: one binary for the scheduler, executor, web server and CLI.
//! This file only wires the command line to the crates that do the work.

#[macro_use]
extern crate services;

mod cli;
mod settings;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of glibc's malloc, as polars recommends: the batch
/// transforms allocate and free column buffers of hundreds of megabytes
/// from two threads, which glibc's arenas fragment and keep resident.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (`_RJEM_MALLOC_CONF` in the
/// environment overrides them). Freed pages go back to the system after a
/// second instead of ten, by a background thread off the transforms' path:
/// a season through gold frees gigabytes that would otherwise stay
/// resident while the next sport is built.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    settings::init_tracing(args.command.is_daemon());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.command.serves_web() {
        builder
            .worker_threads(args.settings.web_threads())
            .thread_name("betflow-web");
    }
    let runtime = match builder.enable_all().build() {
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
