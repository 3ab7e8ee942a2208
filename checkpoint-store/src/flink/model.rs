//! The decoded content of a Flink `_metadata` file: plain values that mirror Flink's classes
//! (`CheckpointMetadata`, `OperatorState`, `OperatorSubtaskState` and the state handles),
//! serializable to JSON.
//!
//! JSON conventions: handle enums are internally tagged with `"type"` set to the name of
//! Flink's type code constant in `MetadataV2V3SerializerBase` (such as
//! `"KEY_GROUPS_HANDLE_V2"`); inline bytes are `{"len": n, "hex": "..."}`; numbers that Flink
//! writes as Java `long`s without constraining them stay signed.

use serde::{Serialize, Serializer};

use super::channel::{InputStateHandle, OutputStateHandle};

/// Bytes stored inline in `_metadata` (the data of a `BYTE_STREAM_STATE_HANDLE`, a master
/// state's payload, a changelog change). Serialized as `{"len": n, "hex": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InlineBytes(pub Vec<u8>);

impl InlineBytes {
    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl Serialize for InlineBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View {
            len: usize,
            hex: String,
        }
        View {
            len: self.len(),
            hex: self.to_hex(),
        }
        .serialize(s)
    }
}

/// A decoded Flink `_metadata` file (Flink's `CheckpointMetadata`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlinkMetadata {
    /// The format version (3 to 7), written after the magic number.
    pub version: u32,
    /// The checkpoint (or savepoint) id.
    pub checkpoint_id: u64,
    /// The master (coordinator-side) states, in file order.
    pub master_states: Vec<MasterState>,
    /// The operators, in file order.
    pub operators: Vec<OperatorState>,
    /// Versions 4 and later: the Java-serialized `CheckpointProperties` after the body, kept
    /// raw (not deserialized).
    pub properties: Option<JavaSerialized>,
    /// Version 3: the number of bytes after the body, which Flink's reader ignores (0 for a
    /// file Flink wrote). Always 0 for later versions, whose properties run to the end.
    pub trailing_bytes: u64,
}

/// Java-serialized bytes (`ObjectOutputStream`), kept raw: this crate does not implement Java
/// deserialization. The bytes are not part of the JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JavaSerialized {
    /// Where the bytes start in the file.
    pub offset: u64,
    /// How many bytes there are (up to the end of the file).
    pub len: u64,
    /// The bytes, starting with the stream header `ac ed 00 05`.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// A master state (Flink's `MasterState`): a named, versioned payload of a master hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterState {
    /// The hook's name.
    pub name: String,
    /// The version of the payload's serializer.
    pub version: i32,
    /// The payload.
    pub bytes: InlineBytes,
}

/// The state of one operator (Flink's `OperatorState`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorState {
    /// The operator id: 32 lowercase hex digits of the 16 bytes as written (the lower part of
    /// Flink's `OperatorID`, then the upper part), which is what `OperatorID.toHexString()`
    /// prints.
    pub operator_id: String,
    /// Version 5 and later: the operator's name, when Flink recorded one.
    pub name: Option<String>,
    /// Version 5 and later: the operator's uid, when Flink recorded one.
    pub uid: Option<String>,
    /// The parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// The max parallelism (the number of key groups).
    pub max_parallelism: u32,
    /// The operator coordinator's state, always inline (`BYTE_STREAM_STATE_HANDLE`).
    pub coordinator_state: Option<StreamStateHandle>,
    /// Whether every subtask had finished (Flink's `FullyFinishedOperatorState`): then there
    /// are no subtask entries.
    pub fully_finished: bool,
    /// The subtask entries, in file order (indices are unique and below the parallelism).
    pub subtasks: Vec<SubtaskState>,
}

