//! [`show`]: what a checkpoint or savepoint holds, operator by operator.

use std::collections::BTreeMap;

use cornerstone_backend_api::spi::format::{self, incremental};
use cornerstone_backend_api::spi::keyed_format::read_header;
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    ChangelogSegment, ChangelogStateHandle, CheckpointId, KeyedStateHandle, Result, StateMeta,
    StateScope, StreamStateHandle,
};

use crate::completed::CompletedCheckpoint;
use crate::layout;
use crate::metadata::CheckpointMetadata;
use crate::store::{CheckpointStore, StoreStateReader};

/// Where one stream of a handle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamLocation {
    /// Inline in `_metadata`, with its size.
    Inline {
        /// Bytes.
        size: u64,
    },
    /// A file.
    File {
        /// The path in the store.
        path: String,
        /// Who owns it.
        scope: StateScope,
        /// Bytes, as recorded in the handle.
        size: u64,
        /// The CRC32 recorded in the handle.
        crc32: u32,
    },
}

/// One state handle of a subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleSummary {
    /// `"keyed"`, `"incremental"`, `"changelog"` or `"operator"`.
    pub kind: &'static str,
    /// Of a changelog handle: its chain.
    pub chain: Option<ChainSummary>,
    /// The key groups of a keyed handle (inclusive), `None` for operator state or an
    /// empty range.
    pub key_groups: Option<(u32, u32)>,
    /// The operator-state names of an operator handle.
    pub state_names: Vec<String>,
    /// The streams it references.
    pub streams: Vec<StreamLocation>,
}

/// The chain of a changelog handle (a heap backend's incremental checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSummary {
    /// The checkpoint that wrote its full snapshot (the base).
    pub base_checkpoint: CheckpointId,
    /// The deltas after the base (0: this checkpoint wrote a full snapshot).
    pub deltas: usize,
    /// The bytes this checkpoint uploaded: its delta, or the base it materialized.
    pub uploaded_bytes: u64,
    /// The bytes of the whole chain, which a restore reads.
    pub chain_bytes: u64,
}

impl ChainSummary {
    /// The chain of `h`.
    pub fn of(h: &ChangelogStateHandle) -> Self {
        ChainSummary {
            base_checkpoint: h.base.checkpoint_id,
            deltas: h.deltas.len(),
            uploaded_bytes: h.latest().size(),
            chain_bytes: h.segments().map(ChangelogSegment::size).sum(),
        }
    }
}

/// One subtask of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtaskSummary {
    /// The subtask index.
    pub index: u32,
    /// Its handles.
    pub handles: Vec<HandleSummary>,
    /// Total referenced bytes.
    pub state_size: u64,
}

/// One state of an operator, as the snapshot's own headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    /// The state's name.
    pub name: String,
    /// Its kind: `value`, `list`, `map`, `reducing`, `aggregating`, `timers` (keyed), or
    /// `split`, `union`, `broadcast` (operator state).
    pub kind: String,
    /// The key type (keyed state).
    pub key_type: Option<String>,
    /// The namespace type (keyed state).
    pub namespace_type: Option<String>,
    /// The map key type (map state).
    pub user_key_type: Option<String>,
    /// The value type; the element type of list and operator state; `i64` (the timestamp)
    /// for timers.
    pub value_type: String,
    /// Whether it has a time-to-live.
    pub ttl: bool,
}

/// One operator of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSummary {
    /// Stable uid.
    pub uid: String,
    /// Name.
    pub name: String,
    /// Parallelism.
    pub parallelism: u32,
    /// Max parallelism (number of key groups).
    pub max_parallelism: u32,
    /// The subtasks that have state.
    pub subtasks: Vec<SubtaskSummary>,
    /// Its states by name, from the headers of its keyed snapshots (full and incremental)
    /// and its operator-state handles; a header that cannot be read adds none (`verify`
    /// says why).
    pub states: Vec<StateSummary>,
    /// Total referenced bytes.
    pub state_size: u64,
}

/// What [`show`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDetails {
    /// The decoded metadata and its location.
    pub snapshot: CompletedCheckpoint,
    /// The size of the `_metadata` file.
    pub metadata_size: u64,
    /// Per operator.
    pub operators: Vec<OperatorSummary>,
    /// Every referenced file (path in the store → size recorded in the handle).
    pub files: BTreeMap<String, u64>,
    /// Total referenced bytes (inline and files).
    pub state_size: u64,
}

fn locate(base: &str, s: &StreamStateHandle) -> StreamLocation {
    match s {
        StreamStateHandle::Inline(b) => StreamLocation::Inline {
            size: b.len() as u64,
        },
        StreamStateHandle::File(f) => StreamLocation::File {
            path: layout::join(base, &f.path),
            scope: f.scope,
            size: f.size,
            crc32: f.crc32,
        },
    }
}

