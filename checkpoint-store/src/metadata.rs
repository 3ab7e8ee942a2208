//! [`CheckpointMetadata`]: what `_metadata` holds.

use std::collections::BTreeMap;

use cornerstone_backend_api::{
    CheckpointId, Error, FileStateHandle, KeyGroupRange, KeyedStateHandle, Result, StateScope,
    StreamStateHandle, SubtaskState,
};
use serde::{Deserialize, Serialize};

use crate::layout;

/// The `_metadata` format version this crate writes. Every older version stays readable.
pub const FORMAT_VERSION: u16 = 1;

/// Whether a snapshot is a checkpoint or a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// A checkpoint (`chk-N/`): owned by the job, retained and subsumed by the store.
    Checkpoint,
    /// A savepoint (`savepoint-…/`): self-contained, owned by the user, never deleted
    /// automatically.
    Savepoint,
}

impl SnapshotKind {
    /// `"checkpoint"` or `"savepoint"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Checkpoint => "checkpoint",
            SnapshotKind::Savepoint => "savepoint",
        }
    }
}

/// One operator of the job graph: its identity (uid, name) and parallelism, as the
/// coordinator declares it and `_metadata` records it (an [`OperatorState`] is an
/// `OperatorSpec` plus the handles of its subtasks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperatorSpec {
    /// The stable uid (the key of its state in `_metadata`).
    pub uid: String,
    /// A readable name.
    pub name: String,
    /// How many subtasks it runs.
    pub parallelism: u32,
    /// Its number of key groups.
    pub max_parallelism: u32,
}

impl OperatorSpec {
    /// An operator with `parallelism` subtasks and `max_parallelism` key groups.
    pub fn new(
        uid: impl Into<String>,
        name: impl Into<String>,
        parallelism: u32,
        max_parallelism: u32,
    ) -> Self {
        OperatorSpec {
            uid: uid.into(),
            name: name.into(),
            parallelism,
            max_parallelism,
        }
    }
}

/// The state of one operator: identity, parallelism and the handles of every subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// The operator's stable uid (what state is matched by on restore).
    pub uid: String,
    /// A human-readable name.
    pub name: String,
    /// The parallelism the snapshot was taken at.
    pub parallelism: u32,
    /// The number of key groups.
    pub max_parallelism: u32,
    /// The handles of each subtask, by subtask index (`< parallelism`).
    pub subtasks: BTreeMap<u32, SubtaskState>,
}

impl OperatorState {
    /// The keyed state handles a subtask owning key groups `range` restores from: those of
    /// every subtask that overlap `range`, whatever the parallelism that wrote them (pass
    /// them to `KeyedBackendParams::restore`). The one call a rescaled restore needs.
    pub fn keyed_handles_for(&self, range: KeyGroupRange) -> Vec<KeyedStateHandle> {
        cornerstone_backend_api::rescale::keyed_handles_for(
            self.subtasks.values().flat_map(|s| &s.keyed),
            range,
        )
    }

    /// The operator's identity and parallelism.
    pub fn spec(&self) -> OperatorSpec {
        OperatorSpec::new(
            self.uid.clone(),
            self.name.clone(),
            self.parallelism,
            self.max_parallelism,
        )
    }

    /// A new operator without subtask state.
    pub fn new(
        uid: impl Into<String>,
        name: impl Into<String>,
        parallelism: u32,
        max_parallelism: u32,
    ) -> Self {
        OperatorState {
            uid: uid.into(),
            name: name.into(),
            parallelism,
            max_parallelism,
            subtasks: BTreeMap::new(),
        }
    }

    /// The total size of the referenced streams (inline and files), saturating at
    /// `u64::MAX` (a decoded `_metadata` never saturates: [`CheckpointMetadata::validate`]
    /// rejects sizes whose sum overflows).
    pub fn state_size(&self) -> u64 {
        self.subtasks
            .values()
            .fold(0u64, |sum, s| sum.saturating_add(s.state_size()))
    }
}

/// The content of a `_metadata` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// The format version it was read from or will be written as.
    pub format_version: u16,
    /// The checkpoint id (savepoints carry the id of the checkpoint they were taken at).
    pub checkpoint_id: CheckpointId,
    /// The job that wrote it.
    pub job_id: String,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// When the checkpoint was triggered, in milliseconds since the epoch (injected clock).
    pub trigger_timestamp_ms: u64,
    /// When it completed, in milliseconds since the epoch (injected clock).
    pub completed_timestamp_ms: u64,
    /// The operators, in the order they were added.
    pub operators: Vec<OperatorState>,
}

impl CheckpointMetadata {
    /// The operator with `uid`.
    pub fn operator(&self, uid: &str) -> Option<&OperatorState> {
        self.operators.iter().find(|o| o.uid == uid)
    }

    /// Every stream handle, in a stable order.
    pub fn streams(&self) -> Vec<&StreamStateHandle> {
        self.operators
            .iter()
            .flat_map(|o| o.subtasks.values())
            .flat_map(SubtaskState::streams)
            .collect()
    }

