//! The streaming runtime under BetFlow's live pipeline, knowing no sport:
//! the versioned message [`envelope`] over a deployment's topic names
//! ([`envelope::TopicScheme`]), event-time [`window`]s with watermarks and
//! allowed lateness, bit-exact float snapshots for checkpoints ([`exact`]),
//! per-partition processor state ([`PartitionState`]) run by one generic
//! Kafka consumer loop with checkpoints in Postgres and the raw topic
//! archive ([`kafka`]), [`dead_letter`] rows for what cannot be used, and
//! the publishers' advisory-lock lease and cursors ([`publish`]).
//!
//! Processors, their serving tables and topic names live with the domain
//! (the `dags` crate); nothing here does more than move, window and
//! checkpoint their messages.

pub mod dead_letter;
pub mod envelope;
pub mod exact;
pub mod kafka;
pub mod publish;
pub mod window;

use serde::de::DeserializeOwned;
use serde::Serialize;

use dead_letter::DeadLetterReason;
use envelope::{Envelope, Keyed, TopicScheme};

/// One partition's processor state: fed decoded envelopes in offset order,
/// snapshotted for the consumer's checkpoints and restored from them.
pub trait PartitionState: Send + Sync + Sized + 'static {
    /// The topic names its messages come from.
    type Topics: TopicScheme;
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
        envelope: &Envelope<Self::Payload, Kind<Self>>,
    ) -> (Self::Output, Option<DeadLetterReason>);
    fn snapshot(&self) -> Self::Snapshot;
    /// Continues from a snapshot, into a state fresh from the same settings.
    fn restore(&mut self, snapshot: Self::Snapshot);
    /// Forgets event times after `not_after` (a restored watermark moved
    /// by an event stamped in the future), so true events are not late.
    /// States without event-time windows have nothing to heal.
    fn heal(&mut self, not_after: chrono::DateTime<chrono::Utc>) {
        let _ = not_after;
    }
}

/// The kind of a state's topics.
pub type Kind<S> = <<S as PartitionState>::Topics as TopicScheme>::Kind;
