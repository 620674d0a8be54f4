//! Users, roles, password hashing, browser sessions and API tokens.
//!
//! Passwords are hashed with argon2; session and API tokens are random 256-bit
//! values of which only a SHA-256 hash is stored, so a leaked database does not
//! leak credentials.

pub mod extract;
pub mod limiter;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// What a user may do: viewers read, operators also act on runs, admins also manage users and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(AuthError::UnknownRole(other.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown role `{0}`: use viewer, operator or admin")]
    UnknownRole(String),
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("no user `{0}`")]
    NoSuchUser(String),
    #[error("invalid username `{0}`: use 1-64 letters, digits, `.`, `_`, `-` or `@`")]
    InvalidUsername(String),
    #[error("password must be at least 8 characters")]
    WeakPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash no password matches, checked for unknown usernames.
const UNKNOWN_USER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0000000000000000000000000000000000000000000";

/// Password checks at once, at most: argon2 spends tens of milliseconds of
/// CPU and memory by design, so a login flood queues here, on the blocking
/// pool, instead of occupying the runtime that schedules tasks.
static HASHING: OffRuntime = OffRuntime::new(2);

/// Runs blocking work on tokio's blocking pool, a bounded number at once;
/// callers past the bound wait for a turn without holding a thread.
struct OffRuntime {
    turns: tokio::sync::Semaphore,
}

impl OffRuntime {
    const fn new(at_once: usize) -> Self {
        Self {
            turns: tokio::sync::Semaphore::const_new(at_once),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))
    }
}

async fn verify_off_runtime(password: &str, hash: String) -> Result<bool, AuthError> {
    let password = password.to_owned();
    HASHING.run(move || verify_password(&password, &hash)).await
}

fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

pub async fn create_user(
    pool: &PgPool,
    username: &str,
    role: Role,
    password: &str,
) -> Result<User, AuthError> {
    if !valid_username(username) {
        return Err(AuthError::InvalidUsername(username.to_owned()));
    }
    if password.chars().count() < 8 {
        return Err(AuthError::WeakPassword);
    }
    let hash = hash_password(password)?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(username)
    .bind(&hash)
    .bind(role.as_str())
    .fetch_optional(pool)
    .await?;
    let id = id.ok_or_else(|| AuthError::UserExists(username.to_owned()))?;
    Ok(User {
        id,
        username: username.to_owned(),
        role,
    })
}

/// The user with this username and password, if both are right and the user is enabled.
pub async fn verify_login(
    pool: &PgPool,
    username: &str,
    password: &str,
) -> Result<Option<User>, AuthError> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT id, password_hash, role FROM users WHERE username = $1 AND NOT disabled",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    let Some((id, hash, role)) = row else {
        // Spend the same time as a real check so usernames cannot be probed by timing.
        let _ = verify_off_runtime(password, UNKNOWN_USER_HASH.to_owned()).await?;
        return Ok(None);
    };
    if !verify_off_runtime(password, hash).await? {
        return Ok(None);
    }
    Ok(Some(User {
        id,
        username: username.to_owned(),
        role: role.parse()?,
    }))
}

/// On a database with no users, create `admin` with a generated password,
/// write it to `{home}/admin-password` (mode 0600) and return it so the
/// caller prints it once.
pub async fn ensure_admin(pool: &PgPool, home: &Path) -> Result<Option<String>, AuthError> {
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await?;
    if users > 0 {
        return Ok(None);
    }
    let password = random_hex(12);
    create_user(pool, "admin", Role::Admin, &password).await?;
    let path = home.join("admin-password");
    write_secret(&path, &password).map_err(|source| AuthError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Some(password))
}

/// Writes `secret` to a new file at `path`, readable by its owner only: an
/// earlier file (or a link planted in its place) is removed, never
/// followed, and the new one is created exclusively with mode 0600.
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        // create_new already refuses an existing link; this keeps a race
        // from swapping one in between the removal and the open.
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)?;
    writeln!(f, "{secret}")
}

/// How long a browser session lasts.
pub const SESSION_HOURS: i64 = 12;

