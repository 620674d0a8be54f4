//! The sinks of BetFlow's processors: how each processor's output reaches
//! the `serving.*` tables, run by streaming's generic consumer loop
//! ([`streaming::kafka::consumer`]).

pub mod games;
pub mod news;
pub mod odds;
pub mod weather;
