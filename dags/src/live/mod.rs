//! The real-time pipeline.
//!
//! The broker-independent core: consumers decode each message with
//! [`envelope`] and feed typed payloads to a processor ([`odds`], [`games`],
//! [`weather`], [`news`]), which windows them by event time ([`window`]) and
//! produces rows for the `serving.*` tables ([`serving`], [`odds::rows`];
//! migration `20260101000004_serving.sql`). Processor state is snapshotted
//! for consumer checkpoints with bit-exact floats ([`exact`]). None of that
//! does I/O, so every rule is unit-tested without a broker; anything a
//! processor rejects comes back with a reason for `serving.dead_letter`,
//! never silently dropped.
//!
//! Around it: [`kafka`] (the shared producer, the consumer-group stream
//! tasks and the raw topic archive) and [`replay`] (a sports day of the
//! offline sources as the messages live pollers would publish).

pub mod envelope;
pub mod games;
pub mod kafka;
pub mod news;
pub mod notify;
pub mod odds;
pub mod publish;
pub mod replay;
pub mod serving;
pub mod text;
pub mod weather;

pub use streaming::PartitionState;
