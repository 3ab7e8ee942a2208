//! State handles: plain data that describes where a snapshot's bytes are. They go into
//! `_metadata`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keygroup::KeyGroupRange;

/// The id of a checkpoint: numbers increase, and ids sort numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who owns a file that a snapshot writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateScope {
    /// `chk-N/`: this checkpoint alone.
    Exclusive,
    /// `shared/`: several checkpoints (incremental SSTs).
    Shared,
    /// `taskowned/`: the task; the store never deletes it.
    TaskOwned,
}

/// A file written by a checkpoint stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileStateHandle {
    /// Path relative to the job (or savepoint) directory, e.g. `chk-3/6f1c…`.
    pub path: String,
    /// Who owns the file.
    pub scope: StateScope,
    /// Length in bytes.
    pub size: u64,
    /// CRC32 (IEEE) of the whole file.
    pub crc32: u32,
}

impl FileStateHandle {
    /// Compares what was found of the file (its length and CRC32) with the handle: the one
    /// check of a file's content, used by restores (as the bytes stream past) and by
    /// `verify`.
    ///
    /// # Errors
    /// A [`ContentMismatch`] saying which differs; [`ContentMismatch::into_error`] turns it
    /// into a [`Corrupted`](crate::ErrorKind::Corrupted) error naming the path.
    pub fn check_content(&self, size: u64, crc32: u32) -> Result<(), ContentMismatch> {
        if size != self.size {
            Err(ContentMismatch::Size {
                expected: self.size,
                actual: size,
            })
        } else if crc32 != self.crc32 {
            Err(ContentMismatch::Crc32 {
                expected: self.crc32,
                actual: crc32,
            })
        } else {
            Ok(())
        }
    }
}

/// How a file differs from its [`FileStateHandle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMismatch {
    /// The file has another length than recorded.
    Size {
        /// The recorded length in bytes.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// The file has the recorded length but another CRC32.
    Crc32 {
        /// The recorded CRC32.
        expected: u32,
        /// The CRC32 found.
        actual: u32,
    },
}

impl ContentMismatch {
    /// A [`Corrupted`](crate::ErrorKind::Corrupted) error naming `path` and both values.
    pub fn into_error(self, path: &str) -> crate::Error {
        let e = match self {
            ContentMismatch::Size { .. } => {
                crate::Error::corrupted("state file has the wrong size")
            }
            ContentMismatch::Crc32 { .. } => {
                crate::Error::corrupted("state file checksum mismatch")
            }
        };
        let e = e.with_context("path", path);
        match self {
            ContentMismatch::Size { expected, actual } => e
                .with_context("expected", expected)
                .with_context("actual", actual),
            ContentMismatch::Crc32 { expected, actual } => e
                .with_context("expected_crc32", format!("{expected:08x}"))
                .with_context("actual_crc32", format!("{actual:08x}")),
        }
    }
}

impl std::fmt::Display for ContentMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentMismatch::Size { expected, actual } => {
                write!(f, "expected {expected} bytes, found {actual}")
            }
            ContentMismatch::Crc32 { expected, actual } => {
                write!(f, "expected crc32 {expected:08x}, found {actual:08x}")
            }
        }
    }
}

/// Where a stream of snapshot bytes is: inline in `_metadata`, or in a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamStateHandle {
    /// Small streams, kept in `_metadata` itself.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A file in checkpoint storage.
    File(FileStateHandle),
}

impl StreamStateHandle {
    /// The length of the stream in bytes.
    pub fn size(&self) -> u64 {
        match self {
            StreamStateHandle::Inline(bytes) => bytes.len() as u64,
            StreamStateHandle::File(file) => file.size,
        }
    }

    /// The file, if the stream is not inline.
    pub fn file(&self) -> Option<&FileStateHandle> {
        match self {
            StreamStateHandle::Inline(_) => None,
            StreamStateHandle::File(file) => Some(file),
        }
    }
}

