//! The options of heap backends: their name, where snapshots go, block compression.

use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::{ChangelogSegment, ChangelogStateHandle};

use crate::access::HeapThreading;

/// The name of the memory backend, used in logs, metadata and CLI flags.
pub const NAME: &str = "memory";

/// The default cap of one inline snapshot stream: 5 MiB, as Flink's `MemoryStateBackend`.
pub const DEFAULT_MAX_STATE_SIZE: usize = 5 * 1024 * 1024;

/// Where a heap backend's snapshots go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeapSnapshotStorage {
    /// Inline bytes in `_metadata`, the snapshot capped (the memory backend): one stream
    /// from the checkpoint's stream factory's
    /// [`create_inline`](cornerstone_backend_api::CheckpointStreamFactory::create_inline).
    Inline {
        /// The cap in bytes.
        max_state_size: usize,
    },
    /// Streams from the checkpoint's stream factory's
    /// [`create`](cornerstone_backend_api::CheckpointStreamFactory::create) (files, or inline
    /// below the storage's own threshold), several parts written in parallel.
    Streams,
}

/// Changelog mode of a heap backend (incremental checkpoints): what changed since the last
/// checkpoint is recorded per key group, a checkpoint uploads only those changes (a delta)
/// into the shared scope, and a full snapshot (a materialization) starts a new chain now
/// and then.
///
/// A checkpoint materializes when there is no confirmed chain to extend (the first one,
/// after a restore, or while none has been confirmed complete), when the chain already
/// holds [`max_deltas`](Self::max_deltas) deltas, or when its deltas add up to more than
/// [`max_delta_percent`](Self::max_delta_percent) of its base's bytes; a restore reads the
/// base and applies at most that many deltas.
///
/// ```
/// use cornerstone_backend_memory::ChangelogOptions;
///
/// let options = ChangelogOptions::new().max_deltas(20).max_delta_percent(100);
/// assert_eq!((options.deltas(), options.delta_percent()), (20, 100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangelogOptions {
    max_deltas: u32,
    max_delta_percent: u32,
}

impl Default for ChangelogOptions {
    fn default() -> Self {
        ChangelogOptions {
            max_deltas: 10,
            max_delta_percent: 50,
        }
    }
}

impl ChangelogOptions {
    /// At most 10 deltas per chain, whose bytes stay under 50% of the base's.
    pub fn new() -> Self {
        Self::default()
    }

    /// Materializes once a chain holds `deltas` deltas (at least 1).
    #[must_use]
    pub fn max_deltas(mut self, deltas: u32) -> Self {
        self.max_deltas = deltas.max(1);
        self
    }

    /// Materializes once a chain's deltas add up to more than `percent` of its base's bytes.
    #[must_use]
    pub fn max_delta_percent(mut self, percent: u32) -> Self {
        self.max_delta_percent = percent;
        self
    }

    /// The most deltas of a chain.
    pub fn deltas(&self) -> u32 {
        self.max_deltas
    }

    /// The most bytes of a chain's deltas, in percent of its base's.
    pub fn delta_percent(&self) -> u32 {
        self.max_delta_percent
    }

    /// Whether a checkpoint after `chain` materializes instead of extending it.
    pub(crate) fn materializes_after(&self, chain: &ChangelogStateHandle) -> bool {
        let base = chain.base.size();
        let deltas: u64 = chain.deltas.iter().map(ChangelogSegment::size).sum();
        chain.deltas.len() >= self.max_deltas as usize
            || u128::from(deltas) * 100 > u128::from(base) * u128::from(self.max_delta_percent)
    }
}

/// How a heap backend is configured: its name in metadata, where snapshots go, block
/// compression.
///
/// The memory and fs backends build their own options ([`MemoryStateBackend::options`],
/// `FsStateBackend::options`); an engine with a heap backend of its own builds them here.
///
/// ```
/// use cornerstone_backend_api::spi::keyed_format::Compression;
/// use cornerstone_backend_memory::{HeapBackendOptions, HeapSnapshotStorage};
///
/// let options = HeapBackendOptions::new("my-heap", HeapSnapshotStorage::Streams)
///     .with_compression(Compression::Zstd(3));
/// assert_eq!(options.name(), "my-heap");
/// assert_eq!(options.storage(), HeapSnapshotStorage::Streams);
/// assert_eq!(options.compression(), Compression::Zstd(3));
/// ```
///
/// [`MemoryStateBackend::options`]: crate::MemoryStateBackend::options
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapBackendOptions {
    pub(crate) name: &'static str,
    pub(crate) storage: HeapSnapshotStorage,
    pub(crate) compression: Compression,
    pub(crate) threading: HeapThreading,
    pub(crate) io_threads: usize,
    pub(crate) changelog: Option<ChangelogOptions>,
}

impl HeapBackendOptions {
    /// Options of a backend named `name` (recorded in its snapshots and checked on restore)
    /// whose snapshots go to `storage`, uncompressed.
    pub fn new(name: &'static str, storage: HeapSnapshotStorage) -> Self {
        HeapBackendOptions {
            name,
            storage,
            compression: Compression::None,
            threading: HeapThreading::default(),
            io_threads: std::thread::available_parallelism().map_or(1, usize::from),
            changelog: None,
        }
    }

    /// Turns changelog mode (incremental checkpoints) on. Checkpoints write deltas into
    /// the shared scope, so it needs [`HeapSnapshotStorage::Streams`]: a backend with
    /// inline snapshots refuses it when it opens. Savepoints stay full, self-contained
    /// snapshots.
    #[must_use]
    pub fn with_changelog(mut self, changelog: ChangelogOptions) -> Self {
        self.changelog = Some(changelog);
        self
    }

    /// Changelog mode, when it is on.
    pub fn changelog(&self) -> Option<ChangelogOptions> {
        self.changelog
    }

    /// Compresses snapshot blocks with `compression`.
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets which threads may use the backend's states.
    #[must_use]
    pub fn with_threading(mut self, threading: HeapThreading) -> Self {
        self.threading = threading;
        self
    }

    /// Which threads may use the backend's states.
    pub fn threading(&self) -> HeapThreading {
        self.threading
    }

    /// Sets how many threads the asynchronous phase of a snapshot and a restore may use, at
    /// least 1: a snapshot to streams writes a part of the key groups per thread, each to
    /// its own stream (a part holds at least 256 Ki entries, so small snapshots stay one
    /// stream; inline snapshots are always one), and a restore reads a large handle in
    /// parts of at least 4 MiB, each by its own thread.
    #[must_use]
    pub fn with_io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads.max(1);
        self
    }

    /// The most threads of a snapshot's asynchronous phase or of a restore (default: the
    /// machine's cores).
    pub fn io_threads(&self) -> usize {
        self.io_threads
    }

    /// The backend's name recorded in its snapshots.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where snapshots go.
    pub fn storage(&self) -> HeapSnapshotStorage {
        self.storage
    }

    /// The compression of snapshot blocks.
    pub fn compression(&self) -> Compression {
        self.compression
    }
}
