//! A consumer's writes: each batch of messages in one Postgres transaction
//! (their serving rows, dead letters and, when due, checkpoints); a batch
//! the database refuses is redone message by message in savepoints, so one
//! message whose rows break a constraint is dead-lettered (`sink_error`)
//! instead of stopping the stream.

use chrono::Utc;
use orchestrator::TaskError;
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::{Acquire, PgConnection, Postgres, Transaction};

use super::checkpoint::{self, Checkpoint, Partition};
use super::config::{OVERSIZED, OVERSIZED_KEPT_BYTES};
use super::consumer::{
    fail, Counters, Health, KafkaConsumer, Meta, Output, PartitionState, Parts, TopicProcessor,
};

use crate::dead_letter::{self, DeadLetterReason, DeadLetterRow};

/// One message ready to write.
pub(super) struct Prepared<'m, O> {
    pub(super) msg: &'m BorrowedMessage<'m>,
    /// `None` when the message did not decode.
    pub(super) meta: Option<Meta>,
    pub(super) output: Option<O>,
    pub(super) problem: Option<DeadLetterReason>,
}

/// Longest dead-letter reason kept, in characters.
const MAX_REASON_CHARS: usize = 4_000;

/// `reason` as a `TEXT` column takes it: a reason may quote a key or a
/// value from the message (a key mismatch names both), and a NUL there
/// would make the dead-letter insert fail, and with it the batch, at
/// every retry; a megabyte key would bloat the row.
fn storable(reason: &str) -> String {
    let mut out: String = reason
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect();
    if reason.chars().nth(MAX_REASON_CHARS).is_some() {
        out.push_str(" …");
    }
    out
}

impl<O> Prepared<'_, O> {
    /// The message's dead-letter row for `reason`.
    fn dead_letter(&self, processor: &'static str, reason: &DeadLetterReason) -> DeadLetterRow {
        let payload: &[u8] = self.msg.payload().unwrap_or_default();
        let kept: &[u8] = if reason.code == OVERSIZED {
            &payload[..OVERSIZED_KEPT_BYTES.min(payload.len())]
        } else {
            payload
        };
        DeadLetterRow {
            topic: self.msg.topic().to_string(),
            partition: self.msg.partition(),
            offset: self.msg.offset(),
            processor: Some(processor),
            reason_code: reason.code.to_string(),
            reason: storable(&reason.reason),
            message_key: self.msg.key().map(<[u8]>::to_vec),
            payload: kept.to_vec(),
            received_at: Utc::now(),
            event_time: self.meta.as_ref().map(|m| m.event_time),
            ingest_time: self.meta.as_ref().map(|m| m.ingest_time),
        }
    }
}

