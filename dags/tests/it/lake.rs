//! The raw lake against both backends: a local directory in a tempdir and a
//! real S3 API server (moto's `moto_server`) on loopback. The same behaviour
//! checks run on both, so the laptop and production paths cannot drift.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::moto_auth::require_signatures;
use crate::support::MotoServer;
use chrono::NaiveDate;
use dags::lake::gunzip;
use dags::lake::layout::{dead_letter_key, Format, Kind, RawKey};
use dags::lake::{
    read_raw, write_dead_letters, write_raw, DeadLetter, LakeError, LocalStore, ObjectStore,
    S3Config, S3Store,
};
use serde_json::{json, Value};

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 9, 8).expect("valid date")
}

fn raw_key(source: &str, run_id: &str) -> RawKey {
    RawKey::new("nfl", Kind::Games, day(), source, run_id, Format::Json).expect("valid raw key")
}

/// Behaviours every backend must have. `tick` separates two runs' writes by
/// more than the backend's last-modified resolution (1 s on real S3).
async fn exercise(store: &dyn ObjectStore, tick: Duration) {
    put_get_delete(store).await;
    list_by_prefix(store).await;
    dotdot_keys_rejected(store).await;
    rerun_replaces_the_date(store, tick).await;
    dead_letters(store).await;
}

async fn put_get_delete(store: &dyn ObjectStore) {
    assert_eq!(store.get("misc/absent.bin").await.expect("get"), None);
    store.put("misc/a.bin", b"one".to_vec()).await.expect("put");
    store
        .put("misc/a.bin", b"two".to_vec())
        .await
        .expect("overwrite");
    assert_eq!(
        store.get("misc/a.bin").await.expect("get"),
        Some(b"two".to_vec())
    );
    store.delete("misc/a.bin").await.expect("delete");
    assert_eq!(store.get("misc/a.bin").await.expect("get"), None);
    store
        .delete("misc/a.bin")
        .await
        .expect("deleting a missing key is fine");
}

async fn list_by_prefix(store: &dyn ObjectStore) {
    for key in [
        "p/a/1.json",
        "p/a/2.json",
        "p/b/1.json",
        "p/ab/x.json",
        "q/other.json",
    ] {
        store.put(key, key.as_bytes().to_vec()).await.expect("put");
    }
    let keys = |metas: Vec<dags::lake::ObjectMeta>| -> Vec<String> {
        metas.into_iter().map(|m| m.key).collect()
    };
    assert_eq!(
        keys(store.list("p/a/").await.expect("list")),
        ["p/a/1.json", "p/a/2.json"]
    );
    // A plain string prefix, as in S3: `p/a` also matches `p/ab/…`.
    assert_eq!(
        keys(store.list("p/a").await.expect("list")),
        ["p/a/1.json", "p/a/2.json", "p/ab/x.json"]
    );
    assert_eq!(store.list("p/").await.expect("list").len(), 4);
    assert!(store.list("nothing/here/").await.expect("list").is_empty());
    let one = store.list("p/b/1.json").await.expect("list");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].size, "p/b/1.json".len() as u64);
}

async fn dotdot_keys_rejected(store: &dyn ObjectStore) {
    for key in [
        "../escape.json",
        "raw/../../escape.json",
        "/abs.json",
        "raw/./x",
    ] {
        let put = store.put(key, b"x".to_vec()).await;
        assert!(
            matches!(put, Err(LakeError::InvalidKey { .. })),
            "{key}: {put:?}"
        );
        assert!(store.get(key).await.is_err(), "{key}");
        assert!(store.delete(key).await.is_err(), "{key}");
    }
    assert!(store.list("../").await.is_err());
}

