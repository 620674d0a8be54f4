//! The broker-independent core of the real-time pipeline.
//!
//! Consumers (added with the Kafka client) decode each message with
//! [`envelope`], feed typed payloads to a processor ([`odds`], [`games`],
//! [`weather`], [`news`]), which windows them by event time ([`window`]) and
//! produce rows for the `serving.*` tables ([`serving`], [`odds::rows`];
//! migration `20260101000004_serving.sql`).
//! Nothing here does I/O, so every rule is unit-tested without a broker;
//! anything a processor rejects comes back to the caller with a reason for
//! `serving.dead_letter`, never silently dropped.

pub mod envelope;
pub mod games;
pub mod kafka;
pub mod news;
pub mod odds;
pub mod serving;
pub mod weather;
pub mod window;