/// The state of one subtask (Flink's `OperatorSubtaskState`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubtaskState {
    /// The subtask index.
    pub index: u32,
    /// Whether the subtask had finished (Flink's `FinishedOperatorSubtaskState`): then it has
    /// no state handles.
    pub finished: bool,
    /// Managed operator state. (The handles are boxed to keep a subtask entry small: a
    /// finished subtask takes 4 bytes of input.)
    pub managed_operator_state: Option<Box<OperatorStateHandle>>,
    /// Raw operator state.
    pub raw_operator_state: Option<Box<OperatorStateHandle>>,
    /// Managed keyed state.
    pub managed_keyed_state: Option<Box<KeyedStateHandle>>,
    /// Raw keyed state.
    pub raw_keyed_state: Option<Box<KeyedStateHandle>>,
    /// Input channel state of an unaligned checkpoint.
    pub input_channel_state: Vec<InputStateHandle>,
    /// Result subpartition (output) state of an unaligned checkpoint.
    pub result_subpartition_state: Vec<OutputStateHandle>,
    /// Version 7: the id of the (regional) checkpoint whose state this subtask reuses.
    pub ref_checkpoint_id: Option<i64>,
}

impl SubtaskState {
    /// A subtask entry without state.
    pub(crate) fn empty(index: u32, finished: bool) -> Self {
        SubtaskState {
            index,
            finished,
            managed_operator_state: None,
            raw_operator_state: None,
            managed_keyed_state: None,
            raw_keyed_state: None,
            input_channel_state: Vec::new(),
            result_subpartition_state: Vec::new(),
            ref_checkpoint_id: None,
        }
    }
}

/// A contiguous range of key groups (Flink's `KeyGroupRange`), as written: the first key
/// group and the number of key groups (0: the empty range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeyGroupRange {
    /// The first key group.
    pub start: u32,
    /// The number of key groups.
    pub count: u32,
}

impl KeyGroupRange {
    /// The last key group, or `None` for the empty range.
    pub fn end_inclusive(&self) -> Option<u32> {
        self.count
            .checked_sub(1)
            .and_then(|n| self.start.checked_add(n))
    }
}

/// The scope of a file-merging segment (Flink's `CheckpointedStateScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SegmentScope {
    /// Owned by one checkpoint (ordinal 0).
    Exclusive,
    /// Possibly shared by several checkpoints (ordinal 1).
    Shared,
}

/// A stream of state bytes (Flink's `StreamStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum StreamStateHandle {
    /// Code 1: the bytes are inline in `_metadata` (Flink's `ByteStreamStateHandle`).
    #[serde(rename = "BYTE_STREAM_STATE_HANDLE")]
    ByteStream {
        /// The handle's name (for checkpoint data: the URI the bytes would have had as a file).
        name: String,
        /// The bytes.
        data: InlineBytes,
    },
    /// Code 2: a file at an absolute path (Flink's `FileStateHandle`).
    #[serde(rename = "FILE_STREAM_STATE_HANDLE")]
    File {
        /// The path (a URI such as `file:/...` or `s3://...`), as written.
        path: String,
        /// The size of the state in bytes.
        size: u64,
    },
    /// Code 3 in a stream position: key groups in a delegate stream (legacy
    /// `KeyGroupsStateHandle` used as a stream handle).
    #[serde(rename = "KEY_GROUPS_HANDLE")]
    KeyGroups(Box<KeyGroupsHandle>),
    /// Code 6: a file relative to the directory of `_metadata` (Flink's
    /// `RelativeFileStateHandle`).
    #[serde(rename = "RELATIVE_STREAM_STATE_HANDLE")]
    Relative {
        /// The path relative to the directory that holds `_metadata`.
        relative_path: String,
        /// The size of the state in bytes.
        size: u64,
    },
    /// Code 15: a segment of a merged physical file (Flink's `SegmentFileStateHandle`).
    #[serde(rename = "SEGMENT_FILE_HANDLE")]
    Segment {
        /// The physical file's path, as written.
        physical_path: String,
        /// Where the segment starts in the physical file.
        start_pos: u64,
        /// The segment's size in bytes.
        size: u64,
        /// The scope of the physical file.
        scope: SegmentScope,
        /// The id of the logical file.
        logical_file_id: String,
    },
    /// Code 16: the placeholder segment of file merging (Flink's
    /// `EmptySegmentFileStateHandle`): no file.
    #[serde(rename = "EMPTY_SEGMENT_FILE_HANDLE")]
    EmptySegment,
}