async fn rerun_replaces_the_date(store: &dyn ObjectStore, tick: Duration) {
    let first_run = "scheduled__2024-09-08T04:00:00+00:00";
    let second_run = "manual__2024-09-09T10:15:00+00:00";
    let other_source = write_raw(store, &raw_key("odds_api", first_run), b"{\"odds\":1}")
        .await
        .expect("write other source");
    let first = write_raw(store, &raw_key("espn", first_run), b"{\"run\":1}")
        .await
        .expect("first run");
    tokio::time::sleep(tick).await;
    let second = write_raw(store, &raw_key("espn", second_run), b"{\"run\":2}")
        .await
        .expect("second run");
    assert_ne!(first, second);

    let prefix = raw_key("espn", second_run).date_prefix();
    let mut listed: Vec<String> = store
        .list(&prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    listed.sort();
    let mut expected = vec![second.clone(), other_source];
    expected.sort();
    assert_eq!(
        listed, expected,
        "one object per source and date, the newer"
    );

    // The key decodes back to the run that wrote it, and the bytes gunzip
    // to exactly the payload.
    let parsed = RawKey::parse(&second).expect("parse");
    assert_eq!(parsed.run_id, second_run);
    assert_eq!(parsed.source, "espn");
    let body = read_raw(store, &second)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(body, b"{\"run\":2}");
    let stored = store.get(&second).await.expect("get").expect("present");
    assert_eq!(&stored[..2], &[0x1f, 0x8b], "stored gzipped");

    // Re-running the same run id (a retry) replaces in place.
    let again = write_raw(store, &raw_key("espn", second_run), b"{\"run\":3}")
        .await
        .expect("retry");
    assert_eq!(again, second);
    assert_eq!(store.list(&prefix).await.expect("list").len(), 2);
    let body = read_raw(store, &second)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(body, b"{\"run\":3}");
}

async fn dead_letters(store: &dyn ObjectStore) {
    let run = "scheduled__2024-09-08T04:00:00+00:00";
    let records = vec![
        DeadLetter {
            source: "espn".to_owned(),
            reason: "missing field `id`".to_owned(),
            raw: json!({"name": "no id"}),
        },
        DeadLetter {
            source: "espn".to_owned(),
            reason: "not JSON".to_owned(),
            raw: Value::String("{broken".to_owned()),
        },
    ];
    let key = write_dead_letters(store, "espn", "nfl", day(), run, &records)
        .await
        .expect("write")
        .expect("written");
    assert_eq!(
        key,
        dead_letter_key("espn", "nfl", day(), run).expect("key")
    );
    assert!(key.starts_with("raw/dead_letter/espn/nfl/date=2024-09-08/"));
    let bytes = store.get(&key).await.expect("get").expect("present");
    let text = String::from_utf8(gunzip(&key, &bytes).expect("gunzip")).expect("utf8");
    let back: Vec<DeadLetter> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(back, records);
    // Another sport's rejects of the same source, date and run go beside
    // them, not over them.
    let nba = write_dead_letters(store, "espn", "nba", day(), run, &records[..1])
        .await
        .expect("write")
        .expect("written");
    assert!(nba.starts_with("raw/dead_letter/espn/nba/date=2024-09-08/"));
    assert!(store.get(&key).await.expect("get").is_some());
    assert!(
        write_dead_letters::<DeadLetter>(store, "espn", "nba", day(), run, &[])
            .await
            .expect("write")
            .is_none()
    );
    // A retry of the run with nothing rejected leaves no stale dead letters.
    let none = write_dead_letters::<DeadLetter>(store, "espn", "nfl", day(), run, &[])
        .await
        .expect("write");
    assert_eq!(none, None);
    assert_eq!(store.get(&key).await.expect("get"), None);
}

/// Every file under `dir`, relative, for checking what is really on disk.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under root").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn local_backend_behaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path().join("lake"));
    exercise(&store, Duration::from_millis(20)).await;

    // Atomic writes leave no temp files behind, and nothing outside the root.
    let files = files_under(dir.path());
    assert!(!files.is_empty());
    for file in &files {
        assert!(file.starts_with("lake"), "{file:?} outside the lake root");
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(
            !name.unwrap_or_default().starts_with('.'),
            "temp file left behind: {file:?}"
        );
    }
    assert!(!dir.path().join("escape.json").exists());
    let expected = dir
        .path()
        .join("lake/raw/historical/nfl/games/date=2024-09-08")
        .join("espn-manual__2024-09-09T10~3A15~3A00~2B00~3A00.json.gz");
    assert!(expected.is_file(), "{expected:?} missing; have {files:?}");
}

#[tokio::test]
async fn local_listing_skips_an_interrupted_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path());
    store
        .put("raw/x/a.json.gz", b"a".to_vec())
        .await
        .expect("put");
    // What a crash between write and rename leaves: a hidden temp file.
    std::fs::write(dir.path().join("raw/x/.b.json.gz.tmp-1-0"), b"partial").expect("write");
    let listed = store.list("raw/").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "raw/x/a.json.gz");
}