/// A keyed-state stream partitioned by key group: an offset for every key group of `range`,
/// so that a restore reads only the key groups it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupsStateHandle {
    /// The key groups the stream holds.
    pub range: KeyGroupRange,
    /// `offsets[i]` is where key group `range.first() + i` starts; a key group whose offset
    /// equals the next one (or the stream's end) is empty.
    pub offsets: Vec<u64>,
    /// The stream.
    pub stream: StreamStateHandle,
}

/// A file of an incremental snapshot, with the name the backend gives it locally.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamedStateFile {
    /// The backend's local name, e.g. `000042.sst`.
    pub local_name: String,
    /// Where it is stored.
    pub handle: StreamStateHandle,
}

/// An incremental snapshot of a native engine (RocksDB): shared files reused across
/// checkpoints, and private files of this checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IncrementalStateHandle {
    /// The key groups the snapshot holds.
    pub range: KeyGroupRange,
    /// The checkpoint that wrote this handle.
    pub checkpoint_id: CheckpointId,
    /// A stable id of the backend instance, so shared files are only reused by the writer.
    pub backend_id: String,
    /// Files in `shared/` (immutable SSTs), some uploaded by earlier checkpoints.
    pub shared: Vec<NamedStateFile>,
    /// Files of this checkpoint only (MANIFEST, CURRENT, OPTIONS).
    pub private: Vec<NamedStateFile>,
    /// The backend's state metadata stream.
    pub meta: StreamStateHandle,
}

/// The streams one checkpoint wrote into a changelog chain: a full snapshot (the chain's
/// base) or the changes since the checkpoint before (a delta), key-group indexed, in
/// `shared/`, as parts of contiguous key groups written in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChangelogSegment {
    /// The checkpoint that wrote it.
    pub checkpoint_id: CheckpointId,
    /// Its streams (`CSKG`: full snapshots for a base, delta streams for a delta), with
    /// disjoint key-group ranges.
    pub parts: Vec<KeyGroupsStateHandle>,
}

impl ChangelogSegment {
    /// The bytes of its streams.
    pub fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.stream.size()).sum()
    }
}

/// A changelog (incremental) snapshot of a heap backend: the latest materialized full
/// snapshot and the deltas written since, oldest first. A restore reads the base and
/// applies the deltas in order; each checkpoint uploads only its own delta and references
/// the files of the checkpoints before, which stay alive while a retained checkpoint
/// references them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChangelogStateHandle {
    /// The key groups the snapshot holds.
    pub range: KeyGroupRange,
    /// The full snapshot the chain starts from.
    pub base: ChangelogSegment,
    /// The changes since, one segment per checkpoint, oldest first.
    pub deltas: Vec<ChangelogSegment>,
}

impl ChangelogStateHandle {
    /// The base, then the deltas, in the order a restore applies them.
    pub fn segments(&self) -> impl Iterator<Item = &ChangelogSegment> {
        std::iter::once(&self.base).chain(&self.deltas)
    }

    /// The segment this snapshot's checkpoint wrote: the last delta, or the base of a
    /// materialization.
    pub fn latest(&self) -> &ChangelogSegment {
        self.deltas.last().unwrap_or(&self.base)
    }
}

/// The keyed state of one subtask.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyedStateHandle {
    /// A full snapshot, indexed by key group.
    KeyGroups(KeyGroupsStateHandle),
    /// An incremental native snapshot.
    Incremental(IncrementalStateHandle),
    /// A changelog snapshot of a heap backend: a full snapshot and deltas.
    Changelog(ChangelogStateHandle),
}

impl KeyedStateHandle {
    /// The key groups the handle holds.
    pub fn key_group_range(&self) -> KeyGroupRange {
        match self {
            KeyedStateHandle::KeyGroups(h) => h.range,
            KeyedStateHandle::Incremental(h) => h.range,
            KeyedStateHandle::Changelog(h) => h.range,
        }
    }

