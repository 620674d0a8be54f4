//! `betflow db …`

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::settings::Settings;
use services::database::{Database, MIGRATIONS};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate,
    /// Show applied and pending migrations, per owner.
    Status,
    /// Print the connection URL of the metadata database (for psql and other tools).
    Url {
        /// Print the password instead of `***`.
        #[arg(long)]
        show_password: bool,
    },
}

pub async fn run(settings: &Settings, cmd: DbCommand) -> Result<ExitCode> {
    let home: &Path = &settings.home;
    let db = Database::connect(home).await?;
    match cmd {
        DbCommand::Migrate => {
            db.store.migrate_all(&MIGRATIONS).await?;
            outln!("migrations applied");
        }
        DbCommand::Status => {
            for m in db.store.migration_status(&MIGRATIONS).await? {
                outln!(
                    "{:<13} {}  {:<8} {}",
                    m.owner,
                    m.version,
                    if m.applied { "applied" } else { "pending" },
                    m.description
                );
            }
        }
        DbCommand::Url { show_password } => {
            if show_password {
                outln!("{}", db.url);
            } else {
                outln!("{}", orchestrator::store::mask_password(&db.url));
            }
        }
    }
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}