impl StreamStateHandle {
    /// Flink's type code of this handle.
    pub fn type_code(&self) -> u8 {
        match self {
            StreamStateHandle::ByteStream { .. } => 1,
            StreamStateHandle::File { .. } => 2,
            StreamStateHandle::KeyGroups(_) => 3,
            StreamStateHandle::Relative { .. } => 6,
            StreamStateHandle::Segment { .. } => 15,
            StreamStateHandle::EmptySegment => 16,
        }
    }

    /// The size of the state the handle records (for key groups, that of the delegate).
    pub fn state_size(&self) -> u64 {
        match self {
            StreamStateHandle::ByteStream { data, .. } => data.len() as u64,
            StreamStateHandle::File { size, .. }
            | StreamStateHandle::Relative { size, .. }
            | StreamStateHandle::Segment { size, .. } => *size,
            StreamStateHandle::KeyGroups(k) => k.stream.state_size(),
            StreamStateHandle::EmptySegment => 0,
        }
    }
}

/// Key groups and their offsets in a stream (Flink's `KeyGroupsStateHandle` and
/// `KeyGroupsSavepointStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyGroupsHandle {
    /// The key groups.
    pub key_groups: KeyGroupRange,
    /// The offset of each key group's data in the stream, one per key group.
    pub offsets: Vec<i64>,
    /// The stream.
    pub stream: StreamStateHandle,
    /// `KEY_GROUPS_HANDLE_V2` only: the state handle id (the other forms do not record one).
    pub state_handle_id: Option<String>,
}

/// A file of an incremental snapshot and its name in the backend's local directory (Flink's
/// `HandleAndLocalPath`; before Flink 1.18 the name was a `StateHandleID` in a map, written
/// the same way).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandleAndLocalPath {
    /// The local file name, such as `000042.sst`.
    pub local_path: String,
    /// Where the file is.
    pub handle: StreamStateHandle,
}

/// An incremental snapshot of a RocksDB (or ForSt) backend (Flink's
/// `IncrementalRemoteKeyedStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncrementalHandle {
    /// The checkpoint that produced the snapshot.
    pub checkpoint_id: i64,
    /// The backend's identifier as written (a UUID; Flink maps other strings, from before
    /// FLINK-6964, to a name-based UUID).
    pub backend_id: String,
    /// The key groups.
    pub key_groups: KeyGroupRange,
    /// `INCREMENTAL_KEY_GROUPS_HANDLE_V2` only: the checkpointed (incremental) size.
    pub checkpointed_size: Option<i64>,
    /// The backend's meta data stream.
    pub meta: StreamStateHandle,
    /// Files that later checkpoints may share (SST files).
    pub shared: Vec<HandleAndLocalPath>,
    /// Files owned by this snapshot (MANIFEST, OPTIONS, CURRENT).
    pub private: Vec<HandleAndLocalPath>,
    /// `INCREMENTAL_KEY_GROUPS_HANDLE_V2` only: the state handle id.
    pub state_handle_id: Option<String>,
}

/// A state change of a changelog increment kept inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// The key group (-1: a metadata change).
    pub key_group: i32,
    /// The change's bytes.
    pub data: InlineBytes,
}

/// A delegate stream of a changelog file increment and the offset in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffsetHandle {
    /// The offset in the stream.
    pub offset: i64,
    /// The stream.
    pub handle: StreamStateHandle,
}

