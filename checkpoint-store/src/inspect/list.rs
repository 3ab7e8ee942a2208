//! [`list`]: the checkpoints and savepoints of a directory, with status and sizes.

use std::collections::BTreeMap;

use cornerstone_backend_api::{CheckpointId, KeyedStateHandle, Result};

use crate::completed::checkpoint_dirs;
use crate::layout;
use crate::lease;
use crate::metadata::SnapshotKind;
use crate::status::{self, CheckpointDirStatus};
use crate::store::CheckpointStore;

/// Whether a `chk-N/` or savepoint directory can be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// `_metadata` exists and decodes.
    Complete,
    /// No `_metadata`: never committed (or being written); garbage for `gc`.
    Incomplete,
    /// `_metadata` exists but does not decode; the message says why.
    Corrupt(String),
    /// `_metadata` was written by a newer format version; the message says which.
    NewerFormat(String),
    /// `_metadata` decodes, but a fenced writer published it after a newer writer took
    /// over: never restored (see [`lease`]); garbage for `gc`.
    Fenced,
}

impl SnapshotStatus {
    /// `"complete"`, `"incomplete"`, `"corrupt"`, `"newer-format"` or `"fenced"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SnapshotStatus::Complete => "complete",
            SnapshotStatus::Incomplete => "incomplete",
            SnapshotStatus::Corrupt(_) => "corrupt",
            SnapshotStatus::NewerFormat(_) => "newer-format",
            SnapshotStatus::Fenced => "fenced",
        }
    }
}

/// One checkpoint or savepoint found by [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSnapshot {
    /// Checkpoint or savepoint (by directory name when the metadata is unreadable).
    pub kind: SnapshotKind,
    /// The checkpoint id: from the directory name for `chk-N/`, from `_metadata` for
    /// savepoints (`None` when unreadable).
    pub id: Option<CheckpointId>,
    /// The directory (inside the store).
    pub dir: String,
    /// Complete, incomplete or corrupt.
    pub status: SnapshotStatus,
    /// When it was triggered (ms since the epoch), if known.
    pub trigger_timestamp_ms: Option<u64>,
    /// When it completed (ms since the epoch), if known.
    pub completed_timestamp_ms: Option<u64>,
    /// The referenced state size (inline and files) for complete ones; otherwise the bytes
    /// in the directory.
    pub size_bytes: u64,
    /// For complete ones: whether keyed state is incremental (native snapshots that share
    /// files with earlier checkpoints, or a heap changelog's delta) rather than full.
    pub incremental: Option<bool>,
    /// For complete checkpoints: what this one wrote, its state size minus the files it
    /// shares with the complete checkpoint listed before it.
    pub written_bytes: Option<u64>,
}

/// Lists the checkpoints (`chk-N/`, sorted by id as numbers) and savepoints
/// (`savepoint-*/`) directly in `dir` (a job directory, or a directory of savepoints).
///
/// # Errors
/// Storage errors while listing; unreadable snapshots are reported as entries, not errors.
pub fn list(store: &CheckpointStore, dir: &str) -> Result<Vec<ListedSnapshot>> {
    let dir = layout::normalize_dir(dir)?;
    let mut out = Vec::new();
    let chks = checkpoint_dirs(store, &dir)?;
    let lease = if chks.is_empty() {
        lease::LeaseState::default()
    } else {
        lease::read_state(store, &dir)?
    };
    // The files of the complete checkpoint listed last: what the next one may share.
    let mut previous: BTreeMap<String, u64> = BTreeMap::new();
    for (id, chk) in chks {
        let (mut entry, files) = describe(store, &chk, SnapshotKind::Checkpoint, Some(id), &lease)?;
        if let Some(files) = files {
            let shared: u64 = files
                .iter()
                .filter(|(p, _)| previous.contains_key(*p))
                .map(|(_, s)| s)
                .sum();
            entry.written_bytes = Some(entry.size_bytes.saturating_sub(shared));
            previous = files;
        }
        out.push(entry);
    }
    let mut savepoints: Vec<String> = store
        .list(&dir, false)?
        .into_iter()
        .filter(|e| e.is_dir && layout::is_savepoint_dir(layout::file_name(&e.path)))
        .map(|e| e.path)
        .collect();
    savepoints.sort();
    for sp in savepoints {
        let sp = layout::normalize_dir(&sp)?;
        let (entry, _) = describe(
            store,
            &sp,
            SnapshotKind::Savepoint,
            None,
            &lease::LeaseState::default(),
        )?;
        out.push(entry);
    }
    Ok(out)
}

