//! How far a publisher got (`serving.publisher_cursors`): the event time of
//! the last message group it delivered, so a restarted publisher resumes
//! after it instead of re-sending what consumers have already windowed.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;

const LOAD: &str = "SELECT published_through FROM serving.publisher_cursors WHERE publisher = $1";

const SAVE: &str =
    "INSERT INTO serving.publisher_cursors (publisher, published_through, updated_at)
    VALUES ($1, $2, now())
    ON CONFLICT (publisher) DO UPDATE SET
        published_through = EXCLUDED.published_through, updated_at = now()";

pub async fn load(pool: &PgPool, publisher: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(LOAD)
        .bind(publisher)
        .fetch_optional(pool)
        .await
}

pub async fn save(
    pool: &PgPool,
    publisher: &str,
    through: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(SAVE)
        .bind(publisher)
        .bind(through)
        .execute(pool)
        .await?;
    Ok(())
}
