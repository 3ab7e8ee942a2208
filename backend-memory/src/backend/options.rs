//! The options of heap backends: their name, where snapshots go, block compression.

use cornerstone_backend_api::spi::keyed_format::Compression;

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
        }
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
