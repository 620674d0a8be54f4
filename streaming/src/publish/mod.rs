//! What every publisher of a deployment shares: one producer per process
//! ([`SharedProducer`]), a Postgres advisory lock so one process publishes
//! ([`lease`]), and how far it got ([`cursor`]).

pub mod cursor;
pub mod lease;

use tokio::sync::OnceCell;

use crate::kafka::producer::{ProduceError, Producer};
use crate::kafka::KafkaSettings;

/// One producer per process, created on first use (creating it contacts no
/// broker, but a bad configuration should fail a task, not the DAG build).
pub struct SharedProducer {
    kafka: KafkaSettings,
    cell: OnceCell<Producer>,
}

impl SharedProducer {
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            cell: OnceCell::new(),
        }
    }

    pub async fn get(&self) -> Result<&Producer, ProduceError> {
        self.cell
            .get_or_try_init(|| async { Producer::new(&self.kafka) })
            .await
    }
}