impl<P: TopicProcessor> KafkaConsumer<P> {
    /// Writes one batch, and the checkpoints when `due`, in one transaction.
    /// Returns the offsets checkpointed, to commit to Kafka.
    pub(super) async fn write_batch(
        &self,
        pool: &PgPool,
        batch: &[Prepared<'_, Output<P>>],
        parts: &mut Parts<P::State>,
        due: bool,
        health: &mut Health,
    ) -> Result<Vec<((String, i32), i64)>, TaskError> {
        let mut tx: Transaction<'_, Postgres> = pool
            .begin()
            .await
            .map_err(|e| fail("starting a transaction", e))?;
        let mut counters: Counters = Counters::new();
        let mut dead_letters: u64 = 0;
        let mut sink_errors: u64 = 0;
        let fast: Result<(), sqlx::Error> = async {
            let outputs: Vec<(&Meta, &Output<P>)> = batch
                .iter()
                .filter_map(|p| p.meta.as_ref().zip(p.output.as_ref()))
                .collect();
            self.processor
                .write_many(&mut tx, &outputs, &mut counters)
                .await?;
            for p in batch {
                if let Some(reason) = &p.problem {
                    dead_letter::upsert(&mut tx, &p.dead_letter(P::NAME, reason)).await?;
                    dead_letters += 1;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = fast {
            // One message's rows broke a constraint (or the connection went):
            // redo the batch message by message, dead-lettering the bad ones.
            tracing::warn!(
                processor = P::NAME,
                "batch write failed ({e}); retrying message by message"
            );
            drop(tx);
            tx = pool
                .begin()
                .await
                .map_err(|e| fail("starting a transaction", e))?;
            counters.clear();
            dead_letters = 0;
            for p in batch {
                let mut sp: Transaction<'_, Postgres> = Acquire::begin(&mut tx)
                    .await
                    .map_err(|e| fail("starting a savepoint", e))?;
                let mut mine: Counters = Counters::new();
                match self.write_one(&mut sp, p, &mut mine).await {
                    Ok(n) => {
                        sp.commit()
                            .await
                            .map_err(|e| fail("releasing a savepoint", e))?;
                        dead_letters += n;
                        for (k, v) in mine {
                            *counters.entry(k).or_default() += v;
                        }
                    }
                    Err(e) => {
                        sp.rollback()
                            .await
                            .map_err(|e| fail("rolling back a savepoint", e))?;
                        let row: DeadLetterRow = self
                            .sink_error(p, &e)
                            .ok_or_else(|| fail("writing serving rows", &e))?;
                        dead_letter::upsert(&mut tx, &row)
                            .await
                            .map_err(|e| fail("writing a dead letter", e))?;
                        dead_letters += 1;
                        sink_errors += 1;
                    }
                }
            }
        }
        let mut committed: Vec<((String, i32), i64)> = Vec::new();
        if due {
            let fingerprint: String = self.processor.fingerprint();
            for ((topic, partition), part) in parts.iter_mut().filter(|(_, p)| p.dirty) {
                let Some(next_offset) = part.next_offset else {
                    continue;
                };
                let state: Value = serde_json::to_value(part.state.snapshot())
                    .map_err(|e| fail("serializing the checkpoint", e))?;
                let at = Partition {
                    group_id: &self.config.group_id,
                    topic,
                    partition: *partition,
                };
                let saved = Checkpoint {
                    next_offset,
                    processor: P::NAME.to_string(),
                    fingerprint: fingerprint.clone(),
                    state,
                };
                checkpoint::save(&mut tx, at, &saved)
                    .await
                    .map_err(|e| fail("saving the checkpoint", e))?;
                committed.push(((topic.clone(), *partition), next_offset));
            }
        }
        tx.commit()
            .await
            .map_err(|e| fail("committing serving rows", e))?;
        for (key, _) in &committed {
            if let Some(part) = parts.get_mut(key) {
                part.dirty = false;
            }
        }
        health.checkpoints += committed.len() as u64;
        health.dead_letters += dead_letters;
        health.sink_errors += sink_errors;
        for (k, v) in counters {
            *health.counters.entry(k).or_default() += v;
        }
        Ok(committed)
    }

    /// One message's rows; returns the dead letters written (0 or 1).
    async fn write_one(
        &self,
        conn: &mut PgConnection,
        p: &Prepared<'_, Output<P>>,
        counters: &mut Counters,
    ) -> Result<u64, sqlx::Error> {
        if let (Some(meta), Some(output)) = (&p.meta, &p.output) {
            self.processor.write(conn, meta, output, counters).await?;
        }
        match &p.problem {
            Some(reason) => {
                dead_letter::upsert(conn, &p.dead_letter(P::NAME, reason)).await?;
                Ok(1)
            }
            None => Ok(0),
        }
    }

    /// The dead letter of a message whose rows the database refused; `None`
    /// when the error is not about the data (connection, pool), which must
    /// fail the task instead so the batch is retried.
    fn sink_error(&self, p: &Prepared<'_, Output<P>>, e: &sqlx::Error) -> Option<DeadLetterRow> {
        let sqlx::Error::Database(db) = e else {
            return None;
        };
        let mut reason: String = format!("serving rows refused: {db}");
        if let Some(problem) = &p.problem {
            reason = format!("{reason}; {}", problem.reason);
        }
        Some(p.dead_letter(P::NAME, &DeadLetterReason::new("sink_error", reason)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_quoting_a_nul_or_a_huge_key_is_stored_all_the_same() {
        assert_eq!(
            storable("message key `g1\0` does not match"),
            "message key `g1\u{FFFD}` does not match"
        );
        let huge = storable(&format!("key `{}`", "k".repeat(1_000_000)));
        assert_eq!(huge.chars().count(), MAX_REASON_CHARS + 2);
        assert!(huge.ends_with(" …"));
        assert_eq!(storable("late"), "late");
    }
}
