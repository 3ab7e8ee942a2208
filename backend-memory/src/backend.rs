//! The heap keyed backend and the memory backend factory.

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use cornerstone_backend_api::keyed_format::{
    Compression, KeyedSnapshotHeader, KeyedSnapshotWriter, Record, read_key_groups,
};
use cornerstone_backend_api::keygroup::key_group_for_bytes;
use cornerstone_backend_api::migration::{Migrations, resolve};
use cornerstone_backend_api::table::{ListTable, MapTable, TableOptions, ValueTable};
use cornerstone_backend_api::timer::{TimerQueue, check_queue_meta};
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointStreamFactory, Error, ErrorKind, InlineStreamFactory,
    KeyGroupRange, KeyGroupsStateHandle, KeyedBackendParams, KeyedStateBackend, KeyedStateHandle,
    Result, SharedClock, StateBackend, StateBackendFactory, StateKey, StateKind, StateMeta,
    StateScope, StateValue, SubtaskState, codec,
};
use parking_lot::Mutex;

use crate::table::{
    Captured, HeapListTable, HeapMapTable, HeapTable, HeapValueTable, Registered, SnapshotWriter,
};
use crate::timers::{HeapTimerQueue, insert_record};

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
}

impl Default for MemoryStateBackend {
    fn default() -> Self {
        MemoryStateBackend {
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            compression: Compression::None,
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

    /// The options of the heap backends this factory creates.
    pub fn options(&self) -> HeapBackendOptions {
        HeapBackendOptions {
            name: NAME,
            storage: HeapSnapshotStorage::Inline {
                max_state_size: self.max_state_size,
            },
            compression: self.compression,
        }
    }
}

impl StateBackendFactory for MemoryStateBackend {
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

/// One restored record, still serialized: slices of its key group's [`RawGroup`] bytes.
#[derive(Clone, Copy)]
struct RawRecord<'a> {
    key: &'a [u8],
    namespace: &'a [u8],
    user_key: Option<&'a [u8]>,
    value: &'a [u8],
}

/// Where one record's parts are in [`RawGroup::bytes`]: they follow each other in the order
/// key, namespace, user key, value.
#[derive(Clone, Copy)]
struct RawSpan {
    start: usize,
    key: u32,
    namespace: u32,
    /// `u32::MAX` for records without a user key.
    user_key: u32,
    value: u32,
}

/// The restored records of one key group, still serialized, in one buffer (a restore
/// allocates per key group, not per record).
#[derive(Clone, Default)]
struct RawGroup {
    bytes: Vec<u8>,
    spans: Vec<RawSpan>,
}

impl RawGroup {
    fn push(&mut self, record: &Record<'_>) -> Result<()> {
        let len = |part: &[u8]| {
            u32::try_from(part.len())
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| {
                    Error::corrupted("restored record part over 4 GiB")
                        .with_context("key_group", record.key_group)
                })
        };
        let span = RawSpan {
            start: self.bytes.len(),
            key: len(record.key)?,
            namespace: len(record.namespace)?,
            user_key: match record.user_key {
                Some(uk) => len(uk)?,
                None => u32::MAX,
            },
            value: len(record.value)?,
        };
        self.bytes.extend_from_slice(record.key);
        self.bytes.extend_from_slice(record.namespace);
        if let Some(uk) = record.user_key {
            self.bytes.extend_from_slice(uk);
        }
        self.bytes.extend_from_slice(record.value);
        self.spans.push(span);
        Ok(())
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    /// Moves the records of `other` after those of `self`.
    fn append(&mut self, mut other: RawGroup) {
        if self.spans.is_empty() {
            *self = other;
            return;
        }
        let shift = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.spans
            .extend(other.spans.into_iter().map(|span| RawSpan {
                start: span.start + shift,
                ..span
            }));
    }

    fn records(&self) -> impl Iterator<Item = RawRecord<'_>> {
        self.spans.iter().map(|span| {
            let mut at = span.start;
            let mut take = |n: u32| {
                let part = &self.bytes[at..at + n as usize];
                at += n as usize;
                part
            };
            let key = take(span.key);
            let namespace = take(span.namespace);
            let user_key = (span.user_key != u32::MAX).then(|| take(span.user_key));
            let value = take(span.value);
            RawRecord {
                key,
                namespace,
                user_key,
                value,
            }
        })
    }
}

struct Restored {
    meta: StateMeta,
    /// Per key-group index in the backend's range; shared with snapshots that carry the
    /// state over unregistered.
    groups: Arc<Vec<RawGroup>>,
}

/// A keyed backend with typed heap tables, shared by the memory and filesystem backends.
///
/// Every state keeps one hash map per key group behind an `Arc`. The synchronous phase of
/// a snapshot clones those `Arc`s (no copy of the state); the first write to a key group
/// after a snapshot copies that key group only. Restored state stays serialized until its
/// descriptor is registered, which is when types are checked and values decoded.
pub struct HeapKeyedStateBackend<K> {
    options: HeapBackendOptions,
    max_parallelism: u32,
    range: KeyGroupRange,
    clock: SharedClock,
    states: Mutex<BTreeMap<String, Entry>>,
    restored: Mutex<BTreeMap<String, Restored>>,
    _key: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for HeapKeyedStateBackend<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapKeyedStateBackend")
            .field("name", &self.options.name)
            .field("range", &self.range)
            .field("max_parallelism", &self.max_parallelism)
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
        let range = params.key_group_range;
        let mut restored: BTreeMap<String, Restored> = BTreeMap::new();
        // The state names the restored snapshots hold, before renames and drops.
        let mut stored = BTreeSet::new();
        for handle in &params.restore {
            let handle = match handle {
                KeyedStateHandle::KeyGroups(h) => h,
                KeyedStateHandle::Incremental(h) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "a heap backend cannot restore an incremental snapshot; restore it with the \
                         backend that wrote it, or take a savepoint (full snapshot) first",
                    )
                    .with_context("backend", &h.backend_id));
                }
            };
            restore_handle(
                handle,
                &params,
                &K::type_identity(),
                &mut restored,
                &mut stored,
            )?;
        }
        if !stored.is_empty() {
            params.state_mapping.check_used(&stored)?;
        }
        Ok(HeapKeyedStateBackend {
            options,
            max_parallelism: params.max_parallelism,
            range,
            clock: params.clock,
            states: Mutex::new(BTreeMap::new()),
            restored: Mutex::new(restored),
            _key: PhantomData,
        })
    }

    /// Registers (or returns) the table of `meta.name`, created by `create` and filled
    /// from restored records by `fill` (their values first migrated through `migrations`
    /// when they were written as another type).
    fn register<T: Registered + 'static>(
        &self,
        meta: StateMeta,
        migrations: &Migrations,
        create: impl FnOnce() -> T,
        reserve: impl Fn(&T, usize, usize),
        fill: impl Fn(&T, usize, RawRecord<'_>) -> Result<()>,
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
        let table = create();
        let mut restored = self.restored.lock();
        if let Some(r) = restored.get(&meta.name) {
            // Restored values of another type are migrated as they are decoded.
            let migration = resolve(&r.meta, &meta, migrations)?;
            let mut migrated: Vec<u8>;
            for (index, group) in r.groups.iter().enumerate() {
                reserve(&table, index, group.len());
                for mut record in group.records() {
                    if let Some(m) = &migration {
                        migrated = if meta.kind == StateKind::List {
                            m.list(record.value)
                        } else {
                            m.value(record.value)
                        }
                        .map_err(|e| {
                            e.with_context("key_group", self.range.first() + index as u32)
                        })?;
                        record.value = &migrated;
                    }
                    fill(&table, index, record).map_err(|e| {
                        e.with_context("state", &meta.name)
                            .with_context("key_group", self.range.first() + index as u32)
                    })?;
                }
            }
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

fn restore_handle(
    handle: &KeyGroupsStateHandle,
    params: &KeyedBackendParams,
    key_type: &str,
    restored: &mut BTreeMap<String, Restored>,
    stored: &mut BTreeSet<String>,
) -> Result<()> {
    let range = params.key_group_range;
    let max_parallelism = params.max_parallelism;
    let groups = range.len() as usize;
    // This handle's records, per state index of its header, then per key-group index.
    let mut local: Vec<Vec<RawGroup>> = Vec::new();
    let mut visit = |header: &KeyedSnapshotHeader, record: Record<'_>| -> Result<()> {
        if local.is_empty() {
            header.check_key_type(key_type)?;
            local = vec![vec![RawGroup::default(); groups]; header.states.len()];
        }
        if key_group_for_bytes(record.key, max_parallelism) != record.key_group {
            return Err(Error::corrupted(
                "a restored key does not hash to its key group (was the max parallelism changed?)",
            )
            .with_context("key_group", record.key_group)
            .with_context("max_parallelism", max_parallelism));
        }
        let (Some(state_groups), Some(index)) = (
            local.get_mut(record.state as usize),
            range.index_of(record.key_group),
        ) else {
            return Err(Error::corrupted("snapshot record out of place")
                .with_context("key_group", record.key_group));
        };
        state_groups[index].push(&record)
    };
    let Some(header) = read_key_groups(handle, params.reader.as_deref(), range, &mut visit)? else {
        return Ok(());
    };
    header.check_key_type(key_type)?;
    stored.extend(header.states.iter().map(|m| m.name.clone()));
    let mapped = params.state_mapping.apply(&header.states)?;
    // Every state of the header is registered, also those without a record in our key
    // groups, so they are known (and type checked) all the same; dropped ones are not.
    let mut local = local.into_iter();
    for meta in mapped {
        let state_groups = local.next();
        let Some(meta) = meta else {
            continue;
        };
        match restored.entry(meta.name.clone()) {
            btree_map::Entry::Occupied(mut known) => {
                if known.get().meta != meta {
                    return Err(Error::invalid_input(
                        "restored handles disagree about a state's kind or types",
                    )
                    .with_context("state", &meta.name));
                }
                if let Some(state_groups) = state_groups {
                    let target = Arc::make_mut(&mut known.get_mut().groups);
                    for (into, from) in target.iter_mut().zip(state_groups) {
                        into.append(from);
                    }
                }
            }
            btree_map::Entry::Vacant(vacant) => {
                vacant.insert(Restored {
                    meta,
                    groups: Arc::new(
                        state_groups.unwrap_or_else(|| vec![RawGroup::default(); groups]),
                    ),
                });
            }
        }
    }
    Ok(())
}

impl<K: StateKey> StateBackend for HeapKeyedStateBackend<K> {
    fn name(&self) -> &'static str {
        self.options.name
    }

    fn max_parallelism(&self) -> u32 {
        self.max_parallelism
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

    fn snapshot(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>> {
        let mut states: Vec<(StateMeta, Box<dyn Captured>)> = self
            .states
            .lock()
            .values()
            .map(|e| (e.meta.clone(), e.table.capture()))
            .collect();
        let restored = self.restored.lock();
        for r in restored.values() {
            states.push((r.meta.clone(), Box::new(RawCapture(Arc::clone(&r.groups)))));
        }
        drop(restored);
        if states.len() > usize::from(u16::MAX) {
            return Err(
                Error::new(ErrorKind::LimitExceeded, "too many states in one backend")
                    .with_context("states", states.len()),
            );
        }
        states.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(Box::new(HeapSnapshot {
            checkpoint_id,
            options: self.options,
            range: self.range,
            now: self.clock.now_millis(),
            key_type: K::type_identity(),
            states,
        }))
    }

    fn notify_checkpoint_complete(&self, _checkpoint_id: CheckpointId) -> Result<()> {
        // Heap snapshots hold nothing after they are written.
        Ok(())
    }

    fn notify_checkpoint_aborted(&self, _checkpoint_id: CheckpointId) -> Result<()> {
        Ok(())
    }
}

/// A restored state that was not registered again: written back as it was read.
struct RawCapture(Arc<Vec<RawGroup>>);

impl Captured for RawCapture {
    fn write_key_group(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        _now: u64,
    ) -> Result<()> {
        for r in self.0[index].records() {
            writer.raw_record(state, r.key, r.namespace, r.user_key, r.value)?;
        }
        Ok(())
    }
}

struct HeapSnapshot {
    checkpoint_id: CheckpointId,
    options: HeapBackendOptions,
    range: KeyGroupRange,
    now: u64,
    key_type: std::borrow::Cow<'static, str>,
    states: Vec<(StateMeta, Box<dyn Captured>)>,
}

impl fmt::Debug for HeapSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapSnapshot")
            .field("checkpoint_id", &self.checkpoint_id)
            .field("range", &self.range)
            .field(
                "states",
                &self.states.iter().map(|s| &s.0.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AsyncSnapshot for HeapSnapshot {
    fn checkpoint_id(&self) -> CheckpointId {
        self.checkpoint_id
    }

    fn write(self: Box<Self>, streams: &dyn CheckpointStreamFactory) -> Result<SubtaskState> {
        let inline;
        let streams: &dyn CheckpointStreamFactory = match self.options.storage {
            HeapSnapshotStorage::Inline { max_state_size } => {
                inline = InlineStreamFactory::new(self.checkpoint_id, max_state_size);
                &inline
            }
            HeapSnapshotStorage::Streams => streams,
        };
        let header = KeyedSnapshotHeader {
            backend: self.options.name.to_owned(),
            key_type: self.key_type.to_string(),
            states: self.states.iter().map(|(m, _)| m.clone()).collect(),
        };
        let out = streams.create(StateScope::Exclusive)?;
        let mut writer =
            KeyedSnapshotWriter::new(out, &header, self.range, self.options.compression)?;
        for (index, kg) in self.range.iter().enumerate() {
            writer.begin_key_group(kg)?;
            for (state, (_, captured)) in self.states.iter().enumerate() {
                captured.write_key_group(index, state as u16, &mut writer, self.now)?;
            }
        }
        let (out, offsets) = writer.finish()?;
        let stream = out.close()?;
        Ok(SubtaskState {
            keyed: vec![KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
                range: self.range,
                offsets,
                stream,
            })],
            operator: Vec::new(),
        })
    }
}

/// Decodes a restored (key, namespace, value) record into the key group at `index`.
fn insert_decoded<K: StateKey, N: StateKey, S: StateValue>(
    table: &HeapTable<K, N, S>,
    index: usize,
    r: RawRecord<'_>,
) -> Result<()> {
    table.insert_restored(
        index,
        codec::decode(r.key)?,
        codec::decode(r.namespace)?,
        codec::decode(r.value)?,
    );
    Ok(())
}

impl<K: StateKey> KeyedStateBackend<K> for HeapKeyedStateBackend<K> {
    fn value_table<N: StateKey, V: StateValue>(
        &self,
        meta: StateMeta,
        options: TableOptions<V>,
    ) -> Result<Arc<dyn ValueTable<K, N, V>>> {
        let table = self.register(
            meta,
            &options.migrations,
            || HeapValueTable {
                table: HeapTable::<K, N, V>::new(self.range, self.max_parallelism),
                filter: options.snapshot_filter,
            },
            |t, index, n| t.table.reserve(index, n),
            |t, index, r| insert_decoded(&t.table, index, r),
        )?;
        Ok(table)
    }

    fn list_table<N: StateKey, T: StateValue>(
        &self,
        meta: StateMeta,
        options: TableOptions<T>,
    ) -> Result<Arc<dyn ListTable<K, N, T>>> {
        let table = self.register(
            meta,
            &options.migrations,
            || HeapListTable {
                table: HeapTable::<K, N, Vec<T>>::new(self.range, self.max_parallelism),
                filter: options.snapshot_filter,
            },
            |t, index, n| t.table.reserve(index, n),
            |t, index, r| insert_decoded(&t.table, index, r),
        )?;
        Ok(table)
    }

    fn map_table<N: StateKey, UK: StateKey, UV: StateValue>(
        &self,
        meta: StateMeta,
        options: TableOptions<UV>,
    ) -> Result<Arc<dyn MapTable<K, N, UK, UV>>> {
        let table = self.register(
            meta,
            &options.migrations,
            || HeapMapTable {
                table: HeapTable::new(self.range, self.max_parallelism),
                filter: options.snapshot_filter,
            },
            // Records are map entries: their number says nothing of the number of maps.
            |_, _, _| {},
            |t: &HeapMapTable<K, N, UK, UV>, index, r| {
                let Some(user_key) = r.user_key else {
                    return Err(Error::corrupted("map state record without a map key"));
                };
                let key: K = codec::decode(r.key)?;
                let ns: N = codec::decode(r.namespace)?;
                let uk: UK = codec::decode(user_key)?;
                let uv: UV = codec::decode(r.value)?;
                t.table.insert_restored_entry(index, key, ns, uk, uv);
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
            || HeapTimerQueue::new(self.range),
            |_, _, _| {},
            |q, index, r| insert_record(q, index, r.key, r.namespace, r.value),
        )?;
        Ok(queue)
    }

    fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }
}