/// The bytes of every file under `dir` (also used by the Flink listing).
pub(super) fn dir_size(store: &CheckpointStore, dir: &str) -> Result<u64> {
    let mut total = 0;
    for e in store.list(dir, true)? {
        if !e.is_dir {
            total = u64::saturating_add(total, store.size(&e.path).unwrap_or(0));
        }
    }
    Ok(total)
}

fn describe(
    store: &CheckpointStore,
    dir: &str,
    kind: SnapshotKind,
    id: Option<CheckpointId>,
    lease: &lease::LeaseState,
) -> Result<(ListedSnapshot, Option<BTreeMap<String, u64>>)> {
    let meta = layout::metadata_path(dir);
    let mut entry = ListedSnapshot {
        kind,
        id,
        dir: dir.to_owned(),
        status: SnapshotStatus::Incomplete,
        trigger_timestamp_ms: None,
        completed_timestamp_ms: None,
        size_bytes: 0,
        incremental: None,
        written_bytes: None,
    };
    let mut files = None;
    let status = match id {
        Some(id) => status::with_lease(status::classify(store, dir, id, None)?, id, lease),
        None => status::metadata_status(store, &meta)?.unwrap_or(CheckpointDirStatus::InProgress),
    };
    match status {
        CheckpointDirStatus::Complete(done) => {
            let m = &done.metadata;
            entry.kind = m.kind;
            entry.id = Some(id.unwrap_or(m.checkpoint_id));
            entry.status = SnapshotStatus::Complete;
            entry.trigger_timestamp_ms = Some(m.trigger_timestamp_ms);
            entry.completed_timestamp_ms = Some(m.completed_timestamp_ms);
            entry.size_bytes = m.state_size();
            entry.incremental = Some(m.operators.iter().any(|op| {
                op.subtasks.values().any(|st| {
                    st.keyed.iter().any(|k| match k {
                        KeyedStateHandle::Incremental(_) => true,
                        // A materialization is a full snapshot; a delta is incremental.
                        KeyedStateHandle::Changelog(h) => !h.deltas.is_empty(),
                        KeyedStateHandle::KeyGroups(_) => false,
                    })
                })
            }));
            files = Some(
                m.files()
                    .into_iter()
                    .map(|f| (layout::join(&done.base_dir, &f.path), f.size))
                    .collect(),
            );
        }
        CheckpointDirStatus::InProgress | CheckpointDirStatus::Abandoned => {
            entry.size_bytes = dir_size(store, dir)?;
        }
        CheckpointDirStatus::Fenced(done) => {
            entry.status = SnapshotStatus::Fenced;
            entry.trigger_timestamp_ms = Some(done.metadata.trigger_timestamp_ms);
            entry.completed_timestamp_ms = Some(done.metadata.completed_timestamp_ms);
            entry.size_bytes = dir_size(store, dir)?;
        }
        CheckpointDirStatus::Corrupt(e) => {
            entry.status = SnapshotStatus::Corrupt(e.to_string());
            entry.size_bytes = dir_size(store, dir)?;
        }
        CheckpointDirStatus::NewerFormat(e) => {
            entry.status = SnapshotStatus::NewerFormat(e.to_string());
            entry.size_bytes = dir_size(store, dir)?;
        }
    }
    Ok((entry, files))
}
