//! The asynchronous phase of heap snapshots: the captured tables written as a full, key-group
//! indexed snapshot.

use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::spi::keyed_format::{KeyedSnapshotHeader, KeyedSnapshotWriter};
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointStreamFactory, KeyGroupRange, KeyGroupsStateHandle,
    KeyedStateHandle, Result, StateMeta, StateScope, SubtaskState,
};

use super::options::{HeapBackendOptions, HeapSnapshotStorage};
use super::restore::RawGroup;
use crate::parallel;
use crate::table::{Captured, SnapshotWriter};

/// A restored state that was not registered again: written back as it was read.
pub(super) struct RawCapture(pub(super) Arc<Vec<RawGroup>>);

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
        for r in self.0[index].records() {
            let r = r?;
            writer.raw_record(state, r.key, r.namespace, r.user_key, r.value)?;
        }
        Ok(())
    }
}

pub(super) struct HeapSnapshot {
    pub(super) checkpoint_id: CheckpointId,
    pub(super) options: HeapBackendOptions,
    pub(super) range: KeyGroupRange,
    pub(super) now: u64,
    pub(super) key_type: std::borrow::Cow<'static, str>,
    pub(super) states: Vec<(StateMeta, Box<dyn Captured>)>,
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

    /// Writes the key groups of `range` (inside the backend's) to one stream.
    fn write_part(
        &self,
        streams: &dyn CheckpointStreamFactory,
        header: &KeyedSnapshotHeader,
        range: KeyGroupRange,
    ) -> Result<KeyedStateHandle> {
        let out = match self.options.storage {
            HeapSnapshotStorage::Inline { max_state_size } => {
                streams.create_inline(max_state_size)?
            }
            HeapSnapshotStorage::Streams => streams.create(StateScope::Exclusive)?,
        };
        let mut writer = KeyedSnapshotWriter::new(out, header, range, self.options.compression)?;
        for kg in range.iter() {
            let index = (kg - self.range.first()) as usize;
            writer.begin_key_group(kg)?;
            for (state, (_, captured)) in self.states.iter().enumerate() {
                captured.write_key_group(index, state as u16, &mut writer, self.now)?;
            }
        }
        let (out, offsets) = writer.finish()?;
        let stream = out.close()?;
        Ok(KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
            range,
            offsets,
            stream,
        }))
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
        let parts = match self.options.storage {
            // One stream: the cap applies to the snapshot, not to a part of it.
            HeapSnapshotStorage::Inline { .. } => vec![self.range],
            HeapSnapshotStorage::Streams => self.parts(),
        };
        let header = KeyedSnapshotHeader {
            backend: self.options.name.to_owned(),
            key_type: self.key_type.to_string(),
            states: self.states.iter().map(|(m, _)| m.clone()).collect(),
        };
        // Each part on its own thread, to its own stream: one block buffered per thread.
        let keyed = parallel::run_each(parts, "snapshot writer", |range| {
            self.write_part(streams, &header, range)
        })?;
        Ok(SubtaskState {
            keyed,
            operator: Vec::new(),
        })
    }
}
