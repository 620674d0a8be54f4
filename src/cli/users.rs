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
    /// Every user: role, whether disabled, live sessions and tokens.
    List,
    /// Stop a user from logging in or using its tokens; its sessions end now.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Let a disabled user log in and use its tokens again.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Give a user another role; its sessions end so the new role applies at once.
    SetRole {
        #[arg(long)]
        username: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
    /// A new password (from stdin, or generated and printed once); its sessions end.
    ResetPassword {
        #[arg(long)]
        username: String,
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
        /// The token acts as a viewer whatever the user's role.
        #[arg(long)]
        read_only: bool,
        /// Lifetime, e.g. 90d, 12h, 30m; default: until revoked.
        #[arg(long, value_parser = lifetime)]
        expires_in: Option<chrono::Duration>,
    },
    /// Every token: owner, label, scope, expiry, last use (never the token).
    List,
    /// Revoke a token by its id (from `tokens list`).
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

/// `90d`, `12h`, `30m`: a token's lifetime.
fn lifetime(v: &str) -> Result<chrono::Duration, String> {
    let v = v.trim();
    let (n, unit) = v.split_at(v.len().saturating_sub(1));
    let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        format!("--expires-in {v:?}: use a positive number with d, h or m (e.g. 90d)")
    })?;
    match unit {
        "d" => Ok(chrono::Duration::days(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        _ => Err(format!(
            "--expires-in {v:?}: use a positive number with d, h or m (e.g. 90d)"
        )),
    }
}

/// A password from stdin, or a generated one (and whether it was generated).
fn password_from_stdin() -> Result<(String, bool)> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok((auth::random_hex(12), true));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    Ok(if p.is_empty() {
        (auth::random_hex(12), true)
    } else {
        (p, false)
    })
}

/// An account action in the audit trail ([`super::audit`]).
async fn audit(db: &Database, event: &str, extra: serde_json::Value) {
    let action = web::audit::Action {
        event,
        extra,
        ..Default::default()
    };
    super::audit(db, action).await;
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
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
    // Arguments are checked before the database is opened.
    let role: Option<Role> = match &cmd {
        UsersCommand::Create { role, .. } | UsersCommand::SetRole { role, .. } => {
            Some(role.parse().map_err(auth_error)?)
        }
        _ => None,
    };
    let password = match &cmd {
        UsersCommand::Create { .. } | UsersCommand::ResetPassword { .. } => {
            Some(password_from_stdin()?)
        }
        _ => None,
    };
    let db = Database::open(
        &settings.home,
        &super::dag_bag(settings)?,
        settings.paused_at_creation,
    )
    .await?;
    let pool = &db.pool;
    match cmd {
        UsersCommand::Create { username, .. } => {
            let role = role.unwrap_or(Role::Viewer);
            let (password, generated) = password.unwrap_or_default();
            auth::create_user(pool, &username, role, &password)
                .await
                .map_err(auth_error)?;
            audit(
                &db,
                "create_user",
                serde_json::json!({"username": username, "role": role.as_str()}),
            )
            .await;
            outln!("created user `{username}` with role {role}");
            if generated {
                outln!("password (shown once): {password}");
            }
        }
        UsersCommand::List => {
            let rows: Vec<Vec<String>> = auth::list_user_rows(pool)
                .await?
                .into_iter()
                .map(|u| {
                    vec![
                        u.username,
                        u.role,
                        if u.disabled { "disabled" } else { "active" }.to_owned(),
                        when(Some(u.created_at)),
                        u.live_sessions.to_string(),
                        u.live_tokens.to_string(),
                    ]
                })
                .collect();
            services::output::table(
                &[
                    "username",
                    "role",
                    "state",
                    "created (UTC)",
                    "sessions",
                    "tokens",
                ],
                &rows,
            )?;
        }
        UsersCommand::Disable { username } => {
            auth::set_disabled(pool, &username, true)
                .await
                .map_err(auth_error)?;
            audit(
                &db,
                "disable_user",
                serde_json::json!({"username": username}),
            )
            .await;
            outln!("disabled `{username}`: its sessions ended and its tokens stop working");
        }
        UsersCommand::Enable { username } => {
            auth::set_disabled(pool, &username, false)
                .await
                .map_err(auth_error)?;
            audit(
                &db,
                "enable_user",
                serde_json::json!({"username": username}),
            )
            .await;
            outln!("enabled `{username}`");
        }
        UsersCommand::SetRole { username, .. } => {
            let role = role.unwrap_or(Role::Viewer);
            auth::set_role(pool, &username, role)
                .await
                .map_err(auth_error)?;
            audit(
                &db,
                "set_role",
                serde_json::json!({"username": username, "role": role.as_str()}),
            )
            .await;
            outln!("`{username}` is now {role}; its sessions ended");
        }
        UsersCommand::ResetPassword { username } => {
            let (password, generated) = password.unwrap_or_default();
            auth::reset_password(pool, &username, &password)
                .await
                .map_err(auth_error)?;
            audit(
                &db,
                "reset_password",
                serde_json::json!({"username": username}),
            )
            .await;
            outln!("new password set for `{username}`; its sessions ended");
            if generated {
                outln!("password (shown once): {password}");
            }
        }
    }
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn tokens(settings: &Settings, cmd: TokensCommand) -> Result<ExitCode> {
    let db = Database::open(
        &settings.home,
        &super::dag_bag(settings)?,
        settings.paused_at_creation,
    )
    .await?;
    let pool = &db.pool;
    let code = match cmd {
        TokensCommand::Create {
            username,
            name,
            read_only,
            expires_in,
        } => {
            let options = auth::TokenOptions {
                scope: if read_only {
                    auth::TokenScope::Read
                } else {
                    auth::TokenScope::All
                },
                expires_in,
            };
            let token = auth::create_token_with(pool, &username, &name, options)
                .await
                .map_err(auth_error)?;
            audit(&db,
                "create_token",
                serde_json::json!({"for_user": username, "name": name, "scope": options.scope.as_str()}),
            )
            .await;
            outln!("{token}");
            eprintln!(
                "API token for `{username}` (shown once; send it as `Authorization: Bearer <token>`)"
            );
            ExitCode::SUCCESS
        }
        TokensCommand::List => {
            let rows: Vec<Vec<String>> = auth::list_tokens(pool)
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.username,
                        t.name,
                        t.scope,
                        when(Some(t.created_at)),
                        t.expires_at
                            .map_or_else(|| "never".to_owned(), |e| when(Some(e))),
                        when(t.last_used_at),
                        when(t.revoked_at),
                    ]
                })
                .collect();
            services::output::table(
                &[
                    "id",
                    "user",
                    "label",
                    "scope",
                    "created (UTC)",
                    "expires",
                    "last used",
                    "revoked",
                ],
                &rows,
            )?;
            ExitCode::SUCCESS
        }
        TokensCommand::Revoke { id } => {
            if auth::revoke_token(pool, id).await? {
                audit(&db, "revoke_token", serde_json::json!({"token_id": id})).await;
                outln!("revoked token {id}");
                ExitCode::SUCCESS
            } else {
                db.close().await?;
                return Err(usage(format!(
                    "no live token with id {id}; `betflow tokens list` shows them"
                )));
            }
        }
    };
    db.close().await?;
    Ok(code)
}
