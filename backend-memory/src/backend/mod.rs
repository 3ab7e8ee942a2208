//! The heap keyed backend and the memory backend factory.

mod options;
mod restore;
mod snapshot;

pub use options::{
    ChangelogOptions, DEFAULT_MAX_STATE_SIZE, HeapBackendOptions, HeapSnapshotStorage, NAME,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use cornerstone_backend_api::keygroup::KeyGroupAssigner;
use cornerstone_backend_api::migration::{Migrations, resolve};
use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::spi::keyed_format::{Compression, Fields};
use cornerstone_backend_api::spi::table::{ListTable, MapTable, TableOptions, ValueTable};
use cornerstone_backend_api::timer::{TimerQueue, check_queue_meta};
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointableBackend, Error, ErrorKind, KeyGroupRange,
    KeyGroupsStateHandle, KeyedBackendParams, KeyedStateBackend, KeyedStateHandle, Result,
    SharedClock, StateBackend, StateKey, StateMeta, StateValue,
};
use hashbrown::HashMap;
use parking_lot::Mutex;

use self::restore::{Fill, Restored, restore_handle};
use self::snapshot::{Chains, HeapSnapshot, Mode, RawCapture};
use crate::access::{Binding, HeapThreading};
use crate::restorable::Restorable;
use crate::table::{
    Captured, GroupMap, HeapListTable, HeapMapTable, HeapTable, HeapValueTable, Registered,
};
use crate::timers::{Group as TimerGroup, HeapTimerQueue, insert_record};

/// The handles a restore reads, in order: full snapshots, and a changelog's base then its
/// deltas.
fn restored_streams(restore: &[KeyedStateHandle]) -> Result<Vec<&KeyGroupsStateHandle>> {
    let mut handles = Vec::new();
    for handle in restore {
        match handle {
            KeyedStateHandle::KeyGroups(h) => handles.push(h),
            KeyedStateHandle::Changelog(h) => {
                handles.extend(h.segments().flat_map(|s| &s.parts));
            }
            KeyedStateHandle::Incremental(h) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "a heap backend cannot restore an incremental snapshot; restore it with the \
                     backend that wrote it, or take a savepoint (full snapshot) first",
                )
                .with_context("backend", &h.backend_id));
            }
        }
    }
    Ok(handles)
}

/// The memory state backend: working state as typed objects on the heap, snapshots inline
/// in checkpoint metadata, each capped at `max_state_size` (Flink's `MemoryStateBackend`,
/// i.e. `HashMapStateBackend` with `JobManagerCheckpointStorage`).
///
/// Use it for tests, development and jobs with little state; the filesystem backend is the
/// way out when snapshots outgrow the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStateBackend {
    max_state_size: usize,
    compression: Compression,
    threading: HeapThreading,
}

impl Default for MemoryStateBackend {
    fn default() -> Self {
        MemoryStateBackend {
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            compression: Compression::None,
            threading: HeapThreading::default(),
        }
    }
}

impl MemoryStateBackend {
    /// A memory backend with the default 5 MiB cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the cap of one snapshot stream, in bytes.
    #[must_use]
    pub fn max_state_size(mut self, bytes: usize) -> Self {
        self.max_state_size = bytes;
        self
    }

    /// Compresses snapshot blocks (which makes more state fit under the cap).
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

    /// The options of the heap backends this factory creates.
    pub fn options(&self) -> HeapBackendOptions {
        HeapBackendOptions::new(
            NAME,
            HeapSnapshotStorage::Inline {
                max_state_size: self.max_state_size,
            },
        )
        .with_compression(self.compression)
        .with_threading(self.threading)
    }
}

