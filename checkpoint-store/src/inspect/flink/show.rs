//! [`flink_show`]: what a Flink checkpoint or savepoint holds, operator by operator.

use cornerstone_backend_api::Result;
use serde::Serialize;

use super::walk::{inline_bytes, keyed_streams, operator_size, subtask_size};
use super::{FlinkFile, FlinkKind, FlinkPaths, Loaded, ResolvedPath, load, properties_kind};
use crate::flink::{
    DistributionMode, HandleAndLocalPath, KeyedStateHandle, OperatorState, OperatorStateHandle,
    StreamStateHandle, SubtaskState,
};
use crate::layout;
use crate::store::CheckpointStore;

/// One stream of a handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkStream {
    /// Flink's type code name (`BYTE_STREAM_STATE_HANDLE`, `FILE_STREAM_STATE_HANDLE`,
    /// `RELATIVE_STREAM_STATE_HANDLE`, `SEGMENT_FILE_HANDLE`, ...).
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// Whether the bytes are inline in `_metadata`.
    pub inline: bool,
    /// The size the handle records.
    pub size_bytes: u64,
    /// A file's path in the store (or its URI, outside the store).
    pub path: Option<String>,
    /// A file's path as `_metadata` holds it.
    pub written: Option<String>,
    /// A segment of a merged file: where it starts.
    pub offset: Option<u64>,
}

/// A file of an incremental snapshot and its name in the backend's local directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkLocalFile {
    /// The local name (`000042.sst`, `MANIFEST-000005`).
    pub local_path: String,
    /// Where it is.
    pub stream: FlinkStream,
}

/// What an incremental (RocksDB, ForSt) handle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkIncremental {
    /// The checkpoint that produced the snapshot.
    pub checkpoint_id: i64,
    /// The backend's id.
    pub backend_id: String,
    /// The checkpointed (incremental) size, when recorded.
    pub checkpointed_size_bytes: Option<i64>,
    /// The backend's meta data stream.
    pub meta: FlinkStream,
    /// The shared files (SSTs that later checkpoints may reuse).
    pub shared: Vec<FlinkLocalFile>,
    /// The private files (MANIFEST, OPTIONS, CURRENT).
    pub private: Vec<FlinkLocalFile>,
}

/// One keyed handle of a subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkKeyedHandle {
    /// `"managed"` or `"raw"`.
    pub state: &'static str,
    /// Flink's type code name.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// The key groups, inclusive (`None`: the empty range).
    pub key_groups: Option<(u32, u32)>,
    /// The size its streams record.
    pub state_size_bytes: u64,
    /// Its streams (for an incremental handle, see [`incremental`](Self::incremental)).
    pub streams: Vec<FlinkStream>,
    /// An incremental handle's files.
    pub incremental: Option<FlinkIncremental>,
}

/// One named operator state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkNamedState {
    /// The state's name.
    pub name: String,
    /// How it is redistributed (`SPLIT_DISTRIBUTE`, `UNION`, `BROADCAST`).
    pub mode: DistributionMode,
    /// How many partitions it has in this subtask.
    pub partitions: usize,
}

/// One operator state handle of a subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkOperatorHandle {
    /// `"managed"` or `"raw"`.
    pub state: &'static str,
    /// Flink's type code name.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// The named states.
    pub states: Vec<FlinkNamedState>,
    /// The stream that holds them.
    pub stream: FlinkStream,
}

/// One subtask of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkSubtask {
    /// The subtask index.
    pub index: u32,
    /// Whether the subtask had finished.
    pub finished: bool,
    /// Keyed state handles (managed, then raw).
    pub keyed: Vec<FlinkKeyedHandle>,
    /// Operator state handles (managed, then raw).
    pub operator: Vec<FlinkOperatorHandle>,
    /// Unaligned checkpoints: how many input and output channel state handles.
    pub channel_state_handles: usize,
    /// Version 7: the checkpoint whose state the subtask reuses.
    pub ref_checkpoint_id: Option<i64>,
    /// The size its handles record.
    pub state_size_bytes: u64,
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkOperator {
    /// The operator id (32 hex digits, as `OperatorID.toHexString()` prints it).
    pub operator_id: String,
    /// Version 5 and later: its name, when recorded.
    pub name: Option<String>,
    /// Version 5 and later: its uid, when recorded.
    pub uid: Option<String>,
    /// Parallelism.
    pub parallelism: u32,
    /// Max parallelism (the number of key groups).
    pub max_parallelism: u32,
    /// Whether every subtask had finished.
    pub fully_finished: bool,
    /// The coordinator's state size (inline), if it has one.
    pub coordinator_state_bytes: Option<u64>,
    /// The subtasks, by index.
    pub subtasks: Vec<FlinkSubtask>,
    /// Its state size (coordinator included).
    pub state_size_bytes: u64,
}

