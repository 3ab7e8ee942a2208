//! The RocksDB keyed backend: registration of states (a column family each), the
//! synchronous phase of snapshots, checkpoint notifications.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use cornerstone_backend_api::keygroup::KeyGroupAssigner;
use cornerstone_backend_api::migration::{Migration, Migrations, resolve};
use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::spi::table::{
    ListTable, MapTable, SnapshotFilter, TableOptions, ValueTable,
};
use cornerstone_backend_api::timer::{TimerQueue, check_queue_meta};
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointStreamFactory, CheckpointableBackend, Error, ErrorKind,
    IncrementalStateHandle, KeyGroupRange, KeyedBackendParams, KeyedStateBackend, KeyedStateHandle,
    Result, SharedClock, StateKey, StateKind, StateMeta, StateReader, StateTtlConfig, StateValue,
};
use parking_lot::Mutex;

use crate::config::{NAME, RocksDbConfig};
use crate::db::{CfSpec, Instance, Resources};
use crate::error::from_rocksdb;
use crate::keys::prefix_len;
use crate::restore::restore;
use crate::snapshot::{FullSnapshot, IncrementalSnapshot, SnapshotState, Uploads};
use crate::states::{Filtered, RawFilter, StateEntry, cf_name};
use crate::table::{Core, RocksListTable, RocksMapTable, RocksValueTable, Seek, scan};
use crate::timers::RocksTimerQueue;
use crate::ttl::{Layout, TtlCompaction};

/// The size of the write batches that rewrite a migrated state.
const MIGRATION_BATCH_BYTES: usize = 4 << 20;

