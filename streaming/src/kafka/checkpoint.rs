//! Consumer checkpoints (`serving.consumer_checkpoints`, migration
//! `20260101000007`): the next offset of a partition with the processor
//! state that goes with it, saved in the serving rows' transaction.

use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::PgConnection;

/// Where a checkpoint belongs.
#[derive(Debug, Clone, Copy)]
pub struct Partition<'a> {
    pub group_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub next_offset: i64,
    pub processor: String,
    pub fingerprint: String,
    pub state: Value,
}

const LOAD: &str = "SELECT next_offset, processor, fingerprint, state
    FROM serving.consumer_checkpoints
    WHERE group_id = $1 AND topic = $2 AND partition = $3";

/// Never moves a checkpoint back: a consumer that lost the partition in a
/// rebalance may still write one for it after the new owner moved ahead.
const SAVE: &str = "INSERT INTO serving.consumer_checkpoints
        (group_id, topic, partition, next_offset, processor, fingerprint, state, written_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, now())
    ON CONFLICT (group_id, topic, partition) DO UPDATE SET
        next_offset = EXCLUDED.next_offset, processor = EXCLUDED.processor,
        fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state, written_at = now()
    WHERE EXCLUDED.next_offset >= consumer_checkpoints.next_offset";

/// Only the checkpoint found stale, not one another member wrote since.
const DISCARD: &str = "DELETE FROM serving.consumer_checkpoints
    WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4";

pub async fn load(pool: &PgPool, at: Partition<'_>) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row: Option<(i64, String, String, Value)> = sqlx::query_as(LOAD)
        .bind(at.group_id)
        .bind(at.topic)
        .bind(at.partition)
        .fetch_optional(pool)
        .await?;
    Ok(
        row.map(|(next_offset, processor, fingerprint, state)| Checkpoint {
            next_offset,
            processor,
            fingerprint,
            state,
        }),
    )
}

pub async fn save(
    conn: &mut PgConnection,
    at: Partition<'_>,
    checkpoint: &Checkpoint,
) -> Result<(), sqlx::Error> {
    sqlx::query(SAVE)
        .bind(at.group_id)
        .bind(at.topic)
        .bind(at.partition)
        .bind(checkpoint.next_offset)
        .bind(&checkpoint.processor)
        .bind(&checkpoint.fingerprint)
        .bind(&checkpoint.state)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the checkpoint at `next_offset`, if it is still the stored one.
pub async fn discard(
    pool: &PgPool,
    at: Partition<'_>,
    next_offset: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(DISCARD)
        .bind(at.group_id)
        .bind(at.topic)
        .bind(at.partition)
        .bind(next_offset)
        .execute(pool)
        .await?;
    Ok(())
}
