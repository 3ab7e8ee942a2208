//! The RocksDB state backend of Cornerstone (Flink's `EmbeddedRocksDBStateBackend`):
//! working state in one RocksDB instance per keyed backend, in a local working directory,
//! with a column family per state; full key-group-indexed snapshots (restorable by every
//! backend) or incremental snapshots whose SST files are shared between checkpoints.
//!
//! ```
//! use cornerstone_backend_api::{
//!     CheckpointId, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, ListStateDescriptor,
//!     CheckpointableBackend, StateBackend, ValueStateDescriptor,
//! };
//! use cornerstone_backend_api::spi::MemoryCheckpointStorage;
//! use cornerstone_backend_rocksdb::RocksDbStateBackend;
//!
//! let dir = tempfile::tempdir().expect("a temp dir");
//! let factory = RocksDbStateBackend::new().working_dir(dir.path());
//! let params = || KeyedBackendParams::new(128, KeyGroupRange::all(128));
//! let backend = factory.create_keyed_backend::<String>(params())?;
//! let counts = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
//! let events = backend.list_state::<String, ()>(&ListStateDescriptor::new("events"))?;
//! counts.update(&"alice".to_string(), &(), 3)?;
//! events.add(&"alice".to_string(), &(), "login".into())?;
//!
//! // Synchronous phase (a native RocksDB checkpoint), then the asynchronous phase uploads
//! // the SST files and the backend's metadata (an incremental snapshot).
//! let storage = MemoryCheckpointStorage::new();
//! let snapshot = backend.snapshot(CheckpointId(1))?;
//! counts.update(&"alice".to_string(), &(), 4)?; // not in checkpoint 1
//! let handles = snapshot.write(&storage.stream_factory(CheckpointId(1)))?;
//! backend.notify_checkpoint_complete(CheckpointId(1))?;
//!
//! let restored = factory.create_keyed_backend::<String>(
//!     params().restore(handles.keyed, Some(std::sync::Arc::new(storage.clone()))),
//! )?;
//! let counts = restored.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
//! assert_eq!(counts.get(&"alice".to_string(), &())?, Some(3));
//! let events = restored.list_state::<String, ()>(&ListStateDescriptor::new("events"))?;
//! assert_eq!(events.get(&"alice".to_string(), &())?, ["login"]);
//! # Ok::<_, cornerstone_backend_api::Error>(())
//! ```
//!
//! # Layout
//! Keys are prefixed by their key group (big-endian, 1 byte up to 128 key groups, else 2),
//! then the serialized key and namespace (each with its length), then the map key for map
//! state, so a key group is one contiguous range and a map one prefix. Lists are stored as
//! serialized `Vec`s and appended to with a merge operator. Values of TTL states start with
//! their big-endian timestamp.
//!
//! # Timers
//! Each timer queue (the event-time or processing-time timers of a
//! [`TimerService`](cornerstone_backend_api::TimerService)) is a column family of its own,
//! keyed by key group, then timestamp (big-endian, sign bit flipped), then the serialized key
//! and namespace, so the first key of a key group is its next timer (Flink's RocksDB
//! priority queue). The first 128 timers of each key group are cached in memory: firing
//! takes them from the cache and deletes them, and reads RocksDB again only when a key
//! group's cache runs dry. Timers are in native checkpoints, so incremental snapshots carry
//! them, and full snapshots write them as records any backend restores.
//!
//! # TTL
//! Expired values are hidden and removed on read, as on every backend. States whose TTL
//! asks for [cleanup in compactions](cornerstone_backend_api::StateTtlConfig::cleanup_in_rocksdb_compaction)
//! also lose expired values, map entries, and lists whose every element expired, in
//! RocksDB's background compactions (Flink's `FlinkCompactionFilter`);
//! [`RocksDbKeyedStateBackend::compact`] forces one. A partly expired list stays whole
//! until it is read.
//!
//! # Snapshots
//! The synchronous phase flushes the memtables and creates a native RocksDB checkpoint
//! (hard links). An incremental snapshot uploads the checkpoint's SST files that the last
//! completed checkpoint did not have into `shared/` and references the others again; the
//! private files (MANIFEST, CURRENT, OPTIONS) go to `chk-N/`. A full snapshot reads the
//! checkpoint and writes the key-group-indexed stream of the heap backends.
//!
//! # Working directories
//! Each backend works in a fresh `rocksdb-*` directory under
//! [`RocksDbConfig::working_dir`], removed when the backend and everything using it are
//! dropped; a crashed process leaves its directory behind, which never conflicts with new
//! ones.
//!
//! How the crates fit together, the path of a state write to a committed `_metadata` and
//! where each rule lives: `docs/ARCHITECTURE.md` in the repository.

mod backend;
mod config;
mod db;
mod error;
mod factory;
mod keys;
mod restore;
mod snapshot;
mod states;
mod table;
mod timers;
mod ttl;

pub use backend::RocksDbKeyedStateBackend;
pub use config::{
    DEFAULT_BLOCK_CACHE_SIZE, DEFAULT_WRITE_BUFFER_MANAGER_LIMIT, DEFAULT_WRITE_BUFFER_SIZE, NAME,
    RocksDbConfig,
};
pub use db::RocksDbCompression;
pub use factory::RocksDbStateBackend;
/// The `rocksdb` crate this backend is built on, for baselines that use it directly
/// (feature `bench-internals`, not semver-stable).
#[cfg(feature = "bench-internals")]
pub use rocksdb;
