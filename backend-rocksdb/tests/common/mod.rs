//! The conformance harness of the RocksDB backend: a factory working in a temporary
//! directory, snapshots in a `MemoryCheckpointStorage` or, through
//! `cornerstone_testkit::harness::StoreHarness`, in the real checkpoint store.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use cornerstone_backend_api::conformance::{Harness, MemoryStorageHarness};
use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, StateReader};
use cornerstone_backend_rocksdb::RocksDbStateBackend;
use cornerstone_testkit::harness::StoreHarness;
use cornerstone_testkit::store::TestStore;
use tempfile::TempDir;

/// A RocksDB factory over a temporary working directory (removed with the harness), with
/// snapshots in the storage of `S`.
#[derive(Debug)]
pub struct RocksHarness<S = MemoryStorageHarness<RocksDbStateBackend>> {
    inner: S,
    dir: Arc<TempDir>,
    incremental: bool,
}

/// A factory working in `dir`, with small caches and buffers.
fn factory(dir: &Path, incremental: bool, memtable_hash_buckets: usize) -> RocksDbStateBackend {
    RocksDbStateBackend::new()
        .working_dir(dir)
        .incremental(incremental)
        .memtable_hash_buckets(memtable_hash_buckets)
        .block_cache_size(8 << 20)
        .write_buffer_size(4 << 20)
        .write_buffer_manager_limit(16 << 20)
}

impl RocksHarness {
    fn new(incremental: bool, memtable_hash_buckets: usize) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("a temp dir"));
        RocksHarness {
            inner: MemoryStorageHarness::new(factory(
                dir.path(),
                incremental,
                memtable_hash_buckets,
            )),
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
}

impl RocksHarness<StoreHarness<RocksDbStateBackend>> {
    /// Incremental snapshots and the plain skiplist memtable (the defaults of the backend),
    /// through the real checkpoint store on `storage`, every non-empty stream a file.
    ///
    /// Not the store's default inline threshold: the native files of an incremental
    /// snapshot carry no checksum of their own when they are inline (a file's handle has
    /// its CRC32), so `corrupted_snapshot_byte_is_detected` and
    /// `truncated_snapshot_is_detected` would fail on the small ones.
    pub fn through_store(storage: TestStore) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("a temp dir"));
        RocksHarness {
            inner: StoreHarness::new(factory(dir.path(), true, 0), storage, 0),
            dir,
            incremental: true,
        }
    }
}

impl<S> RocksHarness<S> {
    /// The root of the working directories.
    pub fn working_root(&self) -> &Path {
        self.dir.path()
    }
}

impl<S: Harness<Factory = RocksDbStateBackend>> Harness for RocksHarness<S> {
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
