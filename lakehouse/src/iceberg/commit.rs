//! The replace commit: one snapshot that adds the new data files and
//! removes the live files of the partitions being replaced.
//!
//! iceberg-rust 0.10 offers only fast appends, and re-running a date must
//! replace that date, not add to it. So this module writes the snapshot the
//! way Iceberg's own overwrite does — one new manifest (added, existing and
//! deleted entries), a manifest list, new table metadata — and swaps the
//! table's metadata pointer with a compare-and-set, exactly as the
//! catalog's own commits do ([`Warehouse::swap_metadata`]). A concurrent
//! writer makes the swap miss; the commit is then rebuilt on the new state.

use std::collections::HashMap;
use std::str::FromStr;

use iceberg::spec::{
    DataContentType, DataFile, ManifestEntryRef, ManifestList, ManifestListWriter,
    ManifestWriterBuilder, Operation, Snapshot, Struct, Summary, TableMetadataBuilder, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::MetadataLocation;

use super::catalog::Warehouse;
use super::table::TableDef;
use super::write::WriteSummary;
use super::{ice, IcebergError};

/// Which live files the commit removes.
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    /// Files whose partition tuple is one of these.
    Partitions(Vec<Struct>),
}

impl Scope {
    fn replaces(&self, partition: &Struct) -> bool {
        match self {
            Scope::All => true,
            Scope::Partitions(p) => p.iter().any(|s| s == partition),
        }
    }
}

/// Tries before giving up on concurrent commits to the same table.
const ATTEMPTS: u32 = 5;

/// Snapshot summary key carrying the BetFlow run that wrote the snapshot.
pub const RUN_ID_PROPERTY: &str = "betflow.run-id";

/// Commit `files`, replacing `scope`. Writers of one deployment take turns
/// per table ([`CommitTurn`]); a race lost to a writer outside it (another
/// engine on the same catalog) is retried on the new state.
pub async fn commit_replace(
    wh: &Warehouse,
    def: &TableDef,
    files: Vec<DataFile>,
    scope: Scope,
    properties: HashMap<String, String>,
) -> Result<WriteSummary, IcebergError> {
    let name = def.full_name();
    let turn: Option<CommitTurn> = match &wh.queue {
        Some(pool) => Some(CommitTurn::wait(pool, &name).await?),
        None => None,
    };
    let summary = commit_with_retries(wh, def, &files, &scope, &properties).await;
    if let Some(turn) = turn {
        turn.end().await;
    }
    summary
}

/// One table's turn to commit, across every process of a deployment: a
/// transaction-level advisory lock keyed by the table's name. Waiting
/// holds no connection (it polls), so queued commits cannot starve the
/// scheduler's pool; a turn dropped half-way (a cancelled task) ends with
/// its transaction.
pub struct CommitTurn {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

/// Longest pause between two looks at a busy table's lock.
const TURN_POLL_MAX: std::time::Duration = std::time::Duration::from_millis(200);

impl CommitTurn {
    pub async fn wait(pool: &sqlx::PgPool, table: &str) -> Result<CommitTurn, IcebergError> {
        let key = format!("betflow.iceberg.commit.{table}");
        let busy =
            |e: sqlx::Error| IcebergError::Catalog(format!("queueing the commit to {table}: {e}"));
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            let mut tx = pool.begin().await.map_err(busy)?;
            let ours: bool = sqlx::query_scalar(TRY_LOCK)
                .bind(&key)
                .fetch_one(&mut *tx)
                .await
                .map_err(busy)?;
            if ours {
                return Ok(CommitTurn { tx });
            }
            tx.rollback().await.map_err(busy)?;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(TURN_POLL_MAX);
        }
    }

    /// Lets the next writer of the table go.
    pub async fn end(self) {
        if let Err(e) = self.tx.rollback().await {
            // The server ends the transaction, and the lock, with the session.
            tracing::warn!("ending a commit turn: {e}");
        }
    }
}

/// Takes the table's lock for the rest of the transaction, if free.
const TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))";

