//! The orchestrator: DAGs defined in Rust, cron schedules with data
//! intervals, a Postgres-backed scheduler and executor that several processes
//! share safely, and supervised long-running stream tasks.
//!
//! It knows nothing about sports; BetFlow's pipelines live in the `dags` crate.

pub mod alert;
pub mod asset;
pub mod backfill;
pub mod cpus;
pub mod dag;
pub mod engine;
pub mod executor;
pub mod mapping;
pub mod output;
pub mod record;
pub mod schedule;
pub mod scheduler;
pub mod setting;
pub mod state;
pub mod store;
pub mod stream;
pub mod task;

pub use alert::{AlertEvent, Alerts, Deadline, Notifier, Notifiers};
pub use asset::{Asset, AssetCondition};
pub use dag::{Dag, DagBag, DagBuilder, Node, RetryPolicy, TaskSpec};
pub use engine::EngineConfig;
pub use mapping::{MapOver, DEFAULT_MAX_MAP_LENGTH};
pub use output::{typed_fn, GroupOutput, Output, TypedSpec, TypedTask};
pub use schedule::{DataInterval, Schedule};
pub use state::{RunState, StreamState, TaskState, TriggerRule};
pub use store::Store;
pub use stream::{StreamContext, StreamTask};
pub use task::{task_fn, Sensor, Task, TaskContext, TaskError, TaskResult};
