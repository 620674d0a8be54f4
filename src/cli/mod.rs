//! Command-line interface: argument parsing and dispatch to one module per
//! command family.

mod backfill;
mod daemon;
mod dags;
mod db;
mod glue;
mod runs;
mod stream;
mod tasks;
mod users;
mod wait;

use std::fmt;
use std::process::ExitCode;

use ::dags::settings::Settings as PipelineSettings;
use anyhow::Result;
use clap::{Parser, Subcommand};
use orchestrator::setting::{Layered, ProcessEnv, Vars};
use orchestrator::DagBag;

use crate::settings::Settings;

/// A mistake in what the user typed (unknown id, bad date, bad JSON):
/// printed as one line, exit code 2, nothing written.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

#[derive(Parser)]
#[command(
    name = "betflow",
    version,
    about = "Sports-betting analytics on an Airflow-style DAG orchestrator"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run everything: migrations, scheduler, executor, stream tasks and the web server on 127.0.0.1.
    Up {
        /// Port of the web server.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on; 127.0.0.1 keeps the UI local (use 0.0.0.0 in containers).
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
    },
    /// Run the scheduler and executor without the web server (for extra machines).
    Scheduler,
    /// Metadata database.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// List, show, pause and trigger DAGs.
    #[command(subcommand)]
    Dags(dags::DagsCommand),
    /// DAG runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Task instances: run one now, clear, read logs.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Create runs for every schedule interval in a date range.
    Backfill(backfill::BackfillArgs),
    /// Kafka streams: replay historical data into the topics.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Web UI and API users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// API bearer tokens.
    #[command(subcommand)]
    Tokens(users::TokensCommand),
    /// BetFlow's Spark job scripts on AWS Glue: deploy, status, schemas.
    #[command(subcommand)]
    Glue(glue::GlueCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(::bench::BenchCommand),
}

impl Command {
    /// Long-running commands log at info level by default.
    pub fn is_daemon(&self) -> bool {
        matches!(self, Command::Up { .. } | Command::Scheduler)
    }

    /// Whether the command serves the web from the process's runtime (`up`,
    /// and `bench web`, which measures it as `up` runs it).
    pub fn serves_web(&self) -> bool {
        matches!(
            self,
            Command::Up { .. } | Command::Bench(::bench::BenchCommand::Web { .. })
        )
    }
}

/// The pipelines' settings of this `home` from the environment, with
/// `brokers` (an embedded broker's) instead of `KAFKA_BROKERS` when given.
/// A bad value stops the command (exit 2) naming it.
pub fn pipeline_settings(settings: &Settings, brokers: Option<&str>) -> Result<PipelineSettings> {
    let own = Vars::new(brokers.map(|b| (streaming::kafka::BROKERS_ENV, b)));
    PipelineSettings::resolve(settings.home.clone(), &Layered(own, ProcessEnv))
        .map_err(|e| usage(e.to_string()))
}

/// BetFlow's DAGs for these settings' home, plus the examples when
/// `BETFLOW_LOAD_EXAMPLES` is set.
pub fn dag_bag(settings: &Settings) -> Result<DagBag> {
    dag_bag_with_brokers(settings, None)
}

/// [`dag_bag`] with explicit Kafka bootstrap servers. The pipelines'
/// settings are resolved here, once, and every task works under this `home`.
pub fn dag_bag_with_brokers(settings: &Settings, brokers: Option<&str>) -> Result<DagBag> {
    let pipelines = pipeline_settings(settings, brokers)?;
    let mut bag = ::dags::dag_bag_for(std::sync::Arc::new(pipelines));
    if settings.load_examples {
        ::dags::examples::add_to(&mut bag);
    }
    bag.default_alerts(settings.alerts());
    Ok(bag)
}

/// Records an action taken from the command line in the audit trail, as
/// `cli:<login name>` (there is no web user or address): what the web
/// records for the same action by a user.
/// The login running the command, as the audit trail records it:
/// `$USER`, else `$LOGNAME`, else the process's user from the system's
/// user database (containers and cron often set neither variable).
pub fn login() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|l| !l.is_empty())
        .or_else(|| {
            let uid = nix::unistd::getuid();
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .or_else(|| Some(format!("uid {uid}")))
        })
        .unwrap_or_default()
}

pub async fn audit(db: &services::database::Database, action: web::audit::Action<'_>) {
    let owner = format!("cli:{}", login());
    web::audit::record(&db.pool, Some(&owner), None, action).await;
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let settings: &Settings = &cli.settings;
    // Every command checks the pipelines' settings: a typo must stop it,
    // not fall back to a default (the DAGs' shape depends on some).
    pipeline_settings(settings, None)?;
    if settings.alert_email_to.is_some() && settings.smtp_url.is_none() {
        return Err(usage(
            "BETFLOW_NOTIFY_EMAIL_TO is set but BETFLOW_SMTP_URL is not: \
             name the SMTP server alert email goes through (smtp://host:port)"
                .to_owned(),
        ));
    }
    match cli.command {
        Command::Up { port, host } => daemon::up(settings, host, port).await,
        Command::Scheduler => daemon::scheduler(settings).await,
        Command::Db(cmd) => db::run(settings, cmd).await,
        Command::Dags(cmd) => dags::run(settings, cmd).await,
        Command::Runs(cmd) => runs::run(settings, cmd).await,
        Command::Tasks(cmd) => tasks::run(settings, cmd).await,
        Command::Backfill(args) => backfill::run(settings, args).await,
        Command::Stream(cmd) => stream::run(settings, cmd).await,
        Command::Users(cmd) => users::users(settings, cmd).await,
        Command::Tokens(cmd) => users::tokens(settings, cmd).await,
        Command::Glue(cmd) => glue::run(settings, cmd).await,
        Command::Bench(cmd) => {
            let mut engine = settings.engine_config();
            // The benches place the engine as `up` does.
            engine.cpus = settings.placement(true).map_err(usage)?.map(|placement| {
                orchestrator::cpus::EngineCpus {
                    placement,
                    backends: true,
                }
            });
            ::bench::run(&settings.home, engine, cmd).await
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command's arguments, the global settings included, are
    /// consistent (no two with one name, every default parses).
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
