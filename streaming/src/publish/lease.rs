//! One publisher per deployment: a session-level Postgres advisory lock,
//! held on a connection taken out of the pool, so it lasts exactly as long
//! as the publisher's session and is released when the process dies.

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

/// The lock of publisher `name` while it is held.
pub struct Lease {
    name: String,
    conn: PgConnection,
}

const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))";

/// Takes the lock of `name` if nobody holds it.
pub async fn try_acquire(pool: &PgPool, name: &str) -> Result<Option<Lease>, sqlx::Error> {
    // Detached: a pooled connection would go back to the pool still holding
    // the lock; this one closes (and unlocks) when the lease is dropped.
    let mut conn: PgConnection = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar(TRY_LOCK)
        .bind(lock_name(name))
        .fetch_one(&mut conn)
        .await?;
    Ok(locked.then(|| Lease {
        name: name.to_string(),
        conn,
    }))
}

/// Waits until the lock of `name` is free and takes it, calling `standby`
/// before each wait; `None` when `cancel` fires first.
pub async fn acquire(
    pool: &PgPool,
    name: &str,
    cancel: &CancellationToken,
    retry: Duration,
    mut standby: impl FnMut(),
) -> Result<Option<Lease>, sqlx::Error> {
    loop {
        if let Some(lease) = try_acquire(pool, name).await? {
            return Ok(Some(lease));
        }
        standby();
        tokio::select! {
            () = cancel.cancelled() => return Ok(None),
            () = tokio::time::sleep(retry) => {}
        }
    }
}

impl Lease {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the session holding the lock is still alive: if the database
    /// dropped it, another process may already publish.
    pub async fn check(&mut self) -> Result<(), sqlx::Error> {
        self.conn.ping().await
    }
}

fn lock_name(name: &str) -> String {
    format!("betflow.publish.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};

    #[tokio::test]
    async fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = EmbeddedPostgres::start(&EmbeddedOptions {
            home: dir.path().join("pg"),
            durable: false,
        })
        .expect("start a throwaway Postgres");
        let pool = &PgPool::connect(pg.url()).await.expect("connect");
        let first = try_acquire(pool, "lease-test").await.expect("lock");
        let mut first = first.expect("free at first");
        assert!(try_acquire(pool, "lease-test")
            .await
            .expect("lock")
            .is_none());
        assert!(try_acquire(pool, "other").await.expect("lock").is_some());
        first.check().await.expect("session alive");
        drop(first);
        // The server ends the closed session's locks asynchronously.
        let mut taken = None;
        for _ in 0..50 {
            taken = try_acquire(pool, "lease-test").await.expect("lock");
            if taken.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(taken.is_some(), "free again once the holder is gone");
    }
}
