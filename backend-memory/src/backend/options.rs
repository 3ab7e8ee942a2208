//! The options of heap backends: their name, where snapshots go, block compression.

use cornerstone_backend_api::spi::keyed_format::Compression;

/// The name of the memory backend, used in logs, metadata and CLI flags.
pub const NAME: &str = "memory";

/// The default cap of one inline snapshot stream: 5 MiB, as Flink's `MemoryStateBackend`.
pub const DEFAULT_MAX_STATE_SIZE: usize = 5 * 1024 * 1024;

/// Where a heap backend's snapshots go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeapSnapshotStorage {
    /// Inline bytes in `_metadata`, each snapshot stream capped (the memory backend).
    Inline {
        /// The cap in bytes.
        max_state_size: usize,
    },
    /// Files written through the checkpoint's stream factory.
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
}

impl HeapBackendOptions {
    /// Options of a backend named `name` (recorded in its snapshots and checked on restore)
    /// whose snapshots go to `storage`, uncompressed.
    pub fn new(name: &'static str, storage: HeapSnapshotStorage) -> Self {
        HeapBackendOptions {
            name,
            storage,
            compression: Compression::None,
        }
    }

    /// Compresses snapshot blocks with `compression`.
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
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
