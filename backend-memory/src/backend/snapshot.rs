//! The asynchronous phase of heap snapshots: the captured tables written as a full, key-group
//! indexed snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::spi::keyed_format::{
    ChangelogRecord, Fields, KeyedSnapshotHeader, KeyedSnapshotWriter, live_records,
};
use cornerstone_backend_api::{
    AsyncSnapshot, ChangelogSegment, ChangelogStateHandle, CheckpointId, CheckpointStreamFactory,
    KeyGroupRange, KeyGroupsStateHandle, KeyedStateHandle, Result, StateKind, StateMeta,
    StateScope, SubtaskState,
};
use parking_lot::Mutex;

use super::options::{HeapBackendOptions, HeapSnapshotStorage};
use super::restore::RawGroup;
use crate::parallel;
use crate::table::{Captured, SnapshotWriter};

/// A restored state that was not registered again: written back as it was read (the
/// records a changelog's deltas leave, [`live_records`]). It never changes, so a
/// delta holds nothing of it.
pub(super) struct RawCapture(pub(super) Arc<Vec<RawGroup>>, pub(super) StateKind);

impl Captured for RawCapture {
    fn entries(&self, index: usize) -> usize {
        self.0[index].len()
    }

    fn write_key_group(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        _now: u64,
    ) -> Result<()> {
        let group = &self.0[index];
        if !group.has_removals() {
            for r in group.records() {
                let (r, _) = r?;
                writer.raw_record(state, r.key, r.namespace, r.user_key, r.value)?;
            }
            return Ok(());
        }
        // What the removals (and replacements) after them leave.
        let records: Vec<(Fields<'_>, bool)> = group.records().collect::<Result<_>>()?;
        let live = live_records(records.iter().map(|(r, removed)| ChangelogRecord {
            state: (),
            kind: self.1,
            key: r.key,
            namespace: r.namespace,
            value: r.value,
            removed: *removed,
        }));
        for ((r, _), live) in records.iter().zip(live) {
            if live {
                writer.raw_record(state, r.key, r.namespace, r.user_key, r.value)?;
            }
        }
        Ok(())
    }

    fn changes(&self, _index: usize) -> usize {
        0
    }

    fn write_changes(
        &self,
        _index: usize,
        _state: u16,
        _writer: &mut SnapshotWriter,
        _now: u64,
    ) -> Result<()> {
        Ok(())
    }
}

/// The changelog chains of a backend in changelog mode: the one of the last checkpoint
/// confirmed complete, which the next delta extends, and those written since.
#[derive(Debug, Default)]
pub(super) struct Chains {
    pub(super) confirmed: Option<ChangelogStateHandle>,
    pub(super) written: BTreeMap<CheckpointId, ChangelogStateHandle>,
    /// The checkpoints whose synchronous phase chose their chain (over `confirmed` as it
    /// was), not yet confirmed nor aborted: a confirmation older than one of them is late.
    pub(super) taken: BTreeSet<CheckpointId>,
    /// A late confirmation released changes `confirmed` does not hold: the next
    /// checkpoints materialize until one is confirmed in time.
    pub(super) materialize: bool,
}

/// What a snapshot writes.
pub(super) enum Mode {
    /// A full snapshot into the checkpoint's own scope (no changelog, or a savepoint).
    Full,
    /// A changelog checkpoint: a full snapshot into the shared scope (a materialization)
    /// when `over` is `None`, else a delta that extends `over`; the chain written is kept
    /// in `chains`.
    Changelog {
        over: Option<ChangelogStateHandle>,
        chains: Arc<Mutex<Chains>>,
    },
}

pub(super) struct HeapSnapshot {
    pub(super) checkpoint_id: CheckpointId,
    pub(super) options: HeapBackendOptions,
    pub(super) range: KeyGroupRange,
    pub(super) now: u64,
    pub(super) key_type: std::borrow::Cow<'static, str>,
    pub(super) states: Vec<(StateMeta, Box<dyn Captured>)>,
    pub(super) mode: Mode,
}

/// Entries below which a snapshot is written by one thread, to one stream.
const MIN_ENTRIES_PER_PART: u64 = 256 * 1024;

impl HeapSnapshot {
    /// The key-group ranges written in parallel, each to its own stream: contiguous, with
    /// about the same number of entries, at least [`MIN_ENTRIES_PER_PART`] each, at most
    /// the options' `io_threads`.
    fn parts(&self) -> Vec<KeyGroupRange> {
        let entries: Vec<u64> = (0..self.range.len() as usize)
            .map(|i| self.states.iter().map(|(_, c)| c.entries(i) as u64).sum())
            .collect();
        parallel::split(
            self.range,
            &entries,
            MIN_ENTRIES_PER_PART,
            self.options.io_threads,
        )
    }