/// The state names of a full keyed snapshot, from its stream's header (a small range read);
/// a header that cannot be read is named as such (`verify` says why).
fn keyed_state_names(reader: &StoreStateReader, handle: &KeyedStateHandle) -> Vec<String> {
    match handle {
        KeyedStateHandle::KeyGroups(h) => match read_header(h, Some(reader)) {
            Ok(header) => header.states.into_iter().map(|s| s.name).collect(),
            Err(e) => vec![format!("<header unreadable: {}>", e.kind())],
        },
        KeyedStateHandle::Incremental(_) => Vec::new(),
        // Every segment may name states the ones before it do not (registered since).
        KeyedStateHandle::Changelog(h) => {
            let mut names: Vec<String> = Vec::new();
            for part in h.segments().filter_map(|s| s.parts.first()) {
                let full = KeyedStateHandle::KeyGroups(part.clone());
                for name in keyed_state_names(reader, &full) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            names
        }
    }
}

/// The states an operator's handles describe, by name (each once: the first handle that
/// names a state describes it).
fn operator_states(
    reader: &StoreStateReader,
    op: &crate::metadata::OperatorState,
) -> Vec<StateSummary> {
    let mut states: BTreeMap<String, StateSummary> = BTreeMap::new();
    let keyed =
        |states: &mut BTreeMap<String, StateSummary>, key_type: &str, metas: Vec<StateMeta>| {
            for m in metas {
                states
                    .entry(m.name.clone())
                    .or_insert_with(|| StateSummary {
                        kind: m.kind.name().to_owned(),
                        key_type: Some(key_type.to_owned()),
                        namespace_type: Some(m.namespace_type),
                        user_key_type: m.user_key_type,
                        value_type: m.value_type,
                        ttl: m.ttl,
                        name: m.name,
                    });
            }
        };
    // One header per distinct stream is enough: every subtask writes the same states.
    let mut seen_full = false;
    let mut seen_incremental = false;
    for st in op.subtasks.values() {
        for handle in &st.keyed {
            match handle {
                KeyedStateHandle::KeyGroups(h) if !seen_full => {
                    if let Ok(header) = read_header(h, Some(reader)) {
                        keyed(&mut states, &header.key_type, header.states);
                        seen_full = true;
                    }
                }
                KeyedStateHandle::Changelog(h) if !seen_full => {
                    for part in h.segments().filter_map(|s| s.parts.first()) {
                        if let Ok(header) = read_header(part, Some(reader)) {
                            keyed(&mut states, &header.key_type, header.states);
                            seen_full = true;
                        }
                    }
                }
                KeyedStateHandle::Incremental(h) if !seen_incremental => {
                    let what = format::describe(&h.meta);
                    let meta = read_stream(&h.meta, Some(reader))
                        .and_then(|bytes| incremental::decode(&bytes, &what));
                    if let Ok(meta) = meta {
                        keyed(
                            &mut states,
                            &meta.key_type,
                            meta.states.into_iter().map(|s| s.meta).collect(),
                        );
                        seen_incremental = true;
                    }
                }
                _ => {}
            }
        }
        for handle in &st.operator {
            for (name, meta) in &handle.states {
                states.entry(name.clone()).or_insert_with(|| StateSummary {
                    name: name.clone(),
                    kind: meta.mode.name().to_owned(),
                    key_type: None,
                    namespace_type: None,
                    user_key_type: None,
                    value_type: meta.element_type.clone(),
                    ttl: false,
                });
            }
        }
    }
    states.into_values().collect()
}

/// Shows a checkpoint or savepoint (any location [`CheckpointStore::resolve`] accepts):
/// operators, parallelism, max parallelism, per-subtask key-group ranges, handles, files and
/// sizes.
///
/// # Errors
/// Resolution and decoding errors.
pub fn show(store: &CheckpointStore, path: &str) -> Result<SnapshotDetails> {
    let snapshot = store.resolve(path)?;
    let base = snapshot.base_dir.clone();
    let metadata_size = store.size(&snapshot.metadata_path)?;
    let m: &CheckpointMetadata = &snapshot.metadata;
    let reader = store.reader(&base);
    let mut sorted: Vec<&crate::metadata::OperatorState> = m.operators.iter().collect();
    // By uid: the same order for every checkpoint of a job, whatever order wrote them.
    sorted.sort_by(|a, b| a.uid.cmp(&b.uid));
    let operators = sorted
        .into_iter()
        .map(|op| OperatorSummary {
            uid: op.uid.clone(),
            name: op.name.clone(),
            parallelism: op.parallelism,
            max_parallelism: op.max_parallelism,
            state_size: op.state_size(),
            states: operator_states(&reader, op),
            subtasks: op
                .subtasks
                .iter()
                .map(|(&index, st)| SubtaskSummary {
                    index,
                    state_size: st.state_size(),
                    handles: st
                        .keyed
                        .iter()
                        .map(|k| HandleSummary {
                            kind: match k {
                                KeyedStateHandle::KeyGroups(_) => "keyed",
                                KeyedStateHandle::Incremental(_) => "incremental",
                                KeyedStateHandle::Changelog(_) => "changelog",
                            },
                            chain: match k {
                                KeyedStateHandle::Changelog(h) => Some(ChainSummary::of(h)),
                                _ => None,
                            },
                            key_groups: k
                                .key_group_range()
                                .as_inclusive()
                                .map(|r| (*r.start(), *r.end())),
                            state_names: keyed_state_names(&reader, k),
                            streams: k.streams().into_iter().map(|s| locate(&base, s)).collect(),
                        })
                        .chain(st.operator.iter().map(|o| HandleSummary {
                            kind: "operator",
                            chain: None,
                            key_groups: None,
                            state_names: o.states.keys().cloned().collect(),
                            streams: vec![locate(&base, &o.stream)],
                        }))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let files = m
        .files()
        .into_iter()
        .map(|f| (layout::join(&base, &f.path), f.size))
        .collect();
    Ok(SnapshotDetails {
        state_size: m.state_size(),
        snapshot,
        metadata_size,
        operators,
        files,
    })
}
