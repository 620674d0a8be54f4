//! Writing batch pulls and rejected records into the raw lake.
//!
//! Raw objects are the untouched source bytes, gzipped. A re-run of a date
//! must replace that date's object, not add a second one
//! (docs/lake-layout.md#re-runs-replace-a-date): the new
//! object is written first, under its own run's key, and only then are the
//! older objects of the same sport, kind, date and source removed, so a crash
//! in between leaves a duplicate for the next run to clean up, never a gap.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::layout::{dead_letter_key, RawKey};
use lakehouse::lake::{gunzip, gzip, LakeError, ObjectMeta, ObjectStore};

/// One record validation rejected, as stored in a dead-letter object
/// (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The source the record came from (`espn`, `odds_api`, …).
    pub source: String,
    /// Why it was rejected, for the operator reading the lake.
    pub reason: String,
    /// The record as received: its JSON, or a JSON string of the raw text
    /// when it did not even parse.
    pub raw: Value,
}

/// Gzips `payload` and stores it under `key`, then removes the older objects
/// of the same sport, kind, date and source. Returns the key written.
///
/// "Older" is decided by (last-modified, key), the same order every writer
/// sees, so two runs of one date finishing together keep exactly one object
/// between them instead of each deleting the other's.
pub async fn write_raw(
    store: &dyn ObjectStore,
    key: &RawKey,
    payload: &[u8],
) -> Result<String, LakeError> {
    let text = key.to_key();
    store.put(&text, gzip(&text, payload)?).await?;
    let siblings: Vec<ObjectMeta> = store.list(&key.date_prefix()).await?;
    let Some(mine) = siblings.iter().find(|m| m.key == text) else {
        // Another run replaced ours between the put and the listing: it is
        // newer and will clean up, so there is nothing for us to delete.
        tracing::warn!(key = %text, "raw object gone right after writing it; leaving clean-up to the newer run");
        return Ok(text);
    };
    let mine_order = (mine.last_modified, mine.key.as_str());
    for other in &siblings {
        if other.key == text || (other.last_modified, other.key.as_str()) > mine_order {
            continue;
        }
        // Objects that are not ours to judge (other sources, foreign files)
        // are left alone.
        let same_source = RawKey::parse(&other.key).is_ok_and(|k| k.source == key.source);
        if same_source {
            tracing::info!(old = %other.key, new = %text, "replacing raw object of a re-run date");
            store.delete(&other.key).await?;
        }
    }
    Ok(text)
}

/// The un-gzipped bytes of a raw object, `None` when the key is absent.
pub async fn read_raw(store: &dyn ObjectStore, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
    match store.get(key).await? {
        Some(bytes) => Ok(Some(gunzip(key, &bytes)?)),
        None => Ok(None),
    }
}

/// Stores a run's rejected records of `source` and `sport` for `date` as one gzipped
/// NDJSON object, replacing what an earlier try of the same run wrote.
/// With no records, any earlier object of the run is removed and `None`
/// returned: a clean retry leaves no stale dead letters behind.
///
/// Generic over the record type so the sources' own rejected-record type
/// (any `{source, reason, raw}` that serialises) goes in without copying.
pub async fn write_dead_letters<T: Serialize + Sync>(
    store: &dyn ObjectStore,
    source: &str,
    sport: &str,
    date: NaiveDate,
    run_id: &str,
    records: &[T],
) -> Result<Option<String>, LakeError> {
    let key = dead_letter_key(source, sport, date, run_id)?;
    if records.is_empty() {
        store.delete(&key).await?;
        return Ok(None);
    }
    let mut ndjson: Vec<u8> = Vec::new();
    for record in records {
        serde_json::to_writer(&mut ndjson, record).map_err(|source| LakeError::Encode {
            key: key.clone(),
            source,
        })?;
        ndjson.push(b'\n');
    }
    store.put(&key, gzip(&key, &ndjson)?).await?;
    Ok(Some(key))
}
