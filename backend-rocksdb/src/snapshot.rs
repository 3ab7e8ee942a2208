//! The asynchronous phases: a full key-group-indexed snapshot read from a native
//! checkpoint, or an incremental upload of the checkpoint's files.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cornerstone_backend_api::spi::format::incremental::{self, IncrementalMeta, IncrementalState};
use cornerstone_backend_api::spi::keyed_format::{
    Compression, KeyedSnapshotHeader, KeyedSnapshotWriter,
};
use cornerstone_backend_api::stream::stream_write_error;
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointStreamFactory, Error, IncrementalStateHandle,
    KeyGroupRange, KeyGroupsStateHandle, KeyedStateHandle, NamedStateFile, Result, StateKind,
    StateScope, StreamStateHandle, SubtaskState,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use tempfile::TempDir;

use crate::config::NAME;
use crate::db::{Instance, open_read_only};
use crate::error::local_io;
use crate::keys::{key_group_bound, split};
use crate::states::{Filtered, StateEntry};
use crate::table::{Seek, scan};
use crate::timers::timer_record;

/// Shared SST files: those of the last completed checkpoint (reused by the next ones) and
/// those of checkpoints in flight.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    pub(crate) confirmed: BTreeMap<String, StreamStateHandle>,
    pub(crate) pending: BTreeMap<CheckpointId, Vec<NamedStateFile>>,
    /// The incremental checkpoints whose synchronous phase took `confirmed` as it was, not
    /// yet confirmed nor aborted: a confirmation older than one of them is late.
    pub(crate) taken: BTreeSet<CheckpointId>,
}

/// What the synchronous phase captured: a native checkpoint in a local directory and the
/// states it holds.
pub(crate) struct SnapshotState {
    pub(crate) checkpoint_id: CheckpointId,
    /// Keeps the working directory (which holds `dir`) alive.
    pub(crate) inst: Arc<Instance>,
    /// Removed when the snapshot is written or dropped.
    pub(crate) _dir: TempDir,
    pub(crate) path: PathBuf,
    pub(crate) range: KeyGroupRange,
    pub(crate) max_parallelism: u32,
    pub(crate) prefix_len: usize,
    pub(crate) key_type: std::borrow::Cow<'static, str>,
    pub(crate) states: Vec<StateEntry>,
}