    /// Every stream the handle references.
    pub fn streams(&self) -> Vec<&StreamStateHandle> {
        match self {
            KeyedStateHandle::KeyGroups(h) => vec![&h.stream],
            KeyedStateHandle::Incremental(h) => std::iter::once(&h.meta)
                .chain(h.shared.iter().map(|f| &f.handle))
                .chain(h.private.iter().map(|f| &f.handle))
                .collect(),
            KeyedStateHandle::Changelog(h) => h
                .segments()
                .flat_map(|s| s.parts.iter().map(|p| &p.stream))
                .collect(),
        }
    }
}

/// How an operator list state is redistributed when the parallelism changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Distribution {
    /// Elements of all subtasks are concatenated and split evenly (Flink's list state).
    Split,
    /// Every subtask gets every element (union list state).
    Union,
    /// Every subtask gets the same copy (broadcast state).
    Broadcast,
}

impl Distribution {
    /// The mode's lowercase name, as tools print it: `split`, `union`, `broadcast`.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Split => "split",
            Distribution::Union => "union",
            Distribution::Broadcast => "broadcast",
        }
    }
}

/// One named operator state inside an [`OperatorStateHandle`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OperatorStateMeta {
    /// How the state is redistributed.
    pub mode: Distribution,
    /// The element type (map entry type for broadcast state), checked on restore.
    pub element_type: String,
    /// The offset of every element in the stream.
    pub offsets: Vec<u64>,
}

/// The operator state of one subtask: a stream of length-prefixed elements and, per state
/// name, where its elements are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OperatorStateHandle {
    /// The states, by name.
    pub states: BTreeMap<String, OperatorStateMeta>,
    /// The stream.
    pub stream: StreamStateHandle,
}

/// Everything one subtask's backends wrote for one checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubtaskState {
    /// Keyed state handles (one per keyed backend snapshot).
    pub keyed: Vec<KeyedStateHandle>,
    /// Operator state handles.
    pub operator: Vec<OperatorStateHandle>,
}

impl SubtaskState {
    /// Adds the handles of `other`.
    pub fn merge(&mut self, other: SubtaskState) {
        self.keyed.extend(other.keyed);
        self.operator.extend(other.operator);
    }

    /// Whether no handle was written.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.operator.is_empty()
    }

    /// Every stream referenced by the handles.
    pub fn streams(&self) -> Vec<&StreamStateHandle> {
        self.keyed
            .iter()
            .flat_map(KeyedStateHandle::streams)
            .chain(self.operator.iter().map(|h| &h.stream))
            .collect()
    }

    /// The total size in bytes of the referenced streams, saturating at `u64::MAX`: sizes
    /// come from storage (`_metadata`), so their sum must not panic or wrap. (A decoded
    /// `_metadata` never saturates: its validation rejects sizes whose sum overflows.)
    pub fn state_size(&self) -> u64 {
        self.checked_state_size().unwrap_or(u64::MAX)
    }

    /// The total size in bytes of the referenced streams, or `None` when the sum overflows
    /// u64 (only handles crafted or corrupted in storage can do that).
    pub fn checked_state_size(&self) -> Option<u64> {
        self.streams()
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.size()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> OperatorStateHandle {
        OperatorStateHandle {
            states: BTreeMap::new(),
            stream: StreamStateHandle::File(FileStateHandle {
                path: path.to_owned(),
                scope: StateScope::Exclusive,
                size,
                crc32: 0,
            }),
        }
    }

    #[test]
    fn state_size_saturates_and_checked_state_size_reports_overflow() {
        let mut state = SubtaskState {
            keyed: vec![],
            operator: vec![
                file("chk-1/a", u64::MAX / 2 + 1),
                OperatorStateHandle {
                    states: BTreeMap::new(),
                    stream: StreamStateHandle::Inline(vec![0; 3]),
                },
            ],
        };
        assert_eq!(state.checked_state_size(), Some(u64::MAX / 2 + 4));
        assert_eq!(state.state_size(), u64::MAX / 2 + 4);
        state.operator.push(file("chk-1/b", u64::MAX / 2 + 1));
        assert_eq!(state.checked_state_size(), None);
        assert_eq!(state.state_size(), u64::MAX);
    }
}
