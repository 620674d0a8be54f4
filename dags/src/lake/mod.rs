//! BetFlow's raw lake: the key layout of every batch pull and its writes,
//! over lakehouse's object stores (docs/lake-layout.md).
//!
//! Every batch pull lands as untouched source bytes (gzip) under the key
//! layout of [`layout`]; [`raw::write_raw`] makes a re-run of a date replace
//! that date's object instead of adding a second one, and
//! [`raw::write_dead_letters`] keeps the records validation rejected.

pub mod layout;
pub mod raw;

pub use lakehouse::lake::{
    gunzip, gzip, LakeError, LocalStore, ObjectMeta, ObjectStore, S3Config, S3Store,
};
pub use layout::{Format, Kind, RawKey};
pub use raw::{read_raw, write_dead_letters, write_raw, DeadLetter};
