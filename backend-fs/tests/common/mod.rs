//! A conformance harness over the real checkpoint store on the local filesystem.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use cornerstone_backend_api::conformance::Harness;
use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, StateReader};
use cornerstone_backend_fs::FsStateBackend;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, PendingCheckpoint,
};
use parking_lot::Mutex;

/// Snapshots go through a [`CompletedCheckpointStore`] on a temporary directory: every
/// stream factory is the one of a pending checkpoint, kept pending (so its files stay) for
/// the life of the harness; restores read through the store's range reader.
pub struct StoreHarness {
    pub factory: FsStateBackend,
    pub store: CheckpointStore,
    pub checkpoints: CompletedCheckpointStore,
    pending: Mutex<Vec<PendingCheckpoint>>,
    _dir: tempfile::TempDir,
}

impl StoreHarness {
    /// A harness whose store keeps streams below `inline_threshold` bytes inline.
    pub fn new(factory: FsStateBackend, inline_threshold: usize) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = CheckpointStore::local(dir.path()).expect("open the store");
        let checkpoints = CompletedCheckpointStore::open(
            &store,
            "conformance-job",
            CheckpointConfig::default().inline_threshold(inline_threshold),
        )
        .expect("open the job");
        StoreHarness {
            factory,
            store,
            checkpoints,
            pending: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }
}

impl Harness for StoreHarness {
    type Factory = FsStateBackend;

    fn factory(&self) -> FsStateBackend {
        self.factory
    }

    fn stream_factory(&self, id: CheckpointId) -> Box<dyn CheckpointStreamFactory> {
        let pending = self
            .checkpoints
            .begin_checkpoint(id)
            .expect("begin a checkpoint");
        let streams = pending.stream_factory();
        self.pending.lock().push(pending);
        Box::new((*streams).clone())
    }

    fn reader(&self) -> Option<Arc<dyn StateReader>> {
        Some(Arc::new(self.store.reader(self.checkpoints.job_dir())))
    }
}
