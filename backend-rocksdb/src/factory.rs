//! The factory of RocksDB keyed backends (its options are in `config.rs`).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::{
    CheckpointStreamFactory, IncrementalStateHandle, KeyedBackendParams, KeyedStateHandle, Result,
    StateBackend, StateKey, StateReader,
};

use crate::backend::RocksDbKeyedStateBackend;
use crate::config::{NAME, RocksDbConfig};
use crate::db::{Resources, RocksDbCompression};

/// The RocksDB state backend (Flink's `EmbeddedRocksDBStateBackend`): working state in
/// one RocksDB instance per keyed backend, on local disk, with a column family per state;
/// incremental checkpoints by default.
///
/// Clones share the block cache and the write-buffer manager, so memory is bounded per
/// factory, whatever the number of instances; a setter gives the factory new ones.
#[derive(Clone)]
pub struct RocksDbStateBackend {
    config: RocksDbConfig,
    resources: Arc<OnceLock<Resources>>,
}

impl fmt::Debug for RocksDbStateBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbStateBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for RocksDbStateBackend {
    fn default() -> Self {
        Self::with_config(RocksDbConfig::default())
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self.resources = Arc::new(OnceLock::new());
            self
        }
    };
}

impl RocksDbStateBackend {
    /// A backend with the default options, working under the system's temp directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend with `config`.
    pub fn with_config(config: RocksDbConfig) -> Self {
        RocksDbStateBackend {
            config,
            resources: Arc::new(OnceLock::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RocksDbConfig {
        &self.config
    }

    /// Sets the root of the working directories.
    #[must_use]
    pub fn working_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.config.working_dir = dir.as_ref().to_path_buf();
        self
    }

    setter!(
        /// Switches incremental checkpoints on (the default) or off.
        incremental: bool
    );
    setter!(
        /// Sets the size of the shared block cache in bytes.
        block_cache_size: usize
    );
    setter!(
        /// Sets the limit of all memtables in bytes (0: none).
        write_buffer_manager_limit: usize
    );
    setter!(
        /// Sets the memtable size of a column family in bytes.
        write_buffer_size: usize
    );
    setter!(
        /// Sets the number of hash buckets of a memtable (0, the default: a plain
        /// skiplist memtable); see [`RocksDbConfig::memtable_hash_buckets`].
        memtable_hash_buckets: usize
    );
    setter!(
        /// Sets the compression of SST blocks.
        compression: RocksDbCompression
    );
    setter!(
        /// Sets the compression of full snapshots.
        snapshot_compression: Compression
    );

    pub(crate) fn resources(&self) -> Resources {
        self.resources
            .get_or_init(|| {
                Resources::new(
                    self.config.block_cache_size,
                    self.config.write_buffer_manager_limit,
                    self.config.write_buffer_size,
                    self.config.memtable_hash_buckets,
                    self.config.compression,
                )
            })
            .clone()
    }

    /// Rewrites the incremental (native) snapshot `handle` of one subtask in the canonical
    /// key-group format that full snapshots and savepoints use, through `streams`: for
    /// tools that read state without the job's types (`cornerstone dump`). The snapshot is
    /// restored into a working directory of this factory (removed afterwards) with the key
    /// type it recorded; `reader` reads its files.
    ///
    /// # Errors
    /// Read, decoding and RocksDB errors of the restore, naming the file; stream errors.
    pub fn canonical_snapshot(
        &self,
        handle: &IncrementalStateHandle,
        reader: Option<Arc<dyn StateReader>>,
        streams: &dyn CheckpointStreamFactory,
    ) -> Result<KeyedStateHandle> {
        crate::backend::canonical_snapshot(&self.config, self.resources(), handle, reader, streams)
    }

    /// The database options of the instances (shared cache and write-buffer manager
    /// included), for baselines that use the `rocksdb` crate directly.
    #[cfg(feature = "bench-internals")]
    pub fn db_options(&self) -> rocksdb::Options {
        self.resources().db_options()
    }

    /// The options of a state's column family in a job with `max_parallelism` key groups
    /// (merge operator of list state and memtable layout included).
    #[cfg(feature = "bench-internals")]
    pub fn column_family_options(&self, max_parallelism: u32) -> rocksdb::Options {
        self.resources()
            .cf_options(crate::keys::prefix_len(max_parallelism), None, false)
    }

    /// The write options of state access (no write-ahead log).
    #[cfg(feature = "bench-internals")]
    pub fn write_options() -> rocksdb::WriteOptions {
        crate::db::write_options()
    }
}

impl StateBackend for RocksDbStateBackend {
    type Backend<K: StateKey> = RocksDbKeyedStateBackend<K>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn create_keyed_backend<K: StateKey>(
        &self,
        params: KeyedBackendParams,
    ) -> Result<RocksDbKeyedStateBackend<K>> {
        RocksDbKeyedStateBackend::open(params, &self.config, self.resources())
    }
}
