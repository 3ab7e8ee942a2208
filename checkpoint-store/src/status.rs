//! The one classification of a `chk-N/` directory, used by every reader and deleter:
//! [`CompletedCheckpointStore::open`](crate::CompletedCheckpointStore::open),
//! [`CheckpointStore::resolve`], the [`inspect`](crate::inspect) functions (`list`, `verify`,
//! `gc`) and so the coordinator and the `cornerstone` tool.
//!
//! | status | `_metadata` | restorable | what `gc` may delete |
//! |---|---|---|---|
//! | [`Complete`](CheckpointDirStatus::Complete) | decodes, names this checkpoint | yes | files it does not reference, once older than the min age |
//! | [`InProgress`](CheckpointDirStatus::InProgress) | absent, a file changed within the min age | no | nothing |
//! | [`Abandoned`](CheckpointDirStatus::Abandoned) | absent, nothing changed for the min age | no | the directory |
//! | [`Corrupt`](CheckpointDirStatus::Corrupt) | present, fails a check | no | nothing, and no `shared/` file |
//! | [`NewerFormat`](CheckpointDirStatus::NewerFormat) | written by a newer version | not by this version | nothing, and no `shared/` file |
//! | [`Fenced`](CheckpointDirStatus::Fenced) | decodes, but was published by a fenced writer after a newer one listed the job ([`lease`](crate::lease)) | no | the directory, once older than the min age |
//!
//! A transient storage error is never a status: it is returned as the error it is, so that
//! no caller skips to an older checkpoint (or deletes anything) because storage hiccuped.

use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};

use crate::codec;
use crate::completed::CompletedCheckpoint;
use crate::layout;
use crate::metadata::SnapshotKind;
use crate::store::CheckpointStore;

/// The largest `_metadata` file read: the largest body the format allows plus its framing.
pub(crate) const MAX_METADATA_FILE: u64 = codec::MAX_BODY_SIZE + (64 << 10);

/// What a `chk-N/` directory holds (see the [module docs](self)).
#[derive(Debug)]
pub enum CheckpointDirStatus {
    /// `_metadata` decodes and names this directory's checkpoint.
    Complete(CompletedCheckpoint),
    /// No `_metadata`, and a file in it changed within the min age (or the age is unknown):
    /// a writer may still be uploading into it.
    InProgress,
    /// No `_metadata`, and nothing in it changed for at least the min age: never committed.
    Abandoned,
    /// `_metadata` exists but is unreadable: the error says why (checksum, decoding, a
    /// savepoint or another checkpoint's metadata in this directory).
    Corrupt(Error),
    /// `_metadata` was written by a newer format version: not garbage, only not readable
    /// by this version.
    NewerFormat(Error),
    /// `_metadata` decodes, but a writer that had been fenced published it after the newer
    /// writer listed the job (see [`lease`](crate::lease)): nothing was told it completed,
    /// its side effects may have been rolled back, and it is never restored.
    Fenced(CompletedCheckpoint),
}

impl CheckpointDirStatus {
    /// `"complete"`, `"in progress"`, `"abandoned"`, `"corrupt"`, `"newer format"` or
    /// `"fenced"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckpointDirStatus::Complete(_) => "complete",
            CheckpointDirStatus::InProgress => "in progress",
            CheckpointDirStatus::Abandoned => "abandoned",
            CheckpointDirStatus::Corrupt(_) => "corrupt",
            CheckpointDirStatus::NewerFormat(_) => "newer format",
            CheckpointDirStatus::Fenced(_) => "fenced",
        }
    }

    /// Whether `_metadata` exists but cannot be read by this version.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            CheckpointDirStatus::Corrupt(_) | CheckpointDirStatus::NewerFormat(_)
        )
    }

    /// The error of an unreadable `_metadata`.
    pub fn error(&self) -> Option<&Error> {
        match self {
            CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => Some(e),
            _ => None,
        }
    }
}

