//! What a `betflow` process stands on: its metadata database (found the
//! same way by every command: `DATABASE_URL`, else the embedded cluster,
//! every owner's migrations applied; [`database`]), the embedded Kafka-API
//! broker `betflow up` starts ([`broker`]), and stdout that a closed pipe
//! ends quietly ([`output`], [`outln!`]), and where alerts go
//! ([`notify`]: webhook and email).

pub mod broker;
pub mod database;
pub mod notify;
pub mod output;
pub mod restarts;
