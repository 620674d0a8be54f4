//! `serving.dead_letter`: every message a consumer could not use, with
//! why. One row per message, keyed by its topic/partition/offset, so a
//! redelivered message rewrites its own row (docs/topics.md#dead-letter-reasons).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// Why a message (or part of it) goes to `serving.dead_letter`, as a
/// processor reports it; the consumer adds topic, partition, offset and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterReason {
    /// Short stable code: see [`DeadLetterRow::reason_code`].
    pub code: &'static str,
    pub reason: String,
}

impl DeadLetterReason {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// One reason for a message with several problems (the table holds one
    /// row per message, so a redelivery upserts the same row): the first
    /// problem's code, every reason joined.
    pub fn join(problems: Vec<DeadLetterReason>) -> Option<DeadLetterReason> {
        let code: &'static str = problems.first()?.code;
        let reason: Vec<String> = problems.into_iter().map(|p| p.reason).collect();
        Some(DeadLetterReason::new(code, reason.join("; ")))
    }
}

/// `serving.dead_letter`: one row per message, whatever went wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub processor: Option<&'static str>,
    /// A [`crate::envelope::DecodeError::code`], `oversized`, `future`,
    /// `implausible_time`, `late`, `rejected`, `anomaly`, `stale`,
    /// `invalid` or `sink_error`.
    pub reason_code: String,
    pub reason: String,
    pub message_key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub event_time: Option<DateTime<Utc>>,
    pub ingest_time: Option<DateTime<Utc>>,
}

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