/// How [`classify`] tells an abandoned directory from one in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeGuard {
    /// Now, in milliseconds since the epoch.
    pub now_ms: u64,
    /// A directory without `_metadata` is abandoned once nothing in it changed for this long.
    pub min_age_ms: u64,
}

impl AgeGuard {
    /// Whether an object last modified at `modified_ms` (unknown: `None`) is at least the
    /// min age old. An unknown age is never old enough, unless the min age is zero.
    pub fn is_old(&self, modified_ms: Option<u64>) -> bool {
        if self.min_age_ms == 0 {
            return true;
        }
        modified_ms.is_some_and(|m| self.now_ms.saturating_sub(m) >= self.min_age_ms)
    }
}

/// Reads and decodes a `_metadata` (at most [`MAX_METADATA_FILE`] bytes) and works out its
/// base directory.
pub(crate) async fn load_completed(
    store: &CheckpointStore,
    metadata_path: &str,
) -> Result<CompletedCheckpoint> {
    let bytes = store
        .read_small_async(metadata_path, MAX_METADATA_FILE)
        .await?;
    let metadata = codec::decode(&bytes).map_err(|e| e.with_context("path", metadata_path))?;
    let dir = layout::parent_dir(metadata_path);
    let base_dir = match metadata.kind {
        SnapshotKind::Checkpoint => layout::parent_dir(&dir),
        SnapshotKind::Savepoint => dir,
    };
    Ok(CompletedCheckpoint {
        metadata: Arc::new(metadata),
        metadata_path: metadata_path.to_owned(),
        base_dir,
    })
}

/// Classifies the checkpoint directory `dir` of checkpoint `id`. Without `age`, a directory
/// without `_metadata` is [`InProgress`](CheckpointDirStatus::InProgress) (nothing is listed).
///
/// # Errors
/// Storage errors other than a missing `_metadata` (transient ones included);
/// [`ErrorKind::Unsupported`] inside a tokio runtime (see [`CheckpointStore`]'s
/// "Blocking").
pub fn classify(
    store: &CheckpointStore,
    dir: &str,
    id: CheckpointId,
    age: Option<AgeGuard>,
) -> Result<CheckpointDirStatus> {
    store.block_on(classify_async(store, dir, id, age))
}