/// The state of the changelog state backend (Flink's `ChangelogStateBackendHandle`): a
/// materialized part and the changes since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangelogHandle {
    /// The key groups.
    pub key_groups: KeyGroupRange,
    /// The checkpointed (incremental) size.
    pub checkpointed_size: i64,
    /// The materialized state (null entries, which Flink drops, are dropped).
    pub materialized: Vec<KeyedStateHandle>,
    /// The changes since materialization: changelog increment handles.
    pub non_materialized: Vec<KeyedStateHandle>,
    /// The materialization id.
    pub materialization_id: i64,
    /// `CHANGELOG_HANDLE_V2` only: the checkpoint id (Flink uses the materialization id for
    /// the first form).
    pub checkpoint_id: Option<i64>,
    /// The state handle id.
    pub state_handle_id: String,
}

/// Changelog changes kept inline (Flink's `InMemoryChangelogStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangelogBytesHandle {
    /// The key groups.
    pub key_groups: KeyGroupRange,
    /// The first sequence number.
    pub from: i64,
    /// The sequence number after the last change.
    pub to: i64,
    /// The changes.
    pub changes: Vec<StateChange>,
    /// The state handle id.
    pub state_handle_id: String,
}

/// Changelog changes in files (Flink's `ChangelogStateHandleStreamImpl`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangelogFileHandle {
    /// The key groups.
    pub key_groups: KeyGroupRange,
    /// The streams and the offsets of the changes in them.
    pub handles: Vec<OffsetHandle>,
    /// The state size.
    pub state_size: i64,
    /// The checkpointed (incremental) size.
    pub checkpointed_size: i64,
    /// The state handle id.
    pub state_handle_id: String,
    /// `CHANGELOG_FILE_INCREMENT_HANDLE_V2` only: the changelog storage's identifier (Flink
    /// assumes `filesystem` for the first form).
    pub storage_identifier: Option<String>,
}

/// Keyed state of one subtask (Flink's `KeyedStateHandle`), one variant per type code.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum KeyedStateHandle {
    /// Code 3: key groups, no state handle id (Flink makes up a random one).
    #[serde(rename = "KEY_GROUPS_HANDLE")]
    KeyGroups(KeyGroupsHandle),
    /// Code 12: key groups with their state handle id.
    #[serde(rename = "KEY_GROUPS_HANDLE_V2")]
    KeyGroupsV2(KeyGroupsHandle),
    /// Code 7: key groups of a savepoint in Flink's canonical format.
    #[serde(rename = "SAVEPOINT_KEY_GROUPS_HANDLE")]
    SavepointKeyGroups(KeyGroupsHandle),
    /// Code 5: an incremental snapshot without checkpointed size and state handle id.
    #[serde(rename = "INCREMENTAL_KEY_GROUPS_HANDLE")]
    Incremental(IncrementalHandle),
    /// Code 11: an incremental snapshot with checkpointed size and state handle id.
    #[serde(rename = "INCREMENTAL_KEY_GROUPS_HANDLE_V2")]
    IncrementalV2(IncrementalHandle),
    /// Code 8: changelog backend state without checkpoint id.
    #[serde(rename = "CHANGELOG_HANDLE")]
    Changelog(ChangelogHandle),
    /// Code 14: changelog backend state with checkpoint id.
    #[serde(rename = "CHANGELOG_HANDLE_V2")]
    ChangelogV2(ChangelogHandle),
    /// Code 9: inline changelog changes.
    #[serde(rename = "CHANGELOG_BYTE_INCREMENT_HANDLE")]
    ChangelogByteIncrement(ChangelogBytesHandle),
    /// Code 10: changelog changes in files, without storage identifier.
    #[serde(rename = "CHANGELOG_FILE_INCREMENT_HANDLE")]
    ChangelogFileIncrement(ChangelogFileHandle),
    /// Code 13: changelog changes in files, with storage identifier.
    #[serde(rename = "CHANGELOG_FILE_INCREMENT_HANDLE_V2")]
    ChangelogFileIncrementV2(ChangelogFileHandle),
}

