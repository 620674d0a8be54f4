//! The lake's storage: one object-store interface over a local directory or S3.
//!
//! The same code runs on a laptop ([`local::LocalStore`] under
//! `$BETFLOW_HOME/lake`) and in production ([`s3::S3Store`], any S3 API):
//! `LakeSettings::open` picks the backend from the settings. What keys mean
//! is the caller's business (docs/lake-layout.md); objects are gzipped with
//! [`gzip`].

mod gzip;
pub mod local;
pub mod s3;
mod s3_bucket;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use gzip::{gunzip, gzip};
pub use local::LocalStore;
pub use s3::{S3Config, S3Store};

/// One object as a listing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key, `/`-separated, relative to the store's root or bucket.
    pub key: String,
    /// Size in bytes of the stored (compressed) object.
    pub size: u64,
    /// When the object was last written; decides which of two same-date
    /// objects is the older one on a re-run.
    pub last_modified: DateTime<Utc>,
}

/// A flat key → bytes store. Keys are `/`-separated relative paths; a `put`
/// is atomic (readers see the old object or the new one, never a part).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where the objects live, for logs and error messages
    /// (`file:///…/lake` or `s3://bucket`).
    fn location(&self) -> String;

    /// Writes `bytes` under `key`, replacing any object already there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError>;

    /// The object's bytes, or `None` when there is no such key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError>;

    /// Every object whose key starts with `prefix` (a plain string prefix,
    /// as in S3), sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, LakeError>;

    /// Removes the object; removing a missing key is not an error, so
    /// clean-ups can be retried.
    async fn delete(&self, key: &str) -> Result<(), LakeError>;
}

/// Why a lake operation failed. Messages name the key and the path or bucket
/// so an operator can find the object without reading code.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The key is empty, absolute, escapes the root or has an unusable segment.
    #[error("invalid lake key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// A part of a raw key (sport, source, run id, file name) is unusable.
    #[error("invalid raw-lake key part: {0}")]
    InvalidPart(String),
    /// The local disk (or the user's quota) is full: free space or point
    /// `BETFLOW_HOME` elsewhere; retrying alone will not help.
    #[error("disk full while writing lake object {key:?} at {path}: free space on that filesystem or move BETFLOW_HOME")]
    DiskFull { key: String, path: PathBuf },
    /// Any other local filesystem error.
    #[error("lake {op} of {key:?} at {path} failed: {source}")]
    Io {
        op: &'static str,
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An S3 request failed (after the store's own retries).
    #[error("S3 {op} of s3://{bucket}/{key} failed: {message}")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
        /// S3 refused the request itself (access denied, no such bucket,
        /// a bad request): the same request will be refused again.
        refused: bool,
    },
    /// The S3 settings in the environment are incomplete or malformed.
    #[error("S3 lake configuration: {0}")]
    Config(String),
    /// Compressing or decompressing an object failed (a corrupt `.gz`).
    #[error("gzip of lake object {key:?} failed: {source}")]
    Gzip {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// The blocking thread doing local file I/O panicked or was cancelled.
    #[error("lake I/O task failed: {0}")]
    Task(String),
    /// A dead-letter record could not be serialised.
    #[error("dead-letter record for {key:?} could not be encoded: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl LakeError {
    /// Whether the same write or read may succeed later: I/O and S3
    /// failures may pass; a full disk, a bad key, bad settings or bytes
    /// that do not decode stay as they are until someone acts.
    pub fn retry_can_help(&self) -> bool {
        matches!(
            self,
            LakeError::Io { .. } | LakeError::S3 { refused: false, .. } | LakeError::Task(_)
        )
    }
}

impl LakeError {
    /// Maps an I/O error of a local write, surfacing ENOSPC / quota errors as
    /// [`LakeError::DiskFull`] instead of a generic I/O failure.
    pub(crate) fn io(op: &'static str, key: &str, path: &Path, source: std::io::Error) -> Self {
        let full = matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        );
        if full {
            LakeError::DiskFull {
                key: key.to_owned(),
                path: path.to_owned(),
            }
        } else {
            LakeError::Io {
                op,
                key: key.to_owned(),
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Checks a full object key (or, with `is_prefix`, a listing
/// prefix) is a relative `/`-path whose segments cannot escape the root or
/// collide with the local backend's hidden temp files.
pub(crate) fn validate_key(key: &str, is_prefix: bool) -> Result<(), LakeError> {
    let bad = |reason: &str| LakeError::InvalidKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if key.is_empty() {
        return if is_prefix {
            Ok(())
        } else {
            Err(bad("empty key"))
        };
    }
    if key.starts_with('/') {
        return Err(bad("keys are relative; remove the leading '/'"));
    }
    if key.contains('\\') || key.contains('\0') {
        return Err(bad("keys may not contain '\\' or NUL"));
    }
    // The S3 store's client trims a key's ends; the local one would not.
    if key.trim() != key {
        return Err(bad("keys may not start or end with whitespace"));
    }
    let segments: Vec<&str> = key.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if *segment == ".." {
            return Err(bad("'..' would escape the lake root"));
        }
        if *segment == "." {
            return Err(bad("'.' segments are not allowed"));
        }
        if segment.is_empty() && !(is_prefix && i == last) {
            return Err(bad("empty path segment"));
        }
        if segment.starts_with('.') {
            return Err(bad(
                "segments may not start with '.' (reserved for temp files)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{validate_key, LakeError};
    use std::path::Path;

    #[test]
    fn enospc_is_reported_as_disk_full() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let err = LakeError::io("write", "raw/k", Path::new("/lake/raw/k"), enospc);
        assert!(matches!(err, LakeError::DiskFull { .. }), "{err:?}");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(err.to_string().contains("/lake/raw/k"), "{err}");
    }

    #[test]
    fn keys_that_escape_or_hide_are_rejected() {
        for key in [
            "", "/abs", "a/../b", "..", "a//b", "a/./b", "a/.tmp", "a\\b", " a/b", "a/b\n",
        ] {
            assert!(validate_key(key, false).is_err(), "{key}");
        }
        assert!(validate_key("raw/historical/nfl/", true).is_ok());
        assert!(validate_key("", true).is_ok());
        assert!(validate_key("raw/x.json.gz", false).is_ok());
    }
}
