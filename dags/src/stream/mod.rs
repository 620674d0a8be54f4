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
pub mod exact;
pub mod games;
pub mod kafka;
pub mod news;
pub mod odds;
pub mod publish;
pub mod replay;
pub mod serving;
pub mod weather;
pub mod window;

use serde::de::DeserializeOwned;
use serde::Serialize;

use envelope::{Envelope, Keyed};
use serving::DeadLetterReason;

/// One partition's processor state: fed decoded envelopes in offset order,
/// snapshotted for the consumer's checkpoints and restored from them.
pub trait PartitionState: Send + Sync + Sized + 'static {
    type Payload: DeserializeOwned + Keyed + Send + Sync;
    /// What one message produced.
    type Output: Send + Sync;
    /// The checkpointed form of the state.
    type Snapshot: Serialize + DeserializeOwned;

    /// Processes one message; a problem becomes its dead-letter row (the
    /// output is still written: a late window event may have updated a
    /// game's state).
    fn apply(
        &mut self,
        envelope: &Envelope<Self::Payload>,
    ) -> (Self::Output, Option<DeadLetterReason>);
    fn snapshot(&self) -> Self::Snapshot;
    /// Continues from a snapshot, into a state fresh from the same settings.
    fn restore(&mut self, snapshot: Self::Snapshot);
}
