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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapBackendOptions {
    /// The backend's `NAME` recorded in snapshots.
    pub name: &'static str,
    /// Where snapshots go.
    pub storage: HeapSnapshotStorage,
    /// Compression of snapshot blocks.
    pub compression: Compression,
}
