//! The filesystem state backend of Cornerstone: keyed state as typed objects on the heap
//! (the same tables as `cornerstone-backend-memory`, not a copy), snapshots streamed as
//! key-group-indexed files into checkpoint storage. This is Flink's `FsStateBackend`, i.e.
//! `HashMapStateBackend` with `FileSystemCheckpointStorage`.
//!
//! ```
//! use std::sync::Arc;
//! use cornerstone_backend_api::{
//!     CheckpointId, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, CheckpointableBackend,
//!     StateBackend, StateReader, ValueStateDescriptor, keygroup::key_group_for_key,
//! };
//! use cornerstone_backend_fs::FsStateBackend;
//! use cornerstone_checkpoint_store::{
//!     CheckpointConfig, CheckpointStore, CompletedCheckpointStore, OperatorSpec,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let store = CheckpointStore::local(dir.path())?;
//! let checkpoints = CompletedCheckpointStore::open(&store, "job-1", CheckpointConfig::default())?;
//!
//! let factory = FsStateBackend::new();
//! let backend = factory.create_keyed_backend::<u64>(KeyedBackendParams::new(128, KeyGroupRange::all(128)))?;
//! let counts = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
//! for key in 0..10_000u64 {
//!     counts.update(&key, &(), key * 2)?;
//! }
//!
//! // The synchronous phase captures a view; the asynchronous phase may run on another
//! // thread while processing goes on: later writes are not in the snapshot.
//! let snapshot = backend.snapshot(CheckpointId(1))?;
//! counts.update(&7, &(), 0)?;
//! let mut pending = checkpoints.begin_checkpoint(CheckpointId(1))?;
//! let streams = pending.stream_factory();
//! let state = std::thread::spawn(move || snapshot.write(&*streams)).join().expect("no panic")?;
//! pending.add_subtask_state(&OperatorSpec::new("counter", "Counter", 1, 128), 0, state)?;
//! let completed = pending.commit()?;
//!
//! // Restore the key groups of subtask 1 of 2 from the files: range reads, not a download.
//! let range = KeyGroupRange::for_subtask(128, 2, 1)?;
//! let handles = completed.metadata.operators[0].subtasks[&0].keyed.clone();
//! let reader: Arc<dyn StateReader> = Arc::new(store.reader(&completed.base_dir));
//! let restored = factory.create_keyed_backend::<u64>(
//!     KeyedBackendParams::new(128, range).restore(handles, Some(reader)),
//! )?;
//! let counts = restored.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
//! for key in 0..10_000u64 {
//!     if range.contains(key_group_for_key(&key, 128)?) {
//!         assert_eq!(counts.get(&key, &())?, Some(key * 2));
//!     }
//! }
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Snapshots
//! - **Synchronous phase**: [`CheckpointableBackend::snapshot`] clones one `Arc` per key group and
//!   state (no copy of the state); it takes microseconds, whatever the state's size. The
//!   first write to a key group after a snapshot copies that key group only.
//! - **Asynchronous phase**: [`AsyncSnapshot::write`] streams the snapshot through the
//!   checkpoint's [`CheckpointStreamFactory`] (the exclusive scope, `chk-N/`): the `CSKG`
//!   format of `cornerstone_backend_api::spi::keyed_format`, blocks of about 256 KiB, each
//!   with a CRC32 and optionally zstd-compressed, and an offset for every key group. A
//!   large snapshot (from 512 Ki entries) is split into contiguous key-group parts of about
//!   equal size, written by up to [`FsStateBackend::io_threads`] threads (default: the
//!   machine's cores), one file each; a small one is one file. Memory stays bounded: one
//!   block is buffered per thread, and the checkpoint store uploads in chunks. Streams
//!   below the store's inline threshold (20 KiB by default) stay inline in `_metadata`.
//! - **Restore** reads, for each handle, only the byte range of the key groups the new
//!   backend owns (a rescale reads a fraction of the files), from any storage the
//!   checkpoint store supports; a large file is read in parts, on several threads. A
//!   damaged block is reported with its file and key group.
//!
//! # Incremental checkpoints (changelog mode)
//! [`FsStateBackend::incremental`] turns on Flink's changelog idea for the heap tables:
//! each write also appends its (key, namespace) (a timer: the timer) to a change log of its
//! key group (repeats dropped as the log grows), and a checkpoint writes only what changed
//! since the last checkpoint confirmed complete (`notify_checkpoint_complete`): a **delta**
//! of the changed entries and the removals (`CSKG` version 3) into the shared scope
//! (`shared/`). Its handle (`KeyedStateHandle::Changelog`) lists the chain's **base**, a
//! full snapshot in `shared/`, and every delta since, in order; the retention of the
//! checkpoint store keeps each file alive while a retained checkpoint references it. A
//! checkpoint **materializes** (writes a new base) when there is no confirmed chain, or the
//! chain's deltas reach [`ChangelogOptions::max_deltas`] or outgrow
//! [`ChangelogOptions::max_delta_percent`] of its base. The synchronous phase seals the
//! change logs (a move, no copy); the changes of a checkpoint that fails or is aborted stay
//! for the next delta. A confirmation that arrives after the next checkpoint's synchronous
//! phase is late (the store deletes the late one's delta once it retains the next one
//! instead): the next checkpoint materializes, unless the newer one is confirmed first. A
//! key group whose log holds half its entries between two checkpoints is **whole**: its
//! updates are no longer recorded one by one (removals still are) and the delta writes all
//! its entries, so a much-changed group costs a write what it costs without changelog mode.
//! A restore (any backend, RocksDB included, rescaled or not) reads the base and applies
//! the deltas in order, each as range reads of the key groups it owns. Savepoints stay
//! full, self-contained snapshots in the savepoint's own directory.
//!
//! [`AsyncSnapshot::write`]: cornerstone_backend_api::AsyncSnapshot::write
//! [`CheckpointStreamFactory`]: cornerstone_backend_api::CheckpointStreamFactory
//! [`CheckpointableBackend::snapshot`]: cornerstone_backend_api::CheckpointableBackend::snapshot

