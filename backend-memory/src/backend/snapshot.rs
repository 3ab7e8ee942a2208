//! The asynchronous phase of heap snapshots: the captured tables written as a full, key-group
//! indexed snapshot.

use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::spi::InlineStreamFactory;
use cornerstone_backend_api::spi::keyed_format::{KeyedSnapshotHeader, KeyedSnapshotWriter};
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointStreamFactory, KeyGroupRange, KeyGroupsStateHandle,
    KeyedStateHandle, Result, StateMeta, StateScope, SubtaskState,
};

use super::options::{HeapBackendOptions, HeapSnapshotStorage};
use super::restore::RawGroup;
use crate::table::{Captured, SnapshotWriter};

/// A restored state that was not registered again: written back as it was read.
pub(super) struct RawCapture(pub(super) Arc<Vec<RawGroup>>);

impl Captured for RawCapture {
    fn write_key_group(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        _now: u64,
    ) -> Result<()> {
        for r in self.0[index].records() {
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
        let inline;
        let streams: &dyn CheckpointStreamFactory = match self.options.storage {
            HeapSnapshotStorage::Inline { max_state_size } => {
                inline = InlineStreamFactory::new(self.checkpoint_id, max_state_size);
                &inline
            }
            HeapSnapshotStorage::Streams => streams,
        };
        let header = KeyedSnapshotHeader {
            backend: self.options.name.to_owned(),
            key_type: self.key_type.to_string(),
            states: self.states.iter().map(|(m, _)| m.clone()).collect(),
        };
        let out = streams.create(StateScope::Exclusive)?;
        let mut writer =
            KeyedSnapshotWriter::new(out, &header, self.range, self.options.compression)?;
        for (index, kg) in self.range.iter().enumerate() {
            writer.begin_key_group(kg)?;
            for (state, (_, captured)) in self.states.iter().enumerate() {
                captured.write_key_group(index, state as u16, &mut writer, self.now)?;
            }
        }
        let (out, offsets) = writer.finish()?;
        let stream = out.close()?;
        Ok(SubtaskState {
            keyed: vec![KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
                range: self.range,
                offsets,
                stream,
            })],
            operator: Vec::new(),
        })
    }
}