/// A new session: (cookie token, CSRF token).
pub async fn create_session(pool: &PgPool, user: &User) -> Result<(String, String), AuthError> {
    let token = random_hex(32);
    let csrf = random_hex(32);
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
    )
    .bind(sha256_hex(&token))
    .bind(user.id)
    .bind(&csrf)
    .bind(SESSION_HOURS as i32)
    .execute(pool)
    .await?;
    Ok((token, csrf))
}

/// The user and CSRF token of a live session.
pub async fn session_user(pool: &PgPool, token: &str) -> Result<Option<(User, String)>, AuthError> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT u.id, u.username, u.role, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled",
    )
    .bind(sha256_hex(token))
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some((id, username, role, csrf)) => Ok(Some((
            User {
                id,
                username,
                role: role.parse()?,
            },
            csrf,
        ))),
    }
}

pub async fn delete_session(pool: &PgPool, token: &str) -> Result<(), AuthError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at < now()")
        .bind(sha256_hex(token))
        .execute(pool)
        .await?;
    Ok(())
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenScope {
    /// Whatever its user's role allows.
    #[default]
    All,
    /// Reads only: the token acts as a viewer.
    Read,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Read => "read",
        }
    }
}

/// How a new API token is limited.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenOptions {
    pub scope: TokenScope,
    /// `None`: until revoked.
    pub expires_in: Option<chrono::Duration>,
}

/// A new API token for `username`; returned once, only its hash is kept.
pub async fn create_token(pool: &PgPool, username: &str, name: &str) -> Result<String, AuthError> {
    create_token_with(pool, username, name, TokenOptions::default()).await
}

/// [`create_token`] with a scope and an expiry.
pub async fn create_token_with(
    pool: &PgPool,
    username: &str,
    name: &str,
    options: TokenOptions,
) -> Result<String, AuthError> {
    let user_id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await?;
    let user_id = user_id.ok_or_else(|| AuthError::NoSuchUser(username.to_owned()))?;
    let token = format!("bf_{}", random_hex(32));
    let expires_at = options.expires_in.map(|d| chrono::Utc::now() + d);
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_hash, scope, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(name)
    .bind(sha256_hex(&token))
    .bind(options.scope.as_str())
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(token)
}

/// How stale `last_used_at` may get before a request writes it: a token
/// used a thousand times a minute costs one write, not a thousand.
const LAST_USED_EVERY_SECS: f64 = 60.0;

/// The user behind a bearer token, if it is valid, not revoked, not expired
/// and its user is enabled; a read-only token's user acts as a viewer.
pub async fn token_user(pool: &PgPool, token: &str) -> Result<Option<User>, AuthError> {
    let hash = sha256_hex(token);
    let row: Option<(i64, i64, String, String, String, bool)> = sqlx::query_as(
        "SELECT t.id, u.id, u.username, u.role, t.scope,
                t.last_used_at IS NULL OR t.last_used_at < now() - make_interval(secs => $2)
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND NOT u.disabled
           AND (t.expires_at IS NULL OR t.expires_at > now())",
    )
    .bind(&hash)
    .bind(LAST_USED_EVERY_SECS)
    .fetch_optional(pool)
    .await?;
    let Some((token_id, id, username, role, scope, stale)) = row else {
        return Ok(None);
    };
    if stale {
        // Requests in parallel may all have read it stale: the condition,
        // checked again on the locked row, lets one of them write.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = now()
             WHERE id = $1
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
        )
        .bind(token_id)
        .bind(LAST_USED_EVERY_SECS)
        .execute(pool)
        .await?;
    }
    let role: Role = role.parse()?;
    Ok(Some(User {
        id,
        username,
        role: if scope == "read" { Role::Viewer } else { role },
    }))
}

/// An API token as listed to admins: never the token itself.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub scope: String,
}

