//! The options of the RocksDB state backend: its name, its defaults and its
//! configuration (the factory that uses them is in `factory.rs`).

use std::path::PathBuf;

use cornerstone_backend_api::spi::keyed_format::Compression;

use crate::db::RocksDbCompression;

/// The name of the RocksDB backend, used in logs, metadata and CLI flags.
pub const NAME: &str = "rocksdb";

/// The default size of the block cache shared by the instances of one factory: 128 MiB.
pub const DEFAULT_BLOCK_CACHE_SIZE: usize = 128 << 20;
/// The default limit of all memtables of one factory's instances: 64 MiB, charged to the
/// block cache.
pub const DEFAULT_WRITE_BUFFER_MANAGER_LIMIT: usize = 64 << 20;
/// The default memtable size of one column family: 16 MiB.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 16 << 20;

/// How a [`RocksDbStateBackend`](crate::RocksDbStateBackend) is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RocksDbConfig {
    /// Where instances keep their working directories (one `rocksdb-*` directory each,
    /// removed when the backend is dropped).
    pub working_dir: PathBuf,
    /// Incremental checkpoints (Flink's `state.backend.incremental`, on by default):
    /// native RocksDB checkpoints whose SST files are shared between checkpoints. Off:
    /// full key-group-indexed snapshots, restorable by every backend.
    pub incremental: bool,
    /// Bytes of the LRU block cache shared by all instances of the factory.
    pub block_cache_size: usize,
    /// Bytes all memtables of the factory's instances may use (0: no limit), charged to
    /// the block cache.
    pub write_buffer_manager_limit: usize,
    /// The memtable size of one column family.
    pub write_buffer_size: usize,
    /// Buckets of hash-indexed memtables (0, the default: RocksDB's plain skiplist
    /// memtable, Flink's choice). Entries are hashed by key group and key into small
    /// skiplists, so point accesses do not search one skiplist of the whole memtable;
    /// each bucket costs 8 bytes of every memtable.
    ///
    /// A trade-off, measured in one run in `benches/README.md` with 100k buckets: value
    /// reads 1.7× faster, map puts and gets 1.6× faster, but every flush first sorts the
    /// memtable, so write-heavy work pays on the flush threads and a full-snapshot
    /// restore (which re-inserts every key) took 6.1× longer.
    pub memtable_hash_buckets: usize,
    /// Compression of SST blocks.
    pub compression: RocksDbCompression,
    /// Compression of full snapshots.
    pub snapshot_compression: Compression,
}

impl Default for RocksDbConfig {
    fn default() -> Self {
        RocksDbConfig {
            working_dir: std::env::temp_dir().join("cornerstone-rocksdb"),
            incremental: true,
            block_cache_size: DEFAULT_BLOCK_CACHE_SIZE,
            write_buffer_manager_limit: DEFAULT_WRITE_BUFFER_MANAGER_LIMIT,
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            memtable_hash_buckets: 0,
            compression: RocksDbCompression::default(),
            snapshot_compression: Compression::None,
        }
    }
}
