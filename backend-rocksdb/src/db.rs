//! One RocksDB instance in its own local working directory, and the options every
//! instance of a factory shares (block cache, write-buffer manager).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use cornerstone_backend_api::{Error, Result};
use parking_lot::Mutex;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, LogLevel, MemtableFactory,
    MergeOperands, MultiThreaded, Options, ReadOptions, SliceTransform, WriteBufferManager,
    WriteOptions,
};
use tempfile::TempDir;

use crate::error::{from_rocksdb, local_io};
use crate::keys::{key_part_1, key_part_2};
use crate::ttl::{TtlCompaction, TtlFilterFactory, TtlSlot};

/// The RocksDB handle type: column families can be created through `&self`.
pub(crate) type Db = rocksdb::DBWithThreadMode<MultiThreaded>;

/// The name of the merge operator of list state.
const LIST_MERGE: &str = "cornerstone-list-append";

/// Block compression of the SST files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RocksDbCompression {
    /// No compression.
    None,
    /// LZ4 (the default: fast, like Flink's Snappy default).
    #[default]
    Lz4,
    /// Zstandard.
    Zstd,
}

impl RocksDbCompression {
    fn to_rocksdb(self) -> DBCompressionType {
        match self {
            RocksDbCompression::None => DBCompressionType::None,
            RocksDbCompression::Lz4 => DBCompressionType::Lz4,
            RocksDbCompression::Zstd => DBCompressionType::Zstd,
        }
    }
}

/// Memory and engine settings shared by every instance of one factory.
#[derive(Clone)]
pub(crate) struct Resources {
    pub(crate) cache: Cache,
    pub(crate) write_buffer_manager: Option<WriteBufferManager>,
    pub(crate) write_buffer_size: usize,
    pub(crate) memtable_hash_buckets: usize,
    pub(crate) compression: RocksDbCompression,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("write_buffer_size", &self.write_buffer_size)
            .field("memtable_hash_buckets", &self.memtable_hash_buckets)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl Resources {
    /// A block cache of `block_cache_size` bytes; memtables of all instances limited to
    /// `write_buffer_limit` bytes (0: unlimited), charged to the cache; memtables hashed
    /// into `memtable_hash_buckets` buckets by key (0: RocksDB's plain skiplist).
    pub(crate) fn new(
        block_cache_size: usize,
        write_buffer_limit: usize,
        write_buffer_size: usize,
        memtable_hash_buckets: usize,
        compression: RocksDbCompression,
    ) -> Self {
        let cache = Cache::new_lru_cache(block_cache_size);
        let write_buffer_manager = (write_buffer_limit > 0).then(|| {
            WriteBufferManager::new_write_buffer_manager_with_cache(
                write_buffer_limit,
                false,
                cache.clone(),
            )
        });
        Resources {
            cache,
            write_buffer_manager,
            write_buffer_size,
            memtable_hash_buckets,
            compression,
        }
    }

    /// The options of a database.
    pub(crate) fn db_options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_max_background_jobs(2);
        o.set_log_level(LogLevel::Warn);
        o.set_keep_log_file_num(1);
        o.set_max_log_file_size(1 << 20);
        if let Some(wbm) = &self.write_buffer_manager {
            o.set_write_buffer_manager(wbm);
        }
        if self.memtable_hash_buckets > 0 {
            // Only the plain skiplist takes concurrent inserts; writes to one instance are
            // serialized instead (a subtask writes from one thread anyway).
            o.set_allow_concurrent_memtable_write(false);
        }
        self.apply_cf(&mut o);
        o
    }

    /// The options of the column family of a state, whose keys have a key-group prefix of
    /// `prefix_len` bytes. A TTL state's also filter expired entries in compactions, as
    /// configured in `ttl`.
    ///
    /// With memtable hash buckets, the memtable is a hash of skiplists keyed by the key
    /// group and the key ([`key_part_1`]), so a point access searches the few entries of
    /// its key instead of one skiplist of everything. Iterators then only see the entries
    /// of their seek key's key unless they ask for total order ([`crate::table::Seek`]).
    ///
    /// A timer state's column family keeps the plain skiplist: its reads are seeks across
    /// keys (the first timer of a key group), which a hashed memtable cannot serve.
    pub(crate) fn cf_options(
        &self,
        prefix_len: usize,
        ttl: Option<&TtlSlot>,
        timers: bool,
    ) -> Options {
        let mut o = Options::default();
        self.apply_cf(&mut o);
        if self.memtable_hash_buckets > 0 && !timers {
            let part = if prefix_len == 1 {
                key_part_1
            } else {
                key_part_2
            };
            o.set_prefix_extractor(SliceTransform::create("cornerstone-key", part, None));
            o.set_memtable_factory(MemtableFactory::HashSkipList {
                bucket_count: self.memtable_hash_buckets,
                height: 4,
                branching_factor: 4,
            });
        }
        if let Some(slot) = ttl {
            o.set_compaction_filter_factory(TtlFilterFactory::new(Arc::clone(slot)));
        }
        o
    }

    /// The options of column family `cf`; a TTL state's get a new [`TtlSlot`], kept in
    /// `slots` under the column family's name.
    fn cf_options_with_slot(
        &self,
        prefix_len: usize,
        cf: &CfSpec,
        slots: &mut HashMap<String, TtlSlot>,
    ) -> Options {
        let slot = cf
            .ttl
            .then(|| Arc::clone(slots.entry(cf.name.clone()).or_default()));
        self.cf_options(prefix_len, slot.as_ref(), cf.timers)
    }