    /// Writes the key groups of `range` (inside the backend's) to one stream in `scope`:
    /// every record, or the changes of a `delta`.
    fn write_part(
        &self,
        streams: &dyn CheckpointStreamFactory,
        header: &KeyedSnapshotHeader,
        range: KeyGroupRange,
        scope: StateScope,
        delta: bool,
    ) -> Result<KeyGroupsStateHandle> {
        let out = match self.options.storage {
            HeapSnapshotStorage::Inline { max_state_size } => {
                streams.create_inline(max_state_size)?
            }
            HeapSnapshotStorage::Streams => streams.create(scope)?,
        };
        let compression = self.options.compression;
        let mut writer = if delta {
            KeyedSnapshotWriter::delta(out, header, range, compression)?
        } else {
            KeyedSnapshotWriter::new(out, header, range, compression)?
        };
        for kg in range.iter() {
            let index = (kg - self.range.first()) as usize;
            writer.begin_key_group(kg)?;
            for (state, (_, captured)) in self.states.iter().enumerate() {
                if delta {
                    captured.write_changes(index, state as u16, &mut writer, self.now)?;
                } else {
                    captured.write_key_group(index, state as u16, &mut writer, self.now)?;
                }
            }
        }
        let (out, offsets) = writer.finish()?;
        let stream = out.close()?;
        Ok(KeyGroupsStateHandle {
            range,
            offsets,
            stream,
        })
    }

    /// Writes every part of a full snapshot into `scope`, each on its own thread.
    fn write_full(
        &self,
        streams: &dyn CheckpointStreamFactory,
        header: &KeyedSnapshotHeader,
        scope: StateScope,
    ) -> Result<Vec<KeyGroupsStateHandle>> {
        let parts = match self.options.storage {
            // One stream: the cap applies to the snapshot, not to a part of it.
            HeapSnapshotStorage::Inline { .. } => vec![self.range],
            HeapSnapshotStorage::Streams => self.parts(),
        };
        // Each part on its own thread, to its own stream: one block buffered per thread.
        parallel::run_each(parts, "snapshot writer", |range| {
            self.write_part(streams, header, range, scope, false)
        })
    }

    /// Writes a changelog checkpoint: a materialization, or a delta over `over`.
    fn write_changelog(
        &self,
        streams: &dyn CheckpointStreamFactory,
        header: &KeyedSnapshotHeader,
        over: Option<&ChangelogStateHandle>,
    ) -> Result<ChangelogStateHandle> {
        let Some(over) = over else {
            return Ok(ChangelogStateHandle {
                range: self.range,
                base: ChangelogSegment {
                    checkpoint_id: self.checkpoint_id,
                    parts: self.write_full(streams, header, StateScope::Shared)?,
                },
                deltas: Vec::new(),
            });
        };
        // Split by changes as a full snapshot is by entries: usually one part.
        let changes: Vec<u64> = (0..self.range.len() as usize)
            .map(|i| self.states.iter().map(|(_, c)| c.changes(i) as u64).sum())
            .collect();
        let ranges = parallel::split(
            self.range,
            &changes,
            MIN_ENTRIES_PER_PART,
            self.options.io_threads,
        );
        let parts = parallel::run_each(ranges, "delta writer", |range| {
            self.write_part(streams, header, range, StateScope::Shared, true)
        })?;
        let mut chain = over.clone();
        chain.deltas.push(ChangelogSegment {
            checkpoint_id: self.checkpoint_id,
            parts,
        });
        Ok(chain)
    }
}

impl fmt::Debug for HeapSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapSnapshot")
            .field("checkpoint_id", &self.checkpoint_id)
            .field("range", &self.range)
            .field(
                "states",
                &self.states.iter().map(|s| &s.0.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AsyncSnapshot for HeapSnapshot {
    fn checkpoint_id(&self) -> CheckpointId {
        self.checkpoint_id
    }

    fn write(self: Box<Self>, streams: &dyn CheckpointStreamFactory) -> Result<SubtaskState> {
        let header = KeyedSnapshotHeader {
            backend: self.options.name.to_owned(),
            key_type: self.key_type.to_string(),
            states: self.states.iter().map(|(m, _)| m.clone()).collect(),
        };
        let keyed = match &self.mode {
            Mode::Full => self
                .write_full(streams, &header, StateScope::Exclusive)?
                .into_iter()
                .map(KeyedStateHandle::KeyGroups)
                .collect(),
            Mode::Changelog { over, chains } => {
                let chain = self.write_changelog(streams, &header, over.as_ref())?;
                // Extended by the next delta once the checkpoint is confirmed complete.
                chains
                    .lock()
                    .written
                    .insert(self.checkpoint_id, chain.clone());
                vec![KeyedStateHandle::Changelog(chain)]
            }
        };
        Ok(SubtaskState {
            keyed,
            operator: Vec::new(),
        })
    }
}