pub async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenRow>, AuthError> {
    Ok(sqlx::query_as(
        "SELECT t.id, u.username, t.name, t.created_at, t.last_used_at, t.revoked_at,
                t.expires_at, t.scope
         FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.revoked_at NULLS FIRST, t.created_at DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Revoke a token; false when there was no such live token.
pub async fn revoke_token(pool: &PgPool, id: i64) -> Result<bool, AuthError> {
    let res = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// A user as `betflow users list` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub live_sessions: i64,
    pub live_tokens: i64,
}

pub async fn list_user_rows(pool: &PgPool) -> Result<Vec<UserRow>, AuthError> {
    Ok(sqlx::query_as(
        "SELECT u.username, u.role, u.disabled, u.created_at,
                (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > now())
                    AS live_sessions,
                (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL
                   AND (t.expires_at IS NULL OR t.expires_at > now())) AS live_tokens
         FROM users u ORDER BY u.username",
    )
    .fetch_all(pool)
    .await?)
}

/// Sets one column of `username`'s row to `value` and, when `end_sessions`,
/// ends every session of that user, in one transaction.
async fn update_user(
    pool: &PgPool,
    username: &str,
    column: UserColumn,
    value: &str,
    end_sessions: bool,
) -> Result<(), AuthError> {
    let sql = match column {
        UserColumn::Disabled => {
            "UPDATE users SET disabled = $2::boolean WHERE username = $1 RETURNING id"
        }
        UserColumn::Role => "UPDATE users SET role = $2 WHERE username = $1 RETURNING id",
        UserColumn::PasswordHash => {
            "UPDATE users SET password_hash = $2 WHERE username = $1 RETURNING id"
        }
    };
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(sql)
        .bind(username)
        .bind(value)
        .fetch_optional(&mut *tx)
        .await?;
    let id = id.ok_or_else(|| AuthError::NoSuchUser(username.to_owned()))?;
    if end_sessions {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The user columns the CLI changes.
#[derive(Debug, Clone, Copy)]
enum UserColumn {
    Disabled,
    Role,
    PasswordHash,
}

/// Disables or enables `username`. Disabling ends its sessions at once;
/// its tokens stop working while it is disabled.
pub async fn set_disabled(pool: &PgPool, username: &str, disabled: bool) -> Result<(), AuthError> {
    let value = if disabled { "true" } else { "false" };
    update_user(pool, username, UserColumn::Disabled, value, disabled).await
}

/// Gives `username` another role; its sessions end, so the next page it
/// opens is checked under the new role.
pub async fn set_role(pool: &PgPool, username: &str, role: Role) -> Result<(), AuthError> {
    update_user(pool, username, UserColumn::Role, role.as_str(), true).await
}

/// A new password for `username`; every session of the old one ends.
pub async fn reset_password(
    pool: &PgPool,
    username: &str,
    password: &str,
) -> Result<(), AuthError> {
    if password.chars().count() < 8 {
        return Err(AuthError::WeakPassword);
    }
    let hash = hash_password(password)?;
    update_user(pool, username, UserColumn::PasswordHash, &hash, true).await
}

/// (username, role) of every user, for the admin page.
pub async fn list_users(pool: &PgPool) -> Result<Vec<(String, String)>, AuthError> {
    Ok(
        sqlx::query_as("SELECT username, role FROM users ORDER BY username")
            .fetch_all(pool)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_replaces_a_planted_link_instead_of_writing_through_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("betflow-secret-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched\n").unwrap();
        let path = dir.join("admin-password");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_secret(&path, "s3cret").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "s3cret\n");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Hashing never runs on the runtime's thread, and never more than its
    /// bound at once: the test's loop, on a one-thread runtime, keeps
    /// running while two checks block, and sees no third start.
    #[tokio::test(flavor = "current_thread")]
    async fn password_checks_run_off_the_runtime_two_at_a_time() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let limiter: &'static OffRuntime = Box::leak(Box::new(OffRuntime::new(2)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        // Should an assertion fail, the checks still end and the test with them.
        struct Release(Arc<AtomicBool>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _release_on_failure = Release(release.clone());
        let runtime_thread = std::thread::current().id();
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let (running, peak, release) = (running.clone(), peak.clone(), release.clone());
                tokio::spawn(limiter.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().id()
                }))
            })
            .collect();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while running.load(Ordering::SeqCst) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "two checks never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Six more wait their turn, holding no thread; none starts meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(running.load(Ordering::SeqCst), 2);
        release.store(true, Ordering::SeqCst);
        for check in checks {
            let thread = check.await.expect("joined").expect("ran");
            assert_ne!(thread, runtime_thread, "hashed on the runtime's thread");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