impl KeyedStateHandle {
    /// Flink's type code of this handle.
    pub fn type_code(&self) -> u8 {
        match self {
            KeyedStateHandle::KeyGroups(_) => 3,
            KeyedStateHandle::Incremental(_) => 5,
            KeyedStateHandle::SavepointKeyGroups(_) => 7,
            KeyedStateHandle::Changelog(_) => 8,
            KeyedStateHandle::ChangelogByteIncrement(_) => 9,
            KeyedStateHandle::ChangelogFileIncrement(_) => 10,
            KeyedStateHandle::IncrementalV2(_) => 11,
            KeyedStateHandle::KeyGroupsV2(_) => 12,
            KeyedStateHandle::ChangelogFileIncrementV2(_) => 13,
            KeyedStateHandle::ChangelogV2(_) => 14,
        }
    }

    /// The name of Flink's constant for the type code.
    pub fn type_name(&self) -> &'static str {
        super::type_code_name(self.type_code()).unwrap_or("?")
    }

    /// The key groups the handle covers.
    pub fn key_groups(&self) -> KeyGroupRange {
        match self {
            KeyedStateHandle::KeyGroups(h)
            | KeyedStateHandle::KeyGroupsV2(h)
            | KeyedStateHandle::SavepointKeyGroups(h) => h.key_groups,
            KeyedStateHandle::Incremental(h) | KeyedStateHandle::IncrementalV2(h) => h.key_groups,
            KeyedStateHandle::Changelog(h) | KeyedStateHandle::ChangelogV2(h) => h.key_groups,
            KeyedStateHandle::ChangelogByteIncrement(h) => h.key_groups,
            KeyedStateHandle::ChangelogFileIncrement(h)
            | KeyedStateHandle::ChangelogFileIncrementV2(h) => h.key_groups,
        }
    }
}

/// How operator state is redistributed on restore (Flink's `OperatorStateHandle.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DistributionMode {
    /// Ordinal 0: the partitions are split among the subtasks.
    SplitDistribute,
    /// Ordinal 1: every subtask gets the union of all partitions.
    Union,
    /// Ordinal 2: the state is identical on every subtask.
    Broadcast,
}

/// One named operator state in an operator state handle (Flink's `StateMetaInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedOperatorState {
    /// The state's name.
    pub name: String,
    /// How the state is redistributed.
    pub mode: DistributionMode,
    /// The offsets of its partitions in the stream.
    pub offsets: Vec<i64>,
}

/// Operator state of one subtask, one variant per type code.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum OperatorStateHandle {
    /// Code 4: Flink's `OperatorStreamStateHandle`.
    #[serde(rename = "PARTITIONABLE_OPERATOR_STATE_HANDLE")]
    Partitionable {
        /// The named states, in file order (names are unique).
        states: Vec<NamedOperatorState>,
        /// The stream that holds them.
        stream: StreamStateHandle,
    },
    /// Code 17: Flink's `FileMergingOperatorStreamStateHandle` (or the empty one).
    #[serde(rename = "SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE")]
    FileMerging {
        /// The named states, in file order (names are unique).
        states: Vec<NamedOperatorState>,
        /// The task-owned directory of file merging.
        task_owned_dir: String,
        /// The shared directory of file merging.
        shared_dir: String,
        /// Whether this is Flink's `EmptyFileMergingOperatorStreamStateHandle`.
        empty: bool,
        /// The segment that holds them (`SEGMENT_FILE_HANDLE` or `EMPTY_SEGMENT_FILE_HANDLE`).
        stream: StreamStateHandle,
    },
}

impl OperatorStateHandle {
    /// Flink's type code of this handle.
    pub fn type_code(&self) -> u8 {
        match self {
            OperatorStateHandle::Partitionable { .. } => 4,
            OperatorStateHandle::FileMerging { .. } => 17,
        }
    }

    /// The named states.
    pub fn states(&self) -> &[NamedOperatorState] {
        match self {
            OperatorStateHandle::Partitionable { states, .. }
            | OperatorStateHandle::FileMerging { states, .. } => states,
        }
    }

    /// The stream that holds the states.
    pub fn stream(&self) -> &StreamStateHandle {
        match self {
            OperatorStateHandle::Partitionable { stream, .. }
            | OperatorStateHandle::FileMerging { stream, .. } => stream,
        }
    }
}