/// The keyed backend of the RocksDB state backend, for keys `K`.
///
/// Every state is a column family of one RocksDB instance in a local working directory,
/// removed when the backend (and every state handle and snapshot using it) is dropped.
pub struct RocksDbKeyedStateBackend<K> {
    inst: Arc<Instance>,
    incremental: bool,
    snapshot_compression: Compression,
    key_groups: KeyGroupAssigner,
    range: KeyGroupRange,
    prefix_len: usize,
    clock: SharedClock,
    backend_id: String,
    states: Mutex<BTreeMap<String, StateEntry>>,
    /// The registered timer queues: each keeps its key groups' first timers in memory, so
    /// registering again returns the same queue.
    timer_queues: Mutex<BTreeMap<String, Arc<RocksTimerQueue>>>,
    uploads: Arc<Mutex<Uploads>>,
    _key: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for RocksDbKeyedStateBackend<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbKeyedStateBackend")
            .field("dir", &self.inst.dir.path())
            .field("range", &self.range)
            .field("max_parallelism", &self.key_groups.max_parallelism())
            .field("incremental", &self.incremental)
            .field("states", &self.states.lock().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Rewrites an incremental (native) snapshot in the canonical key-group format: restores it
/// into a working directory under `config.working_dir` (with the key type it recorded) and
/// writes that as a full snapshot through `streams`. See
/// [`RocksDbStateBackend::canonical_snapshot`](crate::RocksDbStateBackend::canonical_snapshot).
pub(crate) fn canonical_snapshot(
    config: &RocksDbConfig,
    resources: Resources,
    handle: &IncrementalStateHandle,
    reader: Option<Arc<dyn StateReader>>,
    streams: &dyn CheckpointStreamFactory,
) -> Result<KeyedStateHandle> {
    let what = cornerstone_backend_api::spi::format::describe(&handle.meta);
    let meta = cornerstone_backend_api::spi::format::incremental::decode(
        &cornerstone_backend_api::stream::read_stream(&handle.meta, reader.as_deref())?,
        &what,
    )?;
    let params = KeyedBackendParams::new(meta.max_parallelism, handle.range)
        .restore(vec![KeyedStateHandle::Incremental(handle.clone())], reader);
    params.validate()?;
    let (inst, states) = restore(&params, &config.working_dir, resources, &meta.key_type)?;
    let inst = Arc::new(inst);
    let dir = tempfile::Builder::new()
        .prefix(&format!("canonical-{}-", handle.checkpoint_id))
        .tempdir_in(inst.dir.path())
        .map_err(|e| crate::error::local_io("create snapshot directory", inst.dir.path(), e))?;
    let path = dir.path().join("db");
    rocksdb::checkpoint::Checkpoint::new(&inst.db)
        .and_then(|c| c.create_checkpoint(&path))
        .map_err(|e| {
            from_rocksdb("create native checkpoint", e).with_context("path", path.display())
        })?;
    let snapshot = FullSnapshot {
        state: SnapshotState {
            checkpoint_id: handle.checkpoint_id,
            inst,
            _dir: dir,
            path,
            range: handle.range,
            max_parallelism: meta.max_parallelism,
            prefix_len: prefix_len(meta.max_parallelism),
            key_type: meta.key_type.into(),
            states: states.into_values().collect(),
        },
        now: 0,
        compression: Compression::None,
    };
    let written = Box::new(snapshot).write(streams)?;
    written.keyed.into_iter().next().ok_or_else(|| {
        Error::internal("a full snapshot wrote no keyed handle").with_context("path", what)
    })
}

impl<K: StateKey> RocksDbKeyedStateBackend<K> {
    /// Creates the backend in a new working directory under `config.working_dir` and
    /// restores the handles of `params` (full or incremental, of any key-group ranges).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for bad parameters, handles of another key type or max
    /// parallelism, or handles that disagree about a state; read, decoding and RocksDB
    /// errors naming the file.
    pub(crate) fn open(
        params: KeyedBackendParams,
        config: &RocksDbConfig,
        resources: Resources,
    ) -> Result<Self> {
        params.validate()?;
        let (inst, states) = restore(&params, &config.working_dir, resources, &K::type_identity())?;
        Ok(RocksDbKeyedStateBackend {
            inst: Arc::new(inst),
            incremental: config.incremental,
            snapshot_compression: config.snapshot_compression,
            key_groups: KeyGroupAssigner::new(params.max_parallelism)?,
            range: params.key_group_range,
            prefix_len: prefix_len(params.max_parallelism),
            clock: params.clock,
            backend_id: uuid::Uuid::new_v4().to_string(),
            states: Mutex::new(states),
            timer_queues: Mutex::new(BTreeMap::new()),
            uploads: Arc::new(Mutex::new(Uploads::default())),
            _key: PhantomData,
        })
    }

    /// The local working directory of this instance.
    pub fn working_dir(&self) -> &std::path::Path {
        self.inst.dir.path()
    }

    /// The id of this instance, recorded in its incremental handles.
    pub fn backend_id(&self) -> &str {
        &self.backend_id
    }

    /// Flushes and compacts every state's column family fully.
    ///
    /// Compactions run in the background on their own; this forces one over all the data,
    /// which drops the expired entries of states whose TTL asks for
    /// [cleanup in compactions](cornerstone_backend_api::StateTtlConfig::cleanup_in_rocksdb_compaction)
    /// and reclaims the space of removed entries (before a savepoint, or in tests).
    ///
    /// # Errors
    /// RocksDB's error, naming the column family.
    pub fn compact(&self) -> Result<()> {
        self.flush_timers()?;
        let cfs: Vec<String> = self.states.lock().values().map(|e| e.cf.clone()).collect();
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in &cfs {
            let cf = self.inst.cf(name)?;
            self.inst
                .db
                .flush_cf(&cf)
                .map_err(|e| from_rocksdb("flush", e).with_context("column_family", name))?;
            self.inst
                .db
                .compact_range_cf_opt(&cf, None::<&[u8]>, None::<&[u8]>, &options);
        }
        Ok(())
    }

    /// The synchronous phase of a snapshot: a native checkpoint of the database, written
    /// as an incremental snapshot (`incremental`) or as the canonical full format.
    fn take_snapshot(
        &self,
        checkpoint_id: CheckpointId,
        incremental: bool,
    ) -> Result<Box<dyn AsyncSnapshot>> {
        let states: Vec<StateEntry> = self.states.lock().values().cloned().collect();
        if states.len() > usize::from(u16::MAX) {
            return Err(
                Error::new(ErrorKind::LimitExceeded, "too many states in one backend")
                    .with_context("states", states.len()),
            );
        }
        self.flush_timers()?;
        // A native checkpoint: flushes the memtables and hard-links the SST files.
        let dir = tempfile::Builder::new()
            .prefix(&format!("snapshot-{checkpoint_id}-"))
            .tempdir_in(self.inst.dir.path())
            .map_err(|e| {
                crate::error::local_io("create snapshot directory", self.inst.dir.path(), e)
            })?;
        let path = dir.path().join("db");
        rocksdb::checkpoint::Checkpoint::new(&self.inst.db)
            .and_then(|c| c.create_checkpoint(&path))
            .map_err(|e| {
                from_rocksdb("create native checkpoint", e)
                    .with_context("checkpoint", checkpoint_id)
                    .with_context("path", path.display())
            })?;
        let state = SnapshotState {
            checkpoint_id,
            inst: Arc::clone(&self.inst),
            _dir: dir,
            path,
            range: self.range,
            max_parallelism: self.key_groups.max_parallelism(),
            prefix_len: self.prefix_len,
            key_type: K::type_identity(),
            states,
        };
        if incremental {
            let confirmed = {
                let mut uploads = self.uploads.lock();
                uploads.taken.insert(checkpoint_id);
                uploads.confirmed.clone()
            };
            Ok(Box::new(IncrementalSnapshot {
                state,
                backend_id: self.backend_id.clone(),
                confirmed,
                uploads: Arc::clone(&self.uploads),
            }))
        } else {
            Ok(Box::new(FullSnapshot {
                state,
                now: self.clock.now_millis(),
                compression: self.snapshot_compression,
            }))
        }
    }

    /// Applies the timer changes each timer queue holds in its write batch, so that what
    /// reads the database as a whole (a native checkpoint, a compaction) sees them.
    fn flush_timers(&self) -> Result<()> {
        for queue in self.timer_queues.lock().values() {
            queue.flush()?;
        }
        Ok(())
    }

    /// Rewrites every value of column family `cf` through `migration` (each element of a
    /// `list`), in write batches of about [`MIGRATION_BATCH_BYTES`]. The iterator reads the
    /// database as it was when the rewrite began, so the writes do not disturb it.
    fn migrate(&self, cf: &str, migration: &Migration, list: bool) -> Result<()> {
        let handle = self.inst.cf(cf)?;
        let mut batch = rocksdb::WriteBatch::default();
        let write = |batch: &mut rocksdb::WriteBatch| -> Result<()> {
            self.inst
                .db
                .write_opt(std::mem::take(batch), &self.inst.write)
                .map_err(|e| {
                    from_rocksdb("write migrated values", e).with_context("column_family", cf)
                })
        };
        scan(
            &self.inst.db,
            &handle,
            &[],
            None,
            Seek::Total,
            &mut |k, v| {
                let migrated = if list {
                    migration.list(v)?
                } else {
                    migration.value(v)?
                };
                batch.put_cf(&handle, k, migrated);
                if batch.size_in_bytes() >= MIGRATION_BATCH_BYTES {
                    write(&mut batch)?;
                }
                Ok(true)
            },
        )?;
        if !batch.is_empty() {
            write(&mut batch)?;
        }
        Ok(())
    }

    /// Registers (or finds) the state of `meta`, creating its column family. The first
    /// registration of a restored state migrates its values when they were written as
    /// another type (through `migrations`), and sets the snapshot filter and the
    /// compaction filter of a TTL state (stored with the layout `layout`).
    fn register(
        &self,
        meta: StateMeta,
        migrations: &Migrations,
        filter: Option<RawFilter>,
        ttl: Option<&StateTtlConfig>,
        layout: Layout,
    ) -> Result<Core> {
        let mut states = self.states.lock();
        let compaction = |cf: &str| {
            let config =
                ttl.and_then(|ttl| TtlCompaction::new(ttl, Arc::clone(&self.clock), layout));
            self.inst.set_ttl_compaction(cf, config);
        };
        let cf = match states.get_mut(&meta.name) {
            Some(entry) => {
                if entry.registered {
                    entry.meta.check_compatible(&meta)?;
                } else {
                    // Restored values of another type are rewritten once, in place.
                    if let Some(migration) = resolve(&entry.meta, &meta, migrations)? {
                        let list = meta.kind == StateKind::List;
                        self.migrate(&entry.cf, &migration, list)?;
                        entry.meta = meta.clone();
                    }
                    entry.registered = true;
                    compaction(&entry.cf);
                    entry.filter = filter;
                }
                entry.cf.clone()
            }
            None => {
                let cf = cf_name(&meta.name);
                self.inst.ensure_cf(&CfSpec::of(cf.clone(), &meta))?;
                compaction(&cf);
                states.insert(
                    meta.name.clone(),
                    StateEntry {
                        meta: meta.clone(),
                        cf: cf.clone(),
                        filter,
                        registered: true,
                    },
                );
                cf
            }
        };
        Ok(Core {
            inst: Arc::clone(&self.inst),
            cf,
            state: meta.name.as_str().into(),
            prefix_len: self.prefix_len,
            key_groups: self.key_groups,
            range: self.range,
        })
    }
}

fn value_filter<V: StateValue>(filter: Option<SnapshotFilter<V>>) -> Option<RawFilter> {
    filter.map(|f| -> RawFilter {
        Arc::new(move |bytes: &[u8], now| {
            let v: V = codec::decode(bytes)?;
            Ok(if f(&v, now) {
                Filtered::Keep
            } else {
                Filtered::Drop
            })
        })
    })
}

/// The encoded length of the `T` at the start of `bytes`: how the compaction filter walks
/// a stored list.
fn element_len<T: StateValue>(bytes: &[u8]) -> Option<usize> {
    codec::decode_prefix::<T>(bytes).ok().map(|(_, len)| len)
}

fn list_filter<T: StateValue>(filter: Option<SnapshotFilter<T>>) -> Option<RawFilter> {
    filter.map(|f| -> RawFilter {
        Arc::new(move |bytes: &[u8], now| {
            let list: Vec<T> = codec::decode(bytes)?;
            let live: Vec<&T> = list.iter().filter(|v| f(v, now)).collect();
            Ok(if live.len() == list.len() {
                Filtered::Keep
            } else if live.is_empty() {
                Filtered::Drop
            } else {
                Filtered::Replace(codec::encode(&live)?)
            })
        })
    })
}

impl<K: StateKey> CheckpointableBackend for RocksDbKeyedStateBackend<K> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn max_parallelism(&self) -> u32 {
        self.key_groups.max_parallelism()
    }

    fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    fn registered_states(&self) -> Vec<StateMeta> {
        self.states
            .lock()
            .values()
            .map(|e| e.meta.clone())
            .collect()
    }

    fn snapshot(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>> {
        self.take_snapshot(checkpoint_id, self.incremental)
    }

    /// A full snapshot even when checkpoints are incremental: the canonical format every
    /// backend restores.
    fn savepoint(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>> {
        self.take_snapshot(checkpoint_id, false)
    }

    fn notify_checkpoint_complete(&self, checkpoint_id: CheckpointId) -> Result<()> {
        let mut uploads = self.uploads.lock();
        // Late (a newer checkpoint took the files confirmed before, uploading this one's
        // again): the store deletes this one's uploads when the newer completes, so the
        // next checkpoint keeps reusing the files confirmed before.
        let late = uploads
            .taken
            .last()
            .is_some_and(|last| *last > checkpoint_id);
        uploads.taken.retain(|id| *id > checkpoint_id);
        if late {
            uploads.pending.retain(|id, _| *id > checkpoint_id);
            return Ok(());
        }
        if let Some(files) = uploads.pending.remove(&checkpoint_id) {
            uploads.confirmed = files
                .into_iter()
                .map(|f| (f.local_name, f.handle))
                .collect();
        }
        // Earlier checkpoints in flight are subsumed.
        uploads.pending.retain(|id, _| *id > checkpoint_id);
        Ok(())
    }

    fn notify_checkpoint_aborted(&self, checkpoint_id: CheckpointId) -> Result<()> {
        let mut uploads = self.uploads.lock();
        uploads.pending.remove(&checkpoint_id);
        uploads.taken.remove(&checkpoint_id);
        Ok(())
    }
}

impl<K: StateKey> KeyedStateBackend<K> for RocksDbKeyedStateBackend<K> {
    fn value_table<V: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<V>,
    ) -> Result<Arc<dyn ValueTable<K, V, N>>> {
        let filter = value_filter(options.snapshot_filter);
        let core = self.register(
            meta,
            &options.migrations,
            filter,
            options.ttl.as_ref(),
            Layout::Value,
        )?;
        Ok(Arc::new(RocksValueTable::<K, V, N> {
            core,
            _types: PhantomData,
        }))
    }

    fn list_table<T: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<T>,
    ) -> Result<Arc<dyn ListTable<K, T, N>>> {
        let filter = list_filter(options.snapshot_filter);
        let layout = Layout::List(element_len::<T>);
        let core = self.register(
            meta,
            &options.migrations,
            filter,
            options.ttl.as_ref(),
            layout,
        )?;
        Ok(Arc::new(RocksListTable::<K, T, N> {
            core,
            _types: PhantomData,
        }))
    }

    fn map_table<UK: StateKey, UV: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<UV>,
    ) -> Result<Arc<dyn MapTable<K, UK, UV, N>>> {
        let filter = value_filter(options.snapshot_filter);
        let core = self.register(
            meta,
            &options.migrations,
            filter,
            options.ttl.as_ref(),
            Layout::Value,
        )?;
        Ok(Arc::new(RocksMapTable::<K, UK, UV, N> {
            core,
            _types: PhantomData,
        }))
    }

    fn timer_queue(&self, meta: StateMeta) -> Result<Arc<dyn TimerQueue>> {
        check_queue_meta(&meta)?;
        let mut queues = self.timer_queues.lock();
        let name = meta.name.clone();
        let core = self.register(meta, &Migrations::default(), None, None, Layout::Value)?;
        if let Some(queue) = queues.get(&name) {
            return Ok(Arc::clone(queue) as Arc<dyn TimerQueue>);
        }
        let queue = Arc::new(RocksTimerQueue::open(core)?);
        queues.insert(name, Arc::clone(&queue));
        Ok(queue)
    }

    fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }
}