/// A master state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkMasterState {
    /// The hook's name.
    pub name: String,
    /// The payload's serializer version.
    pub version: i32,
    /// The payload's size.
    pub size_bytes: u64,
}

/// What [`flink_show`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkDetails {
    /// The `_metadata` shown.
    pub metadata_path: String,
    /// Its directory.
    pub dir: String,
    /// Its size.
    pub metadata_size_bytes: u64,
    /// The checkpoint id.
    pub checkpoint_id: u64,
    /// The format version.
    pub version: u32,
    /// Checkpoint or savepoint (from the properties, else the directory's name).
    pub kind: FlinkKind,
    /// A savepoint's format from its properties: `CANONICAL` or `NATIVE`.
    pub savepoint_format: Option<String>,
    /// The master states.
    pub master_states: Vec<FlinkMasterState>,
    /// The operators, by operator id.
    pub operators: Vec<FlinkOperator>,
    /// Every referenced file, by path.
    pub files: Vec<FlinkFile>,
    /// The bytes inline in the handles.
    pub inline_bytes: u64,
    /// The referenced file sizes (as recorded) plus the inline bytes.
    pub state_size_bytes: u64,
}

struct Ctx<'a> {
    dir: &'a str,
    paths: &'a FlinkPaths,
}

impl Ctx<'_> {
    fn file(&self, resolved: ResolvedPath, written: &str) -> (Option<String>, Option<String>) {
        (Some(resolved.as_str().to_owned()), Some(written.to_owned()))
    }

    fn stream(&self, s: &StreamStateHandle) -> FlinkStream {
        let mut out = FlinkStream {
            type_name: s.type_name(),
            inline: false,
            size_bytes: s.state_size(),
            path: None,
            written: None,
            offset: None,
        };
        match s {
            StreamStateHandle::ByteStream { .. } => out.inline = true,
            StreamStateHandle::File { path, .. } => {
                (out.path, out.written) = self.file(self.paths.resolve(path), path);
            }
            StreamStateHandle::Relative { relative_path, .. } => {
                // `load` checked that relative paths stay inside the directory.
                let joined = ResolvedPath::InStore(layout::join(self.dir, relative_path));
                (out.path, out.written) = self.file(joined, relative_path);
            }
            StreamStateHandle::Segment {
                physical_path,
                start_pos,
                ..
            } => {
                (out.path, out.written) =
                    self.file(self.paths.resolve(physical_path), physical_path);
                out.offset = Some(*start_pos);
            }
            StreamStateHandle::KeyGroups(k) => {
                let inner = self.stream(&k.stream);
                out = FlinkStream {
                    type_name: out.type_name,
                    ..inner
                };
            }
            StreamStateHandle::EmptySegment => {}
        }
        out
    }

    fn local(&self, files: &[HandleAndLocalPath]) -> Vec<FlinkLocalFile> {
        files
            .iter()
            .map(|f| FlinkLocalFile {
                local_path: f.local_path.clone(),
                stream: self.stream(&f.handle),
            })
            .collect()
    }

    fn keyed(&self, state: &'static str, h: &KeyedStateHandle) -> FlinkKeyedHandle {
        let kg = h.key_groups();
        let mut size = super::walk::inline_changes(h);
        keyed_streams(h, &mut |s| size = size.saturating_add(s.state_size()));
        let incremental = match h {
            KeyedStateHandle::Incremental(i) | KeyedStateHandle::IncrementalV2(i) => {
                Some(FlinkIncremental {
                    checkpoint_id: i.checkpoint_id,
                    backend_id: i.backend_id.clone(),
                    checkpointed_size_bytes: i.checkpointed_size,
                    meta: self.stream(&i.meta),
                    shared: self.local(&i.shared),
                    private: self.local(&i.private),
                })
            }
            _ => None,
        };
        let mut streams = Vec::new();
        if incremental.is_none() {
            keyed_streams(h, &mut |s| streams.push(self.stream(s)));
        }
        FlinkKeyedHandle {
            state,
            type_name: h.type_name(),
            key_groups: kg.end_inclusive().map(|end| (kg.start, end)),
            state_size_bytes: size,
            streams,
            incremental,
        }
    }

    fn operator_handle(&self, state: &'static str, h: &OperatorStateHandle) -> FlinkOperatorHandle {
        FlinkOperatorHandle {
            state,
            type_name: h.type_name(),
            states: h
                .states()
                .iter()
                .map(|s| FlinkNamedState {
                    name: s.name.clone(),
                    mode: s.mode,
                    partitions: s.offsets.len(),
                })
                .collect(),
            stream: self.stream(h.stream()),
        }
    }

    fn subtask(&self, st: &SubtaskState) -> FlinkSubtask {
        let keyed = [
            ("managed", &st.managed_keyed_state),
            ("raw", &st.raw_keyed_state),
        ]
        .into_iter()
        .filter_map(|(which, h)| h.as_deref().map(|h| self.keyed(which, h)))
        .collect();
        let operator = [
            ("managed", &st.managed_operator_state),
            ("raw", &st.raw_operator_state),
        ]
        .into_iter()
        .filter_map(|(which, h)| h.as_deref().map(|h| self.operator_handle(which, h)))
        .collect();
        FlinkSubtask {
            index: st.index,
            finished: st.finished,
            keyed,
            operator,
            channel_state_handles: st.input_channel_state.len()
                + st.result_subpartition_state.len(),
            ref_checkpoint_id: st.ref_checkpoint_id,
            state_size_bytes: subtask_size(st),
        }
    }

    fn operator(&self, op: &OperatorState) -> FlinkOperator {
        let mut subtasks: Vec<FlinkSubtask> = op.subtasks.iter().map(|s| self.subtask(s)).collect();
        subtasks.sort_by_key(|s| s.index);
        FlinkOperator {
            operator_id: op.operator_id.clone(),
            name: op.name.clone(),
            uid: op.uid.clone(),
            parallelism: op.parallelism,
            max_parallelism: op.max_parallelism,
            fully_finished: op.fully_finished,
            coordinator_state_bytes: op
                .coordinator_state
                .as_ref()
                .map(StreamStateHandle::state_size),
            subtasks,
            state_size_bytes: operator_size(op),
        }
    }
}

