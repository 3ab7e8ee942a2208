//! Any backend to any backend through a savepoint: a savepoint of typed states, TTL state
//! and timers taken by the memory, fs or RocksDB backend (RocksDB with incremental
//! checkpoints, whose savepoints are still the canonical full format) restores into each
//! of them, whole and split over two subtasks. The behaviour is stated once, in the
//! conformance suite (`savepoint_moves_between_backends`); this runs it for every pair.

use cornerstone_backend_api::conformance::{
    Harness, MemoryStorageHarness, savepoint_moves_between_backends,
};
use cornerstone_backend_fs::FsStateBackend;
use cornerstone_backend_memory::MemoryStateBackend;

/// Runs the case from `from` into the memory, fs and (with the feature) RocksDB backends.
fn into_every_backend<A: Harness>(from: &A) {
    savepoint_moves_between_backends(from, &MemoryStorageHarness::new(MemoryStateBackend::new()));
    savepoint_moves_between_backends(from, &MemoryStorageHarness::new(FsStateBackend::new()));
    #[cfg(feature = "rocksdb")]
    {
        let dir = tempfile::tempdir().expect("a temp dir");
        savepoint_moves_between_backends(from, &rocks::harness(dir.path()));
    }
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use std::path::Path;

    use cornerstone_backend_api::conformance::MemoryStorageHarness;
    use cornerstone_backend_rocksdb::RocksDbStateBackend;

    /// RocksDB with incremental checkpoints (its default), in `dir`.
    pub(crate) fn harness(dir: &Path) -> MemoryStorageHarness<RocksDbStateBackend> {
        MemoryStorageHarness::new(
            RocksDbStateBackend::new()
                .working_dir(dir)
                .incremental(true),
        )
    }
}

#[test]
fn savepoint_of_memory_backend_restores_everywhere() {
    into_every_backend(&MemoryStorageHarness::new(MemoryStateBackend::new()));
}

#[test]
fn savepoint_of_fs_backend_restores_everywhere() {
    into_every_backend(&MemoryStorageHarness::new(FsStateBackend::new()));
}

#[cfg(feature = "rocksdb")]
#[test]
fn savepoint_of_rocksdb_backend_restores_everywhere() {
    let dir = tempfile::tempdir().expect("a temp dir");
    into_every_backend(&rocks::harness(dir.path()));
}
