//! `serving.dead_letter` writes: one row per message, keyed by its
//! topic/partition/offset, so a redelivered message rewrites its own row.

use sqlx::PgConnection;

use crate::stream::serving::DeadLetterRow;

const UPSERT: &str = r#"INSERT INTO serving.dead_letter (topic, partition, "offset", processor,
        reason_code, reason, message_key, payload, received_at, event_time, ingest_time)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT ON CONSTRAINT dead_letter_message DO UPDATE SET
        processor = EXCLUDED.processor, reason_code = EXCLUDED.reason_code,
        reason = EXCLUDED.reason, message_key = EXCLUDED.message_key,
        payload = EXCLUDED.payload, event_time = EXCLUDED.event_time,
        ingest_time = EXCLUDED.ingest_time, write_time = now()"#;

pub async fn upsert(conn: &mut PgConnection, r: &DeadLetterRow) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT)
        .bind(&r.topic)
        .bind(r.partition)
        .bind(r.offset)
        .bind(r.processor)
        .bind(&r.reason_code)
        .bind(&r.reason)
        .bind(r.message_key.as_deref())
        .bind(r.payload.as_slice())
        .bind(r.received_at)
        .bind(r.event_time)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}