    /// Every file handle, deduplicated by path, in a stable order.
    pub fn files(&self) -> Vec<&FileStateHandle> {
        let mut seen = std::collections::BTreeSet::new();
        self.streams()
            .into_iter()
            .filter_map(StreamStateHandle::file)
            .filter(|f| seen.insert(f.path.as_str()))
            .collect()
    }

    /// The total size of the referenced state (inline and files), saturating at `u64::MAX`
    /// (a decoded `_metadata` never saturates: [`CheckpointMetadata::validate`] rejects sizes
    /// whose sum overflows).
    pub fn state_size(&self) -> u64 {
        self.operators
            .iter()
            .fold(0u64, |sum, o| sum.saturating_add(o.state_size()))
    }

    /// Checks the invariants a decoded `_metadata` must hold, so that no later step can be
    /// misled by a crafted file: parallelism within max parallelism, subtask indices below
    /// the parallelism, key-group ranges inside max parallelism, offsets consistent, and every
    /// file path a safe relative path (no `..`, no leading `/`) whose scope matches the kind,
    /// and the sizes of all referenced streams summing to at most `u64::MAX` (so that
    /// [`state_size`](Self::state_size) and every partial sum of it are exact).
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::Corrupted`] naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let ctx = |e: Error| e.with_context("checkpoint", self.checkpoint_id);
        if self.job_id.is_empty() {
            return Err(ctx(Error::corrupted("_metadata has an empty job id")));
        }
        let mut uids = std::collections::BTreeSet::new();
        // The running sum of every stream size, in the order `state_size` adds them.
        let mut total = 0u64;
        for op in &self.operators {
            let op_ctx = |e: Error| ctx(e.with_context("operator", &op.uid));
            if !uids.insert(op.uid.as_str()) {
                return Err(op_ctx(Error::corrupted("duplicate operator uid")));
            }
            if op.parallelism == 0 || op.max_parallelism == 0 || op.parallelism > op.max_parallelism
            {
                return Err(op_ctx(
                    Error::corrupted("operator parallelism must be in 1..=max_parallelism")
                        .with_context("parallelism", op.parallelism)
                        .with_context("max_parallelism", op.max_parallelism),
                ));
            }
            for (&index, subtask) in &op.subtasks {
                for stream in subtask.streams() {
                    total = total.checked_add(stream.size()).ok_or_else(|| {
                        op_ctx(
                            Error::corrupted("state sizes overflow u64 when summed")
                                .with_context("subtask", index)
                                .with_context("sum", total)
                                .with_context("size", stream.size()),
                        )
                    })?;
                }
                if index >= op.parallelism {
                    return Err(op_ctx(
                        Error::corrupted("subtask index not below the parallelism")
                            .with_context("subtask", index)
                            .with_context("parallelism", op.parallelism),
                    ));
                }
                for keyed in &subtask.keyed {
                    let range = keyed.key_group_range().iter();
                    if range.start > range.end || range.end > op.max_parallelism {
                        return Err(op_ctx(
                            Error::corrupted("key-group range outside max parallelism")
                                .with_context("subtask", index)
                                .with_context("range", format!("{}..{}", range.start, range.end))
                                .with_context("max_parallelism", op.max_parallelism),
                        ));
                    }
                    if let KeyedStateHandle::KeyGroups(h) = keyed {
                        let len = (range.end - range.start) as usize;
                        let size = h.stream.size();
                        if h.offsets.len() != len
                            || h.offsets.windows(2).any(|w| w[0] > w[1])
                            || h.offsets.last().is_some_and(|&o| o > size)
                        {
                            return Err(op_ctx(
                                Error::corrupted(
                                    "key-group offsets do not match the range and stream",
                                )
                                .with_context("subtask", index)
                                .with_context("offsets", h.offsets.len())
                                .with_context("key_groups", len),
                            ));
                        }
                    }
                }
                for handle in &subtask.operator {
                    let size = handle.stream.size();
                    for (name, meta) in &handle.states {
                        if meta.offsets.iter().any(|&o| o > size) {
                            return Err(op_ctx(
                                Error::corrupted("operator state offset beyond the stream")
                                    .with_context("subtask", index)
                                    .with_context("state", name),
                            ));
                        }
                    }
                }
                for stream in subtask.streams() {
                    if let Some(file) = stream.file() {
                        self.validate_file(file)
                            .map_err(|e| op_ctx(e.with_context("subtask", index)))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_file(&self, file: &FileStateHandle) -> Result<()> {
        if !layout::is_safe_relative(&file.path) {
            return Err(
                Error::corrupted("state file path is not a safe relative path")
                    .with_context("path", format!("{:?}", file.path)),
            );
        }
        if self.kind == SnapshotKind::Checkpoint {
            let ok = matches!(
                (file.scope, layout::classify_job_path(&file.path)),
                (StateScope::Exclusive, layout::JobPath::Checkpoint(_))
                    | (StateScope::Shared, layout::JobPath::Shared)
                    | (StateScope::TaskOwned, layout::JobPath::TaskOwned)
            );
            if !ok {
                return Err(Error::corrupted("state file path does not match its scope")
                    .with_context("path", &file.path)
                    .with_context("scope", format!("{:?}", file.scope)));
            }
        }
        Ok(())
    }
}