impl StateBackend for MemoryStateBackend {
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

struct Entry {
    meta: StateMeta,
    table: Arc<dyn Registered>,
}

/// A keyed backend with typed heap tables, shared by the memory and filesystem backends.
///
/// Every state keeps one hash map per key group behind an `Arc`. The synchronous phase of
/// a snapshot clones those `Arc`s (no copy of the state); the first write to a key group
/// after a snapshot copies that key group only. Restored state stays serialized until its
/// descriptor is registered, which is when types are checked and values decoded.
pub struct HeapKeyedStateBackend<K> {
    options: HeapBackendOptions,
    binding: Binding,
    key_groups: KeyGroupAssigner,
    range: KeyGroupRange,
    clock: SharedClock,
    states: Mutex<BTreeMap<String, Entry>>,
    restored: Mutex<BTreeMap<String, Restored>>,
    /// The changelog chains (changelog mode).
    chains: Option<Arc<Mutex<Chains>>>,
    _key: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for HeapKeyedStateBackend<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapKeyedStateBackend")
            .field("name", &self.options.name)
            .field("range", &self.range)
            .field("max_parallelism", &self.key_groups.max_parallelism())
            .field("states", &self.states.lock().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<K: StateKey> HeapKeyedStateBackend<K> {
    /// Creates the backend and restores the handles of `params`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for bad parameters or handles of two incompatible
    /// versions of a state; [`ErrorKind::Unsupported`] for incremental (RocksDB) handles;
    /// read and decoding errors naming the file and key group.
    pub fn open(params: KeyedBackendParams, options: HeapBackendOptions) -> Result<Self> {
        params.validate()?;
        if options.changelog.is_some()
            && matches!(options.storage, HeapSnapshotStorage::Inline { .. })
        {
            return Err(Error::invalid_input(
                "changelog mode writes deltas into the shared scope and needs snapshot streams, \
                 not inline snapshots",
            )
            .with_context("backend", options.name));
        }
        let range = params.key_group_range;
        let mut restored: BTreeMap<String, Restored> = BTreeMap::new();
        // The state names the restored snapshots hold, before renames and drops.
        let mut stored = BTreeSet::new();
        for handle in restored_streams(&params.restore)? {
            restore_handle(
                handle,
                &params,
                &K::type_identity(),
                options.io_threads,
                &mut restored,
                &mut stored,
            )?;
        }
        if !stored.is_empty() {
            params.state_mapping.check_used(&stored)?;
        }
        Ok(HeapKeyedStateBackend {
            options,
            binding: Binding::here(options.threading),
            key_groups: KeyGroupAssigner::new(params.max_parallelism)?,
            range,
            clock: params.clock,
            states: Mutex::new(BTreeMap::new()),
            restored: Mutex::new(restored),
            // A restored chain is not extended: the first checkpoint materializes.
            chains: options.changelog.map(|_| Arc::default()),
            _key: PhantomData,
        })
    }

    /// The changes recorded in changelog mode and not yet in a checkpoint confirmed
    /// complete: (key, namespace)s of tables and timers, each counted once per checkpoint
    /// that sealed it. Each costs about the size of its key and namespace plus a hash-table
    /// slot until it is confirmed. `0` when changelog mode is off.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when a state is used from another thread than its owner.
    pub fn pending_changes(&self) -> Result<usize> {
        self.tables().iter().map(|t| t.pending_changes()).sum()
    }

    /// Every registered table (taken out of the lock, which their calls do not hold).
    fn tables(&self) -> Vec<Arc<dyn Registered>> {
        self.states
            .lock()
            .values()
            .map(|e| Arc::clone(&e.table))
            .collect()
    }

    fn take_snapshot(
        &self,
        checkpoint_id: CheckpointId,
        changelog: bool,
    ) -> Result<Box<dyn AsyncSnapshot>> {
        let chains = self.chains.as_ref().filter(|_| changelog);
        let mut states: Vec<(StateMeta, Box<dyn Captured>)> = self
            .states
            .lock()
            .values()
            .map(|e| {
                let captured = match chains {
                    Some(_) => e.table.capture_changes(checkpoint_id)?,
                    None => e.table.capture()?,
                };
                Ok((e.meta.clone(), captured))
            })
            .collect::<Result<_>>()?;
        let restored = self.restored.lock();
        for r in restored.values() {
            let captured = RawCapture(Arc::clone(&r.groups), r.meta.kind);
            states.push((r.meta.clone(), Box::new(captured)));
        }
        drop(restored);
        if states.len() > usize::from(u16::MAX) {
            return Err(
                Error::new(ErrorKind::LimitExceeded, "too many states in one backend")
                    .with_context("states", states.len()),
            );
        }
        states.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mode = match (chains, self.options.changelog) {
            (Some(chains), Some(options)) => {
                let mut locked = chains.lock();
                locked.taken.insert(checkpoint_id);
                let over = if locked.materialize {
                    None
                } else {
                    locked
                        .confirmed
                        .clone()
                        .filter(|chain| !options.materializes_after(chain))
                };
                Mode::Changelog {
                    over,
                    chains: Arc::clone(chains),
                }
            }
            _ => Mode::Full,
        };
        Ok(Box::new(HeapSnapshot {
            checkpoint_id,
            options: self.options,
            range: self.range,
            now: self.clock.now_millis(),
            key_type: K::type_identity(),
            states,
            mode,
        }))
    }

    /// Registers (or returns) the table of `meta.name`, created by `create` and filled
    /// from restored records by `fill`, key group by key group (their values first
    /// migrated through `migrations` when they were written as another type).
    fn register<T: Registered + Restorable + 'static>(
        &self,
        meta: StateMeta,
        migrations: &Migrations,
        create: impl FnOnce() -> T,
        fill: impl Fn(&mut T::Group, Fields<'_>) -> Result<()> + Sync,
    ) -> Result<Arc<T>> {
        let mut states = self.states.lock();
        if let Some(entry) = states.get(&meta.name) {
            entry.meta.check_compatible(&meta)?;
            return Arc::clone(&entry.table)
                .into_any()
                .downcast::<T>()
                .map_err(|_| {
                    Error::invalid_input("state registered again with other Rust types")
                        .with_context("state", &meta.name)
                });
        }
        let mut table = create();
        let mut restored = self.restored.lock();
        if let Some(r) = restored.get(&meta.name) {
            // Restored values of another type are migrated as they are decoded.
            let migration = resolve(&r.meta, &meta, migrations)?;
            let how = Fill {
                state: &meta,
                migration: migration.as_ref(),
                first_key_group: self.range.first(),
                reserve: T::reserve,
                remove: T::remove,
                fill,
            };
            how.run(table.restoring_groups(), &r.groups, self.options.io_threads)?;
            table.restored();
            restored.remove(&meta.name);
        }
        let table = Arc::new(table);
        states.insert(
            meta.name.clone(),
            Entry {
                meta,
                table: Arc::clone(&table) as Arc<dyn Registered>,
            },
        );
        Ok(table)
    }
}

impl<K: StateKey> CheckpointableBackend for HeapKeyedStateBackend<K> {
    fn name(&self) -> &'static str {
        self.options.name
    }

    fn max_parallelism(&self) -> u32 {
        self.key_groups.max_parallelism()
    }

    fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    fn registered_states(&self) -> Vec<StateMeta> {
        let mut metas: Vec<StateMeta> = self
            .states
            .lock()
            .values()
            .map(|e| e.meta.clone())
            .collect();
        metas.extend(self.restored.lock().values().map(|r| r.meta.clone()));
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        metas
    }

    /// In changelog mode, a delta over the last chain confirmed complete, or a
    /// materialization ([`ChangelogOptions`]); otherwise a full snapshot.
    fn snapshot(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>> {
        self.take_snapshot(checkpoint_id, true)
    }

    /// A full snapshot in the savepoint's own scope, also in changelog mode (which it
    /// leaves as it is).
    fn savepoint(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>> {
        self.take_snapshot(checkpoint_id, false)
    }

    /// In changelog mode, the chain the checkpoint wrote becomes the one the next delta
    /// extends, and the changes it holds are released. A confirmation changes nothing when
    /// it is of a checkpoint older than the chain's, or of one this backend wrote no chain
    /// for. A confirmation that arrives late, after the synchronous phase of a newer
    /// checkpoint (which chose the chain confirmed before, holds the confirmed one's
    /// changes and does not reference its delta, so that the store deletes that delta when
    /// the newer one completes), does not make its chain the one to extend: the changes it
    /// holds are released and the next checkpoint materializes (a new base that needs no
    /// chain), unless the newer checkpoint is confirmed first. Memory stays bounded and no
    /// commit is refused however late confirmations arrive.
    fn notify_checkpoint_complete(&self, checkpoint_id: CheckpointId) -> Result<()> {
        let Some(chains) = &self.chains else {
            // Heap snapshots hold nothing after they are written.
            return Ok(());
        };
        {
            let mut chains = chains.lock();
            let newer = chains
                .confirmed
                .as_ref()
                .is_none_or(|c| c.latest().checkpoint_id < checkpoint_id);
            if !newer {
                return Ok(());
            }
            let Some(chain) = chains.written.remove(&checkpoint_id) else {
                return Ok(());
            };
            let late = chains
                .taken
                .last()
                .is_some_and(|last| *last > checkpoint_id);
            chains.written.retain(|id, _| *id > checkpoint_id);
            chains.taken.retain(|id| *id > checkpoint_id);
            if late {
                chains.materialize = true;
            } else {
                chains.confirmed = Some(chain);
                chains.materialize = false;
            }
        }
        self.tables()
            .iter()
            .try_for_each(|t| t.confirm(checkpoint_id))
    }

    /// The checkpoint's chain is dropped; its changes stay for the next delta.
    fn notify_checkpoint_aborted(&self, checkpoint_id: CheckpointId) -> Result<()> {
        if let Some(chains) = &self.chains {
            let mut chains = chains.lock();
            chains.written.remove(&checkpoint_id);
            chains.taken.remove(&checkpoint_id);
        }
        Ok(())
    }
}

/// Decodes a restored (key, namespace, value) record into its key group.
fn insert_decoded<K: StateKey, N: StateKey, S: StateValue>(
    group: &mut GroupMap<K, N, S>,
    r: Fields<'_>,
) -> Result<()> {
    group.insert(
        (codec::decode(r.key)?, codec::decode(r.namespace)?),
        codec::decode(r.value)?,
    );
    Ok(())
}

impl<K: StateKey> KeyedStateBackend<K> for HeapKeyedStateBackend<K> {
    fn value_table<V: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<V>,
    ) -> Result<Arc<dyn ValueTable<K, V, N>>> {
        let table = self.register(
            meta,
            &options.migrations,
            || HeapValueTable {
                table: HeapTable::<K, N, V>::new(
                    self.range,
                    self.key_groups,
                    self.binding,
                    self.chains.is_some(),
                ),
                filter: options.snapshot_filter,
            },
            insert_decoded::<K, N, V>,
        )?;
        Ok(table)
    }

    fn list_table<T: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<T>,
    ) -> Result<Arc<dyn ListTable<K, T, N>>> {
        let table = self.register(
            meta,
            &options.migrations,
            || HeapListTable {
                table: HeapTable::<K, N, Vec<T>>::new(
                    self.range,
                    self.key_groups,
                    self.binding,
                    self.chains.is_some(),
                ),
                filter: options.snapshot_filter,
            },
            insert_decoded::<K, N, Vec<T>>,
        )?;
        Ok(table)
    }

    fn map_table<UK: StateKey, UV: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<UV>,
    ) -> Result<Arc<dyn MapTable<K, UK, UV, N>>> {
        let table = self.register(
            meta,
            &options.migrations,
            || HeapMapTable {
                table: HeapTable::new(
                    self.range,
                    self.key_groups,
                    self.binding,
                    self.chains.is_some(),
                ),
                filter: options.snapshot_filter,
            },
            |group: &mut GroupMap<K, N, HashMap<UK, UV>>, r: Fields<'_>| {
                let Some(user_key) = r.user_key else {
                    return Err(Error::corrupted("map state record without a map key"));
                };
                let key: K = codec::decode(r.key)?;
                let ns: N = codec::decode(r.namespace)?;
                let uk: UK = codec::decode(user_key)?;
                let uv: UV = codec::decode(r.value)?;
                group.entry((key, ns)).or_default().insert(uk, uv);
                Ok(())
            },
        )?;
        Ok(table)
    }

    fn timer_queue(&self, meta: StateMeta) -> Result<Arc<dyn TimerQueue>> {
        check_queue_meta(&meta)?;
        let queue = self.register(
            meta,
            &Migrations::default(),
            || HeapTimerQueue::new(self.range, self.binding, self.chains.is_some()),
            |group: &mut TimerGroup, r: Fields<'_>| {
                insert_record(group, r.key, r.namespace, r.value)
            },
        )?;
        Ok(queue)
    }

    fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }
}
