//! `betflow users …` and `betflow tokens …`: accounts for the web UI and API.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use web::auth::{self, AuthError, Role};

use super::usage;
use crate::settings::Settings;
use services::database::Database;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from stdin, or generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a user; printed once, only its hash is stored.
    Create {
        #[arg(long)]
        username: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn auth_error(e: AuthError) -> anyhow::Error {
    match e {
        AuthError::UnknownRole(_)
        | AuthError::UserExists(_)
        | AuthError::NoSuchUser(_)
        | AuthError::InvalidUsername(_)
        | AuthError::WeakPassword => usage(e.to_string()),
        other => other.into(),
    }
}

pub async fn users(settings: &Settings, cmd: UsersCommand) -> Result<ExitCode> {
    let UsersCommand::Create { username, role } = cmd;
    let role: Role = role.parse().map_err(auth_error)?;
    let stdin = std::io::stdin();
    let (password, generated) = if stdin.is_terminal() {
        (auth::random_hex(12), true)
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let p = line.trim_end_matches(['\n', '\r']).to_owned();
        if p.is_empty() {
            (auth::random_hex(12), true)
        } else {
            (p, false)
        }
    };
    let db = Database::open(
        &settings.home,
        &super::dag_bag(settings)?,
        settings.paused_at_creation,
    )
    .await?;
    auth::create_user(&db.pool, &username, role, &password)
        .await
        .map_err(auth_error)?;
    outln!("created user `{username}` with role {role}");
    if generated {
        outln!("password (shown once): {password}");
    }
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn tokens(settings: &Settings, cmd: TokensCommand) -> Result<ExitCode> {
    let TokensCommand::Create { username, name } = cmd;
    let db = Database::open(
        &settings.home,
        &super::dag_bag(settings)?,
        settings.paused_at_creation,
    )
    .await?;
    let token = auth::create_token(&db.pool, &username, &name)
        .await
        .map_err(auth_error)?;
    outln!("{token}");
    eprintln!(
        "API token for `{username}` (shown once; send it as `Authorization: Bearer <token>`)"
    );
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}