/// [`classify`], async.
pub(crate) async fn classify_async(
    store: &CheckpointStore,
    dir: &str,
    id: CheckpointId,
    age: Option<AgeGuard>,
) -> Result<CheckpointDirStatus> {
    let meta = layout::metadata_path(dir);
    match metadata_status_async(store, &meta).await? {
        Some(CheckpointDirStatus::Complete(done))
            if done.metadata.kind != SnapshotKind::Checkpoint =>
        {
            Ok(CheckpointDirStatus::Corrupt(
                Error::corrupted("a checkpoint directory holds a savepoint's _metadata")
                    .with_context("path", &meta),
            ))
        }
        Some(CheckpointDirStatus::Complete(done)) if done.id() != id => {
            Ok(CheckpointDirStatus::Corrupt(
                Error::corrupted("_metadata holds another checkpoint than its directory's")
                    .with_context("path", &meta)
                    .with_context("checkpoint", done.id())
                    .with_context("directory", layout::checkpoint_dir_name(id)),
            ))
        }
        Some(status) => Ok(status),
        None => {
            let Some(age) = age else {
                return Ok(CheckpointDirStatus::InProgress);
            };
            if age.min_age_ms == 0 {
                return Ok(CheckpointDirStatus::Abandoned);
            }
            let mut newest = None::<u64>;
            let mut unknown = false;
            for e in store.list_async(dir, true).await? {
                if e.is_dir {
                    continue;
                }
                match store.modified_ms_async(&e.path).await {
                    Ok(Some(ms)) => newest = Some(newest.map_or(ms, |n| n.max(ms))),
                    Ok(None) => unknown = true,
                    // Deleted since the listing (its writer cleaned up): not a sign of life.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            // An empty directory may be one a writer just created: in progress.
            if !unknown && age.is_old(newest) {
                Ok(CheckpointDirStatus::Abandoned)
            } else {
                Ok(CheckpointDirStatus::InProgress)
            }
        }
    }
}

/// What the `_metadata` at `meta` says, without the checks that need its directory:
/// complete, corrupt or of a newer format; `None` when there is none.
///
/// # Errors
/// Storage errors other than a missing `_metadata`.
pub(crate) fn metadata_status(
    store: &CheckpointStore,
    meta: &str,
) -> Result<Option<CheckpointDirStatus>> {
    store.block_on(metadata_status_async(store, meta))
}

/// [`metadata_status`], async.
pub(crate) async fn metadata_status_async(
    store: &CheckpointStore,
    meta: &str,
) -> Result<Option<CheckpointDirStatus>> {
    match load_completed(store, meta).await {
        Ok(done) => Ok(Some(CheckpointDirStatus::Complete(done))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            Ok(Some(CheckpointDirStatus::NewerFormat(e)))
        }
        Err(e) if e.kind() == ErrorKind::Corrupted => Ok(Some(CheckpointDirStatus::Corrupt(e))),
        Err(e) => Err(e),
    }
}

/// Every `chk-N/` directory of a job directory, classified, ascending by id.
///
/// # Errors
/// Storage errors (see [`classify`]).
pub fn classify_job(
    store: &CheckpointStore,
    job_dir: &str,
    age: Option<AgeGuard>,
) -> Result<Vec<(CheckpointId, String, CheckpointDirStatus)>> {
    store.block_on(classify_job_async(store, job_dir, age))
}

/// [`classify_job`], async.
pub(crate) async fn classify_job_async(
    store: &CheckpointStore,
    job_dir: &str,
    age: Option<AgeGuard>,
) -> Result<Vec<(CheckpointId, String, CheckpointDirStatus)>> {
    let job_dir = layout::normalize_dir(job_dir)?;
    let lease = crate::lease::read_state_async(store, &job_dir).await?;
    let dirs = crate::completed::checkpoint_dirs_async(store, &job_dir).await?;
    classify_listed(store, dirs, age, &lease).await
}

/// [`classify_job`] of directories the caller listed, with the job's lease state it read.
pub(crate) async fn classify_listed(
    store: &CheckpointStore,
    dirs: Vec<(CheckpointId, String)>,
    age: Option<AgeGuard>,
    lease: &crate::lease::LeaseState,
) -> Result<Vec<(CheckpointId, String, CheckpointDirStatus)>> {
    let mut classified = Vec::with_capacity(dirs.len());
    for (id, dir) in dirs {
        let status = with_lease(classify_async(store, &dir, id, age).await?, id, lease);
        classified.push((id, dir, status));
    }
    Ok(classified)
}

/// A complete checkpoint that the job's lease views make late is
/// [`Fenced`](CheckpointDirStatus::Fenced).
pub(crate) fn with_lease(
    status: CheckpointDirStatus,
    id: CheckpointId,
    lease: &crate::lease::LeaseState,
) -> CheckpointDirStatus {
    match status {
        CheckpointDirStatus::Complete(done) if lease.is_late(id) => {
            CheckpointDirStatus::Fenced(done)
        }
        other => other,
    }
}

/// The error for an unreadable `_metadata` newer than every complete checkpoint.
pub(crate) fn unreadable_newest(status: &CheckpointDirStatus, dir: &str) -> Error {
    let path = layout::metadata_path(dir);
    match status.error() {
        Some(e) => Error::new(
            e.kind(),
            "the newest checkpoint's _metadata is unreadable; refusing to fall back to an older \
             checkpoint silently",
        )
        .with_context("path", path)
        .with_context("cause", e),
        None => Error::internal("not an unreadable checkpoint").with_context("path", path),
    }
}
