//! The laptop backend: objects are files under one root directory
//! (`$BETFLOW_HOME/lake` by default), keys are their relative paths.
//!
//! A put writes a hidden temp file next to the target, fsyncs it, renames it
//! over the target and fsyncs the directory, so a crash leaves the old object
//! or the new one, never a torn file, and a reported success survives power
//! loss. Listings skip the hidden temp files of writes still in flight.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{validate_key, LakeError, ObjectMeta, ObjectStore};

/// Makes temp names unique among concurrent puts of one process; the pid
/// separates processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A lake in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`; the directory is created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`, after checking the key cannot leave the root.
    fn path_of(&self, key: &str) -> Result<PathBuf, LakeError> {
        validate_key(key, false)?;
        Ok(key.split('/').fold(self.root.clone(), |p, s| p.join(s)))
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || put_atomic(&key, &path, &bytes)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LakeError::io("read", &key, &path, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, LakeError> {
        validate_key(prefix, true)?;
        // Walk only the deepest directory the prefix fully names, then filter
        // by the string prefix, which is what S3 does.
        let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let start = if dir_part.is_empty() {
            String::new()
        } else {
            format!("{dir_part}/")
        };
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out: Vec<ObjectMeta> = Vec::new();
            let dir = start
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(root, |p, s| p.join(s));
            walk(&dir, &start, &mut out)?;
            out.retain(|m| m.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), LakeError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LakeError::io("delete", &key, &path, e)),
        })
        .await
    }
}

/// Runs blocking filesystem work off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LakeError> + Send + 'static,
) -> Result<T, LakeError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|join| Err(LakeError::Task(join.to_string())))
}

/// temp file in the target's directory → fsync → rename → fsync directory.
fn put_atomic(key: &str, path: &Path, bytes: &[u8]) -> Result<(), LakeError> {
    let dir = path
        .parent()
        .ok_or_else(|| LakeError::InvalidKey {
            key: key.to_owned(),
            reason: "no parent directory".to_owned(),
        })?
        .to_owned();
    fs::create_dir_all(&dir).map_err(|e| LakeError::io("create directory", key, &dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_synced(&temp, bytes)
        .map_err(|e| LakeError::io("write", key, &temp, e))
        .and_then(|()| fs::rename(&temp, path).map_err(|e| LakeError::io("rename", key, path, e)));
    if let Err(e) = written {
        // Best effort: the temp file is hidden from listings either way.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    // The rename is durable only once the directory entry is on disk.
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LakeError::io("sync directory", key, &dir, e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Recursively collects regular files under `dir` (whose key prefix is
/// `key_prefix`), skipping hidden entries (temp files) and symlinks, which
/// could point outside the root.
fn walk(dir: &Path, key_prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<(), LakeError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(LakeError::io("list", key_prefix, dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| LakeError::io("list", key_prefix, dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| LakeError::io("list", key_prefix, &path, e))?;
        let key = format!("{key_prefix}{name}");
        if file_type.is_dir() {
            walk(&path, &format!("{key}/"), out)?;
        } else if file_type.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| LakeError::io("stat", &key, &path, e))?;
            let modified = meta
                .modified()
                .map_err(|e| LakeError::io("stat", &key, &path, e))?;
            out.push(ObjectMeta {
                key,
                size: meta.len(),
                last_modified: DateTime::<Utc>::from(modified),
            });
        }
    }
    Ok(())
}