fn s3_store(server: &MotoServer, bucket: &str) -> S3Store {
    S3Store::new(&S3Config {
        endpoint: Some(server.endpoint.clone()),
        region: "us-east-1".to_owned(),
        bucket: bucket.to_owned(),
        path_style: true,
        access_key_id: "betflow-test".to_owned(),
        secret_access_key: "betflow-test-secret".to_owned(),
        session_token: None,
    })
    .expect("S3 client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_behaves_against_moto() {
    let server = MotoServer::start();
    let store = s3_store(&server, "betflow-lake");
    store.ensure_bucket().await.expect("create bucket");
    store
        .ensure_bucket()
        .await
        .expect("creating it again is fine");
    assert_eq!(store.location(), "s3://betflow-lake");
    exercise(&store, Duration::from_millis(1100)).await;

    // Errors name the bucket and key.
    let missing = s3_store(&server, "no-such-bucket");
    let err = missing
        .put("raw/k.json.gz", b"x".to_vec())
        .await
        .expect_err("no bucket");
    let text = err.to_string();
    assert!(text.contains("s3://no-such-bucket/raw/k.json.gz"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listing_follows_continuation_tokens() {
    let server = MotoServer::start();
    let store = Arc::new(s3_store(&server, "betflow-pages"));
    store.ensure_bucket().await.expect("create bucket");
    // One more than a ListObjectsV2 page (1000 keys).
    let count: usize = 1001;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for i in (chunk..count).step_by(8) {
                let key = format!("raw/pages/{i:05}.json");
                store.put(&key, Vec::new()).await.expect("put");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("put task");
    }
    let listed = store.list("raw/pages/").await.expect("list");
    assert_eq!(listed.len(), count);
    assert_eq!(listed[0].key, "raw/pages/00000.json");
    assert_eq!(
        listed[count - 1].key,
        format!("raw/pages/{:05}.json", count - 1)
    );
}

/// S3 refuses a request whose signature does not cover exactly what is
/// sent; moto checks the same way once told to. A key with a space and
/// non-ASCII letters exercises the canonical path's percent-encoding, a
/// region other than us-east-1 the CreateBucket body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_requests_pass_signature_checks() {
    let server = MotoServer::start();
    let keys = require_signatures(&server).await;
    let store = |secret: &str| {
        S3Store::new(&S3Config {
            endpoint: Some(server.endpoint.clone()),
            region: "eu-west-1".to_owned(),
            bucket: "betflow-signed".to_owned(),
            path_style: true,
            access_key_id: keys.access_key_id.clone(),
            secret_access_key: secret.to_owned(),
            session_token: None,
        })
        .expect("S3 client")
    };
    let signed = store(&keys.secret_access_key);
    signed.ensure_bucket().await.expect("signed CreateBucket");
    signed
        .ensure_bucket()
        .await
        .expect("signed CreateBucket of an owned bucket");
    let key = "raw/a b/größe+1.json.gz";
    signed
        .put(key, b"signed".to_vec())
        .await
        .expect("signed put");
    assert_eq!(
        signed.get(key).await.expect("signed get"),
        Some(b"signed".to_vec())
    );
    // A prefix without `/`: OpenDAL sends `prefix=raw/` unescaped and signs
    // it escaped, as SigV4 specifies and S3 checks; moto's checker takes
    // the query as sent and would refuse it.
    let listed = signed.list("raw").await.expect("signed list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, key);
    signed.delete(key).await.expect("signed delete");
    assert_eq!(signed.get(key).await.expect("signed get"), None);

    let wrong = store("not-the-secret");
    let text = wrong
        .put("raw/k.json.gz", b"x".to_vec())
        .await
        .expect_err("a wrong secret is refused")
        .to_string();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
}

/// Unmounts a test's tmpfs however the test ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_write_at_once_and_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mnt = dir.path().join("lake");
    std::fs::create_dir(&mnt).expect("mount point");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mounting a 256 KiB tmpfs as a full lake needs root (scripts/test runs as root in CI)"
    );
    let _unmount = Unmount(mnt.clone());
    let store = LocalStore::new(mnt.clone());
    let key = "raw/historical/nfl/odds/date=2024-09-08/replay-big.json.gz";

    let err = store
        .put(key, vec![7u8; 1024 * 1024])
        .await
        .expect_err("a 1 MiB object does not fit");
    assert!(matches!(err, LakeError::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(!err.retry_can_help(), "a retry cannot make room: {err}");
    // Nothing half written is visible, and its space is given back.
    assert!(store.list("raw/").await.expect("list").is_empty());
    assert_eq!(store.get(key).await.expect("get"), None);

    // Once the object fits, the next write lands.
    store
        .put(key, vec![7u8; 64 * 1024])
        .await
        .expect("a 64 KiB object fits");
    assert_eq!(store.list("raw/").await.expect("list").len(), 1);
}