    fn apply_cf(&self, o: &mut Options) {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        o.set_block_based_table_factory(&table);
        o.set_compression_type(self.compression.to_rocksdb());
        o.set_write_buffer_size(self.write_buffer_size);
        o.set_merge_operator_associative(LIST_MERGE, list_merge);
    }
}

/// A column family to open: its name, whether it holds a TTL state, whether it holds
/// timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CfSpec {
    pub(crate) name: String,
    pub(crate) ttl: bool,
    pub(crate) timers: bool,
}

impl CfSpec {
    /// The column family `name` of state `meta`.
    pub(crate) fn of(name: String, meta: &cornerstone_backend_api::StateMeta) -> Self {
        CfSpec {
            name,
            ttl: meta.ttl,
            timers: meta.kind == cornerstone_backend_api::StateKind::Timers,
        }
    }
}

/// The write options of state access: no WAL (checkpoints make state durable, as in Flink).
pub(crate) fn write_options() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.disable_wal(true);
    w
}

/// The merge operator of list state: a list is stored as a serialized `Vec` (a big-endian
/// `u64` count, then the elements), so appending adds the counts and concatenates the
/// elements, without knowing their type.
fn list_merge(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut size = 8;
    for part in existing.into_iter().chain(operands.iter()) {
        size += part.len().checked_sub(8)?;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[0; 8]);
    let mut count: u64 = 0;
    for part in existing.into_iter().chain(operands.iter()) {
        let (head, tail) = part.split_at(8);
        let mut n = [0u8; 8];
        n.copy_from_slice(head);
        count = count.checked_add(u64::from_be_bytes(n))?;
        out.extend_from_slice(tail);
    }
    out[..8].copy_from_slice(&count.to_be_bytes());
    Some(out)
}

/// An open database in its own working directory, removed when the instance is dropped
/// (after the database is closed: fields drop in declaration order).
pub(crate) struct Instance {
    pub(crate) db: Db,
    pub(crate) write: WriteOptions,
    pub(crate) read: ReadOptions,
    pub(crate) resources: Resources,
    /// The width of the key-group prefix of the keys.
    prefix_len: usize,
    /// The TTL compaction configuration of each TTL state's column family.
    ttl_slots: Mutex<HashMap<String, TtlSlot>>,
    pub(crate) dir: TempDir,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Creates a new working directory under `root` (creating `root` if needed).
pub(crate) fn working_dir(root: &Path) -> Result<TempDir> {
    std::fs::create_dir_all(root).map_err(|e| local_io("create working directory", root, e))?;
    tempfile::Builder::new()
        .prefix("rocksdb-")
        .tempdir_in(root)
        .map_err(|e| local_io("create working directory", root, e))
}

impl Instance {
    /// Opens (creating if needed) the database at `dir/db` with column families `cfs`,
    /// whose keys have a key-group prefix of `prefix_len` bytes.
    pub(crate) fn open(
        dir: TempDir,
        resources: Resources,
        prefix_len: usize,
        cfs: &[CfSpec],
    ) -> Result<Self> {
        let db_path = dir.path().join("db");
        let mut ttl_slots = HashMap::new();
        let descriptors: Vec<ColumnFamilyDescriptor> = cfs
            .iter()
            .map(|cf| {
                let options = resources.cf_options_with_slot(prefix_len, cf, &mut ttl_slots);
                ColumnFamilyDescriptor::new(&cf.name, options)
            })
            .collect();
        let db = Db::open_cf_descriptors(&resources.db_options(), &db_path, descriptors)
            .map_err(|e| from_rocksdb("open", e).with_context("path", db_path.display()))?;
        Ok(Instance {
            db,
            write: write_options(),
            read: ReadOptions::default(),
            resources,
            prefix_len,
            ttl_slots: Mutex::new(ttl_slots),
            dir,
        })
    }

    /// Creates the column family of `cf` unless it exists.
    pub(crate) fn ensure_cf(&self, cf: &CfSpec) -> Result<()> {
        if self.db.cf_handle(&cf.name).is_none() {
            let options = self.resources.cf_options_with_slot(
                self.prefix_len,
                cf,
                &mut self.ttl_slots.lock(),
            );
            self.db.create_cf(&cf.name, &options).map_err(|e| {
                from_rocksdb("create column family", e).with_context("column_family", &cf.name)
            })?;
        }
        Ok(())
    }

    /// Sets what the compaction filter of TTL column family `name` drops (`None`: nothing).
    pub(crate) fn set_ttl_compaction(&self, name: &str, config: Option<TtlCompaction>) {
        if let Some(slot) = self.ttl_slots.lock().get(name) {
            *slot.write() = config.map(Arc::new);
        }
    }

    /// The handle of column family `name`.
    #[inline]
    pub(crate) fn cf(&self, name: &str) -> Result<std::sync::Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db.cf_handle(name).ok_or_else(|| {
            Error::internal("column family of a registered state is missing")
                .with_context("column_family", name)
        })
    }
}

/// Opens a database read-only (a native checkpoint or a downloaded snapshot): nothing is
/// written or compacted, so no column family needs a memtable layout or a compaction
/// filter.
pub(crate) fn open_read_only(resources: &Resources, path: &Path, cfs: &[String]) -> Result<Db> {
    let descriptors = cfs.iter().map(|name| {
        let mut o = Options::default();
        resources.apply_cf(&mut o);
        ColumnFamilyDescriptor::new(name, o)
    });
    Db::open_cf_descriptors_read_only(&resources.db_options(), path, descriptors, false)
        .map_err(|e| from_rocksdb("open read-only", e).with_context("path", path.display()))
}
