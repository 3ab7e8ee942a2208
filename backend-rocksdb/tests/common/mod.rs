//! The conformance harness of the RocksDB backend: a factory working in a temporary
//! directory, snapshots in a `MemoryCheckpointStorage`.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use cornerstone_backend_api::conformance::{Harness, MemoryStorageHarness};
use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, StateReader};
use cornerstone_backend_rocksdb::RocksDbStateBackend;
use tempfile::TempDir;

/// A RocksDB factory over a temporary working directory (removed with the harness).
#[derive(Debug)]
pub struct RocksHarness {
    inner: MemoryStorageHarness<RocksDbStateBackend>,
    dir: Arc<TempDir>,
    incremental: bool,
}

impl RocksHarness {
    fn new(incremental: bool, memtable_hash_buckets: usize) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("a temp dir"));
        let factory = RocksDbStateBackend::new()
            .working_dir(dir.path())
            .incremental(incremental)
            .memtable_hash_buckets(memtable_hash_buckets)
            .block_cache_size(8 << 20)
            .write_buffer_size(4 << 20)
            .write_buffer_manager_limit(16 << 20);
        RocksHarness {
            inner: MemoryStorageHarness::new(factory),
            dir,
            incremental,
        }
    }

    /// Incremental snapshots and the plain skiplist memtable (the defaults of the backend).
    pub fn incremental() -> Self {
        Self::new(true, 0)
    }

    /// Full key-group-indexed snapshots, over hash-indexed memtables of 16 buckets: the
    /// keys of the suite collide in buckets, so iterators must keep to their own key or
    /// ask for total order.
    pub fn full() -> Self {
        Self::new(false, 16)
    }

    /// The root of the working directories.
    pub fn working_root(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Harness for RocksHarness {
    type Factory = RocksDbStateBackend;

    fn factory(&self) -> RocksDbStateBackend {
        self.inner.factory()
    }

    fn stream_factory(&self, id: CheckpointId) -> Box<dyn CheckpointStreamFactory> {
        self.inner.stream_factory(id)
    }

    fn reader(&self) -> Option<Arc<dyn StateReader>> {
        self.inner.reader()
    }

    fn incremental_ttl_cleanup(&self) -> bool {
        // RocksDB cleans up expired state in compactions, not on access.
        false
    }

    fn full_snapshot_ttl_cleanup(&self) -> bool {
        // As in Flink, `cleanupFullSnapshot` "is not applicable for the incremental
        // checkpointing in the RocksDB state backend"; full snapshots apply it.
        !self.incremental
    }
}