/// Shows a Flink checkpoint or savepoint: a `_metadata` file, a `chk-N/` or savepoint
/// directory, or a job directory (its newest `chk-N/` with a `_metadata`). Operators are
/// sorted by operator id, subtasks by index, files by path.
///
/// # Errors
/// [`ErrorKind::NotFound`](cornerstone_backend_api::ErrorKind::NotFound) when there is no
/// `_metadata`; decoding errors naming the file; storage errors.
pub fn flink_show(store: &CheckpointStore, path: &str, paths: &FlinkPaths) -> Result<FlinkDetails> {
    let meta = super::resolve_one(store, path)?;
    let loaded = load(store, &meta, paths)?;
    Ok(details(&loaded, paths))
}

fn details(l: &Loaded, paths: &FlinkPaths) -> FlinkDetails {
    let m = &l.metadata;
    let ctx = Ctx { dir: &l.dir, paths };
    let mut operators: Vec<FlinkOperator> = m.operators.iter().map(|op| ctx.operator(op)).collect();
    operators.sort_by(|a, b| a.operator_id.cmp(&b.operator_id));
    let (kind, savepoint_format) = properties_kind(m);
    let inline = inline_bytes(m);
    FlinkDetails {
        metadata_path: l.metadata_path.clone(),
        dir: l.dir.clone(),
        metadata_size_bytes: l.size,
        checkpoint_id: m.checkpoint_id,
        version: m.version,
        kind: kind.unwrap_or_else(|| FlinkKind::of_dir(&l.dir)),
        savepoint_format,
        master_states: m
            .master_states
            .iter()
            .map(|s| FlinkMasterState {
                name: s.name.clone(),
                version: s.version,
                size_bytes: s.bytes.len() as u64,
            })
            .collect(),
        operators,
        files: l.files.clone(),
        inline_bytes: inline,
        state_size_bytes: l.file_bytes().saturating_add(inline),
    }
}
