//! [`CompletedCheckpoint`], a committed checkpoint or savepoint, and the listing of a job
//! directory's `chk-N/` directories.

use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Result, StateScope};

use crate::layout;
use crate::metadata::CheckpointMetadata;
use crate::store::CheckpointStore;

/// A committed checkpoint or savepoint: its metadata and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// The decoded `_metadata`.
    pub metadata: Arc<CheckpointMetadata>,
    /// The path of `_metadata` in the store.
    pub metadata_path: String,
    /// The directory handle paths are relative to: the job directory of a checkpoint, the
    /// savepoint directory of a savepoint.
    pub base_dir: String,
}

impl CompletedCheckpoint {
    /// The checkpoint id.
    pub fn id(&self) -> CheckpointId {
        self.metadata.checkpoint_id
    }

    /// The directory that holds `_metadata`.
    pub fn dir(&self) -> String {
        layout::parent_dir(&self.metadata_path)
    }

    /// The full paths (in the store) of every referenced file, with their scope.
    pub(crate) fn file_paths(&self) -> Vec<(String, StateScope)> {
        self.metadata
            .files()
            .into_iter()
            .map(|f| (layout::join(&self.base_dir, &f.path), f.scope))
            .collect()
    }
}

/// The `(id, dir)` of every `chk-N/` directory in `job_dir`, sorted numerically.
pub(crate) fn checkpoint_dirs(
    store: &CheckpointStore,
    job_dir: &str,
) -> Result<Vec<(CheckpointId, String)>> {
    store.block_on(checkpoint_dirs_async(store, job_dir))
}

/// [`checkpoint_dirs`], async.
pub(crate) async fn checkpoint_dirs_async(
    store: &CheckpointStore,
    job_dir: &str,
) -> Result<Vec<(CheckpointId, String)>> {
    let mut dirs: Vec<(CheckpointId, String)> = store
        .list_async(job_dir, false)
        .await?
        .into_iter()
        .filter_map(|e| {
            let name = layout::file_name(&e.path);
            layout::parse_checkpoint_dir(name).map(|id| (id, layout::checkpoint_dir(job_dir, id)))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Makes what a job directory shows durable before a writer or `gc` acts on it: every
/// `chk-N/`, `shared/` and the job directory itself are synced (see
/// [`DirSync`](crate::DirSync)). A process that died between deleting a `_metadata` and
/// syncing its directory left a deletion that a power cut could undo; the files that
/// `_metadata` referenced may be deleted only once it is gone for good.
/// `dirs` is the job directory's [`checkpoint_dirs`], listed by the caller.
pub(crate) fn sync_job_dirs(
    store: &CheckpointStore,
    job_dir: &str,
    dirs: &[(CheckpointId, String)],
) -> Result<()> {
    store.block_on(sync_job_dirs_async(store, job_dir, dirs))
}

/// [`sync_job_dirs`], async.
pub(crate) async fn sync_job_dirs_async(
    store: &CheckpointStore,
    job_dir: &str,
    dirs: &[(CheckpointId, String)],
) -> Result<()> {
    let shared = layout::shared_dir(job_dir);
    store
        .sync_dirs_async(
            dirs.iter()
                .map(|(_, d)| d.as_str())
                .chain([shared.as_str(), job_dir]),
        )
        .await
}