impl fmt::Debug for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotState")
            .field("checkpoint_id", &self.checkpoint_id)
            .field("path", &self.path)
            .field("range", &self.range)
            .field(
                "states",
                &self.states.iter().map(|s| &s.meta.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A full snapshot: the checkpoint is opened read-only and written as a key-group-indexed
/// stream with the same records as the heap backends, so any backend restores it.
#[derive(Debug)]
pub(crate) struct FullSnapshot {
    pub(crate) state: SnapshotState,
    pub(crate) now: u64,
    pub(crate) compression: Compression,
}

impl AsyncSnapshot for FullSnapshot {
    fn checkpoint_id(&self) -> CheckpointId {
        self.state.checkpoint_id
    }

    fn write(self: Box<Self>, streams: &dyn CheckpointStreamFactory) -> Result<SubtaskState> {
        let s = &self.state;
        let cfs: Vec<String> = s.states.iter().map(|e| e.cf.clone()).collect();
        let db = open_read_only(&s.inst.resources, &s.path, &cfs)?;
        let header = KeyedSnapshotHeader {
            backend: NAME.to_owned(),
            key_type: s.key_type.to_string(),
            states: s.states.iter().map(|e| e.meta.clone()).collect(),
        };
        let out = streams.create(StateScope::Exclusive)?;
        let mut writer = KeyedSnapshotWriter::new(out, &header, s.range, self.compression)?;
        let handles = s
            .states
            .iter()
            .map(|e| {
                db.cf_handle(&e.cf).ok_or_else(|| {
                    Error::internal("column family missing from a native checkpoint")
                        .with_context("state", &e.meta.name)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for kg in s.range.iter() {
            writer.begin_key_group(kg)?;
            let lower = key_group_bound(kg, s.prefix_len);
            let upper = key_group_bound(kg + 1, s.prefix_len);
            for (index, (entry, cf)) in s.states.iter().zip(&handles).enumerate() {
                let is_map = entry.meta.kind == StateKind::Map;
                let is_timers = entry.meta.kind == StateKind::Timers;
                let state = index as u16;
                scan(
                    &db,
                    cf,
                    &lower,
                    Some(upper.clone()),
                    Seek::Total,
                    &mut |k, v| {
                        if is_timers {
                            let (key, namespace, ts) = timer_record(k, s.prefix_len)
                                .map_err(|e| e.with_context("state", &entry.meta.name))?;
                            writer.raw_record(state, key, namespace, None, &ts)?;
                            return Ok(true);
                        }
                        let parts = split(k, s.prefix_len)?;
                        let user_key = is_map.then_some(parts.rest);
                        let filtered = match &entry.filter {
                            Some(f) => f(v, self.now)
                                .map_err(|e| e.with_context("state", &entry.meta.name))?,
                            None => Filtered::Keep,
                        };
                        let replaced;
                        let value = match filtered {
                            Filtered::Keep => v,
                            Filtered::Replace(r) => {
                                replaced = r;
                                &replaced
                            }
                            Filtered::Drop => return Ok(true),
                        };
                        writer.raw_record(state, parts.key, parts.namespace, user_key, value)?;
                        Ok(true)
                    },
                )?;
            }
        }
        let (out, offsets) = writer.finish()?;
        let stream = out.close()?;
        Ok(SubtaskState {
            keyed: vec![KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
                range: s.range,
                offsets,
                stream,
            })],
            operator: Vec::new(),
        })
    }
}

/// An incremental snapshot: the checkpoint's SST files not confirmed before are uploaded
/// to `shared/`, the others are referenced again; MANIFEST, CURRENT and OPTIONS go to the
/// checkpoint's own directory.
#[derive(Debug)]
pub(crate) struct IncrementalSnapshot {
    pub(crate) state: SnapshotState,
    pub(crate) backend_id: String,
    /// SST files of the last completed checkpoint, by local name.
    pub(crate) confirmed: BTreeMap<String, StreamStateHandle>,
    pub(crate) uploads: Arc<Mutex<Uploads>>,
}

/// Copies a local file into a new stream of `scope`.
fn upload(
    path: &Path,
    scope: StateScope,
    streams: &dyn CheckpointStreamFactory,
) -> Result<StreamStateHandle> {
    let mut file =
        std::fs::File::open(path).map_err(|e| local_io("open checkpoint file", path, e))?;
    let mut out = streams.create(scope)?;
    std::io::copy(&mut file, &mut out).map_err(|e| {
        if e.get_ref().is_some() {
            stream_write_error("upload checkpoint file", e)
        } else {
            local_io("upload checkpoint file", path, e)
        }
    })?;
    out.flush()
        .map_err(|e| stream_write_error("upload checkpoint file", e))?;
    out.close()
}

impl AsyncSnapshot for IncrementalSnapshot {
    fn checkpoint_id(&self) -> CheckpointId {
        self.state.checkpoint_id
    }

    fn write(self: Box<Self>, streams: &dyn CheckpointStreamFactory) -> Result<SubtaskState> {
        let s = &self.state;
        let mut names: Vec<String> = Vec::new();
        let entries = std::fs::read_dir(&s.path)
            .map_err(|e| local_io("list native checkpoint", &s.path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| local_io("list native checkpoint", &s.path, e))?;
            if entry
                .file_type()
                .map_err(|e| local_io("list native checkpoint", &s.path, e))?
                .is_file()
            {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let mut shared = Vec::new();
        let mut private = Vec::new();
        for name in names {
            let path = s.path.join(&name);
            if name.ends_with(".sst") {
                let handle = match self.confirmed.get(&name) {
                    Some(handle) => handle.clone(),
                    None => upload(&path, StateScope::Shared, streams)?,
                };
                shared.push(NamedStateFile {
                    local_name: name,
                    handle,
                });
            } else {
                private.push(NamedStateFile {
                    local_name: name.clone(),
                    handle: upload(&path, StateScope::Exclusive, streams)?,
                });
            }
        }
        let meta = IncrementalMeta {
            key_type: s.key_type.to_string(),
            max_parallelism: s.max_parallelism,
            states: s
                .states
                .iter()
                .map(|e| IncrementalState {
                    meta: e.meta.clone(),
                    column_family: e.cf.clone(),
                })
                .collect(),
        };
        let mut out = streams.create(StateScope::Exclusive)?;
        out.write_all(&incremental::encode(&meta))
            .map_err(|e| stream_write_error("write snapshot meta", e))?;
        let meta = out.close()?;
        self.uploads
            .lock()
            .pending
            .insert(s.checkpoint_id, shared.clone());
        Ok(SubtaskState {
            keyed: vec![KeyedStateHandle::Incremental(IncrementalStateHandle {
                range: s.range,
                checkpoint_id: s.checkpoint_id,
                backend_id: self.backend_id.clone(),
                shared,
                private,
                meta,
            })],
            operator: Vec::new(),
        })
    }
}