use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::{KeyedBackendParams, Result, StateBackend, StateKey};
use cornerstone_backend_memory::{HeapBackendOptions, HeapKeyedStateBackend, HeapSnapshotStorage};

/// The options of changelog mode ([`FsStateBackend::incremental`]).
pub use cornerstone_backend_memory::ChangelogOptions;

/// Which threads may use a heap backend's states.
pub use cornerstone_backend_memory::HeapThreading;

/// The heap keyed backend that [`FsStateBackend`] creates (the memory backend's tables).
pub use cornerstone_backend_memory::HeapKeyedStateBackend as FsKeyedStateBackend;

/// The name of the filesystem backend, recorded in snapshots and used in CLI flags.
pub const NAME: &str = "fs";

/// The filesystem state backend: working state on the heap, snapshots streamed as
/// key-group-indexed files into checkpoint storage (Flink's `FsStateBackend`).
///
/// Unlike the memory backend, snapshots have no size cap: they are as large as the
/// storage allows. Compression is off by default (the state is usually small integers
/// and the disk faster than zstd); [`FsStateBackend::compression`] turns it on per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStateBackend {
    compression: Compression,
    threading: HeapThreading,
    io_threads: Option<usize>,
    changelog: Option<ChangelogOptions>,
}

impl FsStateBackend {
    /// A filesystem backend with uncompressed snapshot blocks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compresses snapshot blocks (e.g. `Compression::Zstd(3)`).
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Which threads may use the states: the thread that created the keyed backend (the
    /// default, no lock per access) or any ([`HeapThreading::Shared`]).
    #[must_use]
    pub fn threading(mut self, threading: HeapThreading) -> Self {
        self.threading = threading;
        self
    }

    /// How many threads the asynchronous phase of a snapshot and a restore may use (default:
    /// the machine's cores): a snapshot writes a part of the key groups per thread, each to
    /// its own file (a part holds at least 256 Ki entries, so small snapshots stay one
    /// file); a restore reads a large file in parts of at least 4 MiB, one per thread.
    #[must_use]
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = Some(threads.max(1));
        self
    }

    /// Incremental checkpoints (changelog mode): each checkpoint uploads the entries
    /// changed since the last one confirmed complete (a delta, in the shared scope) and
    /// references the full snapshot and deltas before it; a full snapshot starts a new
    /// chain as `changelog` says. Savepoints stay full, self-contained snapshots. Every
    /// write records its key in a change log until a checkpoint holding it is confirmed
    /// ([`FsKeyedStateBackend::pending_changes`] counts them).
    #[must_use]
    pub fn incremental(mut self, changelog: ChangelogOptions) -> Self {
        self.changelog = Some(changelog);
        self
    }

    /// The options of the heap backends this factory creates.
    pub fn options(&self) -> HeapBackendOptions {
        let mut options = HeapBackendOptions::new(NAME, HeapSnapshotStorage::Streams)
            .with_compression(self.compression)
            .with_threading(self.threading);
        if let Some(threads) = self.io_threads {
            options = options.with_io_threads(threads);
        }
        if let Some(changelog) = self.changelog {
            options = options.with_changelog(changelog);
        }
        options
    }
}

impl StateBackend for FsStateBackend {
    type Backend<K: StateKey> = HeapKeyedStateBackend<K>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn create_keyed_backend<K: StateKey>(
        &self,
        params: KeyedBackendParams,
    ) -> Result<HeapKeyedStateBackend<K>> {
        HeapKeyedStateBackend::open(params, self.options())
    }
}