/// Commit attempts on the table's newest state until one wins.
async fn commit_with_retries(
    wh: &Warehouse,
    def: &TableDef,
    files: &[DataFile],
    scope: &Scope,
    properties: &HashMap<String, String>,
) -> Result<WriteSummary, IcebergError> {
    let name = def.full_name();
    for attempt in 1..=ATTEMPTS {
        let table = wh
            .load_table(&def.ident())
            .await
            .map_err(ice("load", &name))?;
        match try_commit(wh, def, &table, files, scope, properties).await? {
            Some(summary) => return Ok(summary),
            None => {
                tracing::warn!(table = %name, attempt, "commit conflicted; retrying on the new state");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
        }
    }
    Err(IcebergError::Conflict {
        table: name,
        attempts: ATTEMPTS,
    })
}

/// One attempt: `None` when another writer committed first.
async fn try_commit(
    wh: &Warehouse,
    def: &TableDef,
    table: &Table,
    files: &[DataFile],
    scope: &Scope,
    properties: &HashMap<String, String>,
) -> Result<Option<WriteSummary>, IcebergError> {
    let name = def.full_name();
    let meta = table.metadata();
    let io = table.file_io();
    let parent = meta.current_snapshot().cloned();
    let sequence = meta.next_sequence_number();
    let snapshot_id = new_snapshot_id(|id| meta.snapshot_by_id(id).is_some());

    // Split the parent's live data files into kept and replaced.
    let mut kept: Vec<ManifestEntryRef> = Vec::new();
    let mut removed: Vec<ManifestEntryRef> = Vec::new();
    if let Some(parent) = &parent {
        let bytes = io
            .new_input(parent.manifest_list())
            .map_err(ice("open the manifest list of", &name))?
            .read()
            .await
            .map_err(ice("read the manifest list of", &name))?;
        let list = ManifestList::parse_with_version(&bytes, meta.format_version())
            .map_err(ice("parse the manifest list of", &name))?;
        for manifest_file in list.entries() {
            let manifest = manifest_file
                .load_manifest(io)
                .await
                .map_err(ice("read a manifest of", &name))?;
            for entry in manifest.entries() {
                if !entry.is_alive() || entry.content_type() != DataContentType::Data {
                    continue;
                }
                if scope.replaces(entry.data_file().partition()) {
                    removed.push(entry.clone());
                } else {
                    kept.push(entry.clone());
                }
            }
        }
    }

    let manifest_path = format!(
        "{}/metadata/{}-m0.avro",
        meta.location(),
        uuid::Uuid::new_v4()
    );
    let output = io
        .new_output(&manifest_path)
        .map_err(ice("create a manifest of", &name))?;
    let mut writer = ManifestWriterBuilder::new(
        output,
        Some(snapshot_id),
        meta.current_schema().clone(),
        meta.default_partition_spec().as_ref().clone(),
    )
    .build_v2_data();
    for f in files {
        writer
            .add_file(f.clone(), sequence)
            .map_err(ice("list a new file of", &name))?;
    }
    for e in &kept {
        let (Some(id), Some(seq)) = (e.snapshot_id(), e.sequence_number()) else {
            continue;
        };
        writer
            .add_existing_file(e.data_file().clone(), id, seq, e.file_sequence_number)
            .map_err(ice("list a kept file of", &name))?;
    }
    for e in &removed {
        let Some(seq) = e.sequence_number() else {
            continue;
        };
        writer
            .add_delete_file(e.data_file().clone(), seq, e.file_sequence_number)
            .map_err(ice("list a removed file of", &name))?;
    }
    let manifest = writer
        .write_manifest_file()
        .await
        .map_err(ice("write a manifest of", &name))?;

    let list_path = format!(
        "{}/metadata/snap-{snapshot_id}-1-{}.avro",
        meta.location(),
        uuid::Uuid::new_v4()
    );
    let list_out = io
        .new_output(&list_path)
        .map_err(ice("create the manifest list of", &name))?
        .writer()
        .await
        .map_err(ice("create the manifest list of", &name))?;
    let mut list = ManifestListWriter::v2(
        list_out,
        snapshot_id,
        parent.as_ref().map(|p| p.snapshot_id()),
        sequence,
    );
    list.add_manifests(std::iter::once(manifest))
        .map_err(ice("list the manifest of", &name))?;
    list.close()
        .await
        .map_err(ice("write the manifest list of", &name))?;

    let rows = |entries: &[ManifestEntryRef]| entries.iter().map(|e| e.record_count()).sum::<u64>();
    let added_rows: u64 = files.iter().map(|f| f.record_count()).sum();
    let deleted_rows = rows(&removed);
    let total_rows = rows(&kept) + added_rows;
    let operation = if removed.is_empty() {
        Operation::Append
    } else {
        Operation::Overwrite
    };
    let mut summary: HashMap<String, String> = properties.clone();
    for (k, v) in [
        ("added-data-files", files.len() as u64),
        ("added-records", added_rows),
        ("deleted-data-files", removed.len() as u64),
        ("deleted-records", deleted_rows),
        ("total-data-files", (kept.len() + files.len()) as u64),
        ("total-records", total_rows),
        ("total-delete-files", 0),
        ("total-position-deletes", 0),
        ("total-equality-deletes", 0),
    ] {
        summary.insert(k.to_owned(), v.to_string());
    }
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(sequence)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation: operation.clone(),
            additional_properties: summary,
        })
        .with_schema_id(meta.current_schema_id())
        .build();

    let swapped = swap_metadata(wh, def, table, |b| {
        b.set_branch_snapshot(snapshot, MAIN_BRANCH)
            .map_err(ice("add the snapshot to", &name))
    })
    .await?;
    if !swapped {
        return Ok(None);
    }
    Ok(Some(WriteSummary {
        table: name,
        snapshot_id,
        operation: operation.as_str().to_owned(),
        added_files: files.len(),
        added_rows,
        deleted_files: removed.len(),
        deleted_rows,
        total_rows,
    }))
}

/// Writes the table's next metadata file — its metadata with `change`
/// applied — and swaps the catalog's pointer to it if the table is still
/// at the metadata it was loaded with; `false` when another writer moved
/// it first.
pub(crate) async fn swap_metadata(
    wh: &Warehouse,
    def: &TableDef,
    table: &Table,
    change: impl FnOnce(TableMetadataBuilder) -> Result<TableMetadataBuilder, IcebergError>,
) -> Result<bool, IcebergError> {
    let name = def.full_name();
    let current = table
        .metadata_location()
        .ok_or_else(|| IcebergError::Catalog(format!("{name} has no metadata location")))?
        .to_owned();
    let builder =
        TableMetadataBuilder::new_from_metadata(table.metadata().clone(), Some(current.clone()));
    let new_meta = change(builder)?
        .build()
        .map_err(ice("build metadata of", &name))?
        .metadata;
    let location = MetadataLocation::from_str(&current)
        .map_err(ice("parse the metadata location of", &name))?
        .with_next_version()
        .with_new_metadata(&new_meta);
    new_meta
        .write_to(table.file_io(), &location)
        .await
        .map_err(ice("write metadata of", &name))?;
    wh.swap_metadata(&def.ident(), &current, &location.to_string())
        .await
}

/// A positive snapshot id not used by the table yet.
fn new_snapshot_id(taken: impl Fn(i64) -> bool) -> i64 {
    loop {
        let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && !taken(id) {
            return id;
        }
    }
}
