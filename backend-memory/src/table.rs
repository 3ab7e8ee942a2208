//! Heap state tables: typed values in one hash map per key group, each behind an `Arc`
//! that is cloned by a snapshot and copied on the next write (copy-on-write per key group).

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cornerstone_backend_api::keygroup::KeyGroupAssigner;
use cornerstone_backend_api::spi::keyed_format::KeyedSnapshotWriter;
use cornerstone_backend_api::spi::table::{ListTable, MapTable, SnapshotFilter, ValueTable};
use cornerstone_backend_api::{
    CheckpointId, CheckpointOutputStream, Error, KeyGroupRange, Result, StateKey, StateValue,
};
use hashbrown::{Equivalent, HashMap};

use crate::access::{Binding, Guarded};
use crate::changelog::{ChangeLog, Left, Sealed};

/// The map of one key group: (key, namespace) to the stored value.
pub(crate) type GroupMap<K, N, S> = HashMap<(K, N), S>;

/// The shared map of one key group: a snapshot holds a clone, and a write copies the map
/// first if one does. A `triomphe::Arc`, which has no weak references, so that a write checks
/// that it holds the only one with a plain load instead of `std`'s locked compare-and-swap
/// (a full barrier on x86, on every write).
pub(crate) type GroupArc<T> = triomphe::Arc<T>;

/// The maps of every key group of a table, as a snapshot captures them.
pub(crate) type Groups<K, N, S> = Vec<GroupArc<GroupMap<K, N, S>>>;

/// A borrowed (key, namespace) that looks up a `(K, N)` without cloning.
pub(crate) struct Lookup<'a, K, N>(pub(crate) &'a K, pub(crate) &'a N);

impl<K: Hash, N: Hash> Hash for Lookup<'_, K, N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Same as the tuple's derived Hash.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl<K: Eq, N: Eq> Equivalent<(K, N)> for Lookup<'_, K, N> {
    fn equivalent(&self, key: &(K, N)) -> bool {
        *self.0 == key.0 && *self.1 == key.1
    }
}

/// The key groups of a table and its changes not yet confirmed, as a changelog checkpoint
/// captures them.
pub(crate) type CapturedChanges<K, N, S> = (Groups<K, N, S>, Sealed<(K, N)>);

/// The writer of a keyed snapshot, over a checkpoint stream.
pub(crate) type SnapshotWriter = KeyedSnapshotWriter<Box<dyn CheckpointOutputStream>>;

/// A table's view captured by the synchronous phase of a snapshot.
pub(crate) trait Captured: Send + Sync {
    /// The number of entries (records, or maps and lists) of the key group at `index`: what
    /// the asynchronous phase splits the key groups between its threads by.
    fn entries(&self, index: usize) -> usize;

    /// Writes the records of the key group at `index` in the backend's range.
    fn write_key_group(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        now: u64,
    ) -> Result<()>;

    /// The number of changes of the key group at `index` a delta holds (an upper bound).
    fn changes(&self, index: usize) -> usize;

    /// Writes the changes of the key group at `index` to a delta stream: for each changed
    /// entry, its records or its removal.
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::Internal`] for a capture without changes.
    fn write_changes(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        now: u64,
    ) -> Result<()>;
}

/// What the backend keeps of each registered table.
pub(crate) trait Registered: Send + Sync {
    /// The synchronous phase of a snapshot: clones one `Arc` per key group.
    fn capture(&self) -> Result<Box<dyn Captured>>;
    /// The synchronous phase of a changelog checkpoint: seals the changes since the last
    /// snapshot under `id` and captures the key groups with every change not yet confirmed.
    fn capture_changes(&self, id: CheckpointId) -> Result<Box<dyn Captured>>;
    /// Checkpoint `id` completed: the changes sealed up to it are confirmed.
    fn confirm(&self, id: CheckpointId) -> Result<()>;
    /// The changes recorded and not yet confirmed.
    fn pending_changes(&self) -> Result<usize>;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What a table's guard protects: the key-group maps, the incremental-cleanup cursor and,
/// in changelog mode, what changed.
struct Core<K, N, S> {
    groups: Groups<K, N, S>,
    /// (key-group index, entries already visited in it) of incremental cleanup.
    cleanup_cursor: (usize, usize),
    changes: Option<ChangeLog<(K, N)>>,
}

impl<K: StateKey, N: StateKey, S> Core<K, N, S> {
    /// Records the write of (`key`, `ns`) in the key group at `index`, which `left` it as it
    /// says (nothing without changelog mode).
    #[inline]
    fn record(&mut self, index: usize, key: &K, ns: &N, left: Left) {
        if let Some(changes) = &mut self.changes {
            changes.record_entry(index, left, || (key.clone(), ns.clone()));
        }
    }
}

/// What a write that leaves its entry in `map` (inserted or changed) records.
#[inline]
fn present<K, N, S>(map: &GroupMap<K, N, S>) -> Option<Left> {
    Some(Left::Present { entries: map.len() })
}

/// The error of a key outside the backend's key groups, out of line so that the lookups
/// around its check stay small enough to inline.
#[cold]
#[inline(never)]
fn outside_range(key_group: u32, range: KeyGroupRange) -> Error {
    Error::invalid_input("key belongs to a key group outside this backend's range")
        .with_context("key_group", key_group)
        .with_context("range", range)
}

/// The table core shared by the three kinds: one `Arc<GroupMap>` per key group, under the
/// backend's [`Binding`] (owned by the task thread, or shared under a lock).
pub(crate) struct HeapTable<K, N, S> {
    core: Guarded<Core<K, N, S>>,
    range: KeyGroupRange,
    key_groups: KeyGroupAssigner,
}

impl<K: StateKey, N: StateKey, S: Clone + Send + Sync + 'static> HeapTable<K, N, S> {
    /// An empty table; `changelog` records what changes (changelog mode).
    pub(crate) fn new(
        range: KeyGroupRange,
        key_groups: KeyGroupAssigner,
        binding: Binding,
        changelog: bool,
    ) -> Self {
        let groups = range.len() as usize;
        let core = Core {
            groups: (0..groups).map(|_| GroupArc::new(HashMap::new())).collect(),
            cleanup_cursor: (0, 0),
            changes: changelog.then(|| ChangeLog::new(groups)),
        };
        HeapTable {
            core: Guarded::new(binding, core),
            range,
            key_groups,
        }
    }

    /// The index in the range of the key group of `key`.
    #[inline]
    fn index(&self, key: &K) -> Result<usize> {
        let kg = self.key_groups.of_key(key)?;
        match self.range.index_of(kg) {
            Some(index) => Ok(index),
            None => Err(outside_range(kg, self.range)),
        }
    }

    /// The maps of every key group, unshared, while the table is filled from a restore
    /// (before anyone else holds it).
    pub(crate) fn restoring_groups(&mut self) -> Vec<&mut GroupMap<K, N, S>> {
        self.core
            .get_mut()
            .groups
            .iter_mut()
            .map(GroupArc::make_mut)
            .collect()
    }

    #[inline]
    fn read<R>(&self, key: &K, ns: &N, f: impl FnOnce(Option<&S>) -> R) -> Result<R> {
        let index = self.index(key)?;
        self.core
            .with(|core| f(core.groups[index].get(&Lookup(key, ns))))
    }

    /// Reads without holding the guard while `f` runs, so `f` may use the state again
    /// (a write then copies the key group, which `f` still reads).
    fn read_unlocked<R>(&self, key: &K, ns: &N, f: impl FnOnce(Option<&S>) -> R) -> Result<R> {
        let index = self.index(key)?;
        let group = self
            .core
            .with(|core| GroupArc::clone(&core.groups[index]))?;
        Ok(f(group.get(&Lookup(key, ns))))
    }

    /// Runs `f` on the mutable map of the key group of `key`, copying it first if a snapshot
    /// still holds it, and records what it says it left of (`key`, `ns`) (`None`: nothing
    /// changed).
    #[inline]
    fn write(
        &self,
        key: &K,
        ns: &N,
        f: impl FnOnce(&mut GroupMap<K, N, S>) -> Option<Left>,
    ) -> Result<()> {
        let index = self.index(key)?;
        self.core.with(|core| {
            if let Some(left) = f(GroupArc::make_mut(&mut core.groups[index])) {
                core.record(index, key, ns, left);
            }
        })
    }

    fn put(&self, key: &K, ns: &N, value: S) -> Result<()> {
        self.write(key, ns, |map| {
            match map.get_mut(&Lookup(key, ns)) {
                Some(slot) => *slot = value,
                None => {
                    map.insert((key.clone(), ns.clone()), value);
                }
            }
            present(map)
        })
    }

    fn take(&self, key: &K, ns: &N) -> Result<Option<S>> {
        let index = self.index(key)?;
        self.core.with(|core| {
            if !core.groups[index].contains_key(&Lookup(key, ns)) {
                return None; // no copy of a shared key group for a no-op
            }
            let taken = GroupArc::make_mut(&mut core.groups[index]).remove(&Lookup(key, ns));
            core.record(index, key, ns, Left::Removed);
            taken
        })
    }

    /// Replaces the entry with `f(current)`; `None` removes it.
    fn update_with(&self, key: &K, ns: &N, f: impl FnOnce(Option<S>) -> Option<S>) -> Result<()> {
        self.write(key, ns, |map| {
            let old = map.remove(&Lookup(key, ns));
            let was = old.is_some();
            match f(old) {
                Some(new) => {
                    map.insert((key.clone(), ns.clone()), new);
                    present(map)
                }
                None => was.then_some(Left::Removed),
            }
        })
    }

    /// Changes the entry in place, creating it with `init` when absent; removes it when
    /// `keep` says so afterwards.
    fn modify(
        &self,
        key: &K,
        ns: &N,
        init: impl FnOnce() -> S,
        f: impl FnOnce(&mut S),
        keep: impl FnOnce(&S) -> bool,
    ) -> Result<()> {
        self.write(key, ns, |map| match map.get_mut(&Lookup(key, ns)) {
            Some(slot) => {
                f(slot);
                if keep(slot) {
                    present(map)
                } else {
                    map.remove(&Lookup(key, ns));
                    Some(Left::Removed)
                }
            }
            None => {
                let mut value = init();
                f(&mut value);
                if keep(&value) {
                    map.insert((key.clone(), ns.clone()), value);
                    present(map)
                } else {
                    None
                }
            }
        })
    }

    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        let groups = self.captured_groups()?;
        Ok(groups
            .iter()
            .flat_map(|g| g.keys().filter(|(_, n)| n == ns).map(|(k, _)| k.clone()))
            .collect())
    }

    /// Visits up to `budget` entries from the cleanup cursor and applies `check` to each.
    fn cleanup(&self, budget: usize, mut check: impl FnMut(&S) -> Cleanup<S>) -> Result<()> {
        if budget == 0 || self.range.is_empty() {
            return Ok(());
        }
        self.core.with(|core| {
            let Core {
                groups,
                cleanup_cursor: cursor,
                changes,
            } = core;
            let mut left = budget;
            let mut groups_seen = 0;
            while left > 0 && groups_seen <= groups.len() {
                let (index, skip) = *cursor;
                let group = &mut groups[index];
                let mut removed: Vec<(K, N)> = Vec::new();
                let mut replaced: Vec<((K, N), S)> = Vec::new();
                let mut visited = 0;
                for (k, v) in group.iter().skip(skip).take(left) {
                    visited += 1;
                    match check(v) {
                        Cleanup::Keep => {}
                        Cleanup::Remove => removed.push(k.clone()),
                        Cleanup::Replace(new) => replaced.push((k.clone(), new)),
                    }
                }
                left -= visited;
                if !removed.is_empty() || !replaced.is_empty() {
                    if let Some(changes) = changes {
                        let entries = group.len() - removed.len();
                        for k in &removed {
                            changes.record_entry(index, Left::Removed, || k.clone());
                        }
                        for (k, _) in &replaced {
                            let left = Left::Present { entries };
                            changes.record_entry(index, left, || k.clone());
                        }
                    }
                    let map = GroupArc::make_mut(group);
                    for k in &removed {
                        map.remove(k);
                    }
                    for (k, v) in replaced {
                        map.insert(k, v);
                    }
                }
                // Removed entries no longer take a place before the cursor.
                let next = skip + visited - removed.len();
                if visited == 0 || next >= group.len() {
                    *cursor = ((index + 1) % groups.len(), 0);
                    groups_seen += 1;
                } else {
                    *cursor = (index, next);
                }
            }
        })
    }

    pub(crate) fn captured_groups(&self) -> Result<Groups<K, N, S>> {
        self.core
            .with(|core| core.groups.iter().map(GroupArc::clone).collect())
    }

    /// The key groups and every change not yet confirmed, the current ones sealed under
    /// `id`.
    pub(crate) fn captured_changes(&self, id: CheckpointId) -> Result<CapturedChanges<K, N, S>> {
        self.core.with(|core| {
            let groups = core.groups.iter().map(GroupArc::clone).collect();
            match &mut core.changes {
                Some(changes) => Ok((groups, changes.seal(id))),
                None => Err(Error::internal(
                    "a changelog snapshot of a table that records no changes",
                )),
            }
        })?
    }

    pub(crate) fn confirm(&self, id: CheckpointId) -> Result<()> {
        self.core.with(|core| {
            if let Some(changes) = &mut core.changes {
                changes.confirm(id);
            }
        })
    }

    pub(crate) fn pending_changes(&self) -> Result<usize> {
        self.core
            .with(|core| core.changes.as_ref().map_or(0, ChangeLog::len))
    }
}

/// What incremental cleanup does with one entry.
pub(crate) enum Cleanup<S> {
    Keep,
    Remove,
    Replace(S),
}

/// The heap [`ValueTable`].
pub(crate) struct HeapValueTable<K, V, N> {
    pub(crate) table: HeapTable<K, N, V>,
    pub(crate) filter: Option<SnapshotFilter<V>>,
}

impl<K: StateKey, N: StateKey, V: StateValue> ValueTable<K, V, N> for HeapValueTable<K, V, N> {
    #[inline]
    fn get(&self, key: &K, ns: &N) -> Result<Option<V>> {
        self.table.read(key, ns, |v| v.cloned())
    }
    #[inline]
    fn put(&self, key: &K, ns: &N, value: V) -> Result<()> {
        self.table.put(key, ns, value)
    }
    fn remove(&self, key: &K, ns: &N) -> Result<()> {
        self.table.take(key, ns).map(drop)
    }
    fn take(&self, key: &K, ns: &N) -> Result<Option<V>> {
        self.table.take(key, ns)
    }
    fn transform(&self, key: &K, ns: &N, f: &mut dyn FnMut(Option<V>) -> Option<V>) -> Result<()> {
        self.table.update_with(key, ns, f)
    }
    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&V) -> bool) -> Result<()> {
        self.table.cleanup(budget, |v| {
            if keep(v) {
                Cleanup::Keep
            } else {
                Cleanup::Remove
            }
        })
    }
}

/// The heap [`ListTable`]: a `Vec` per (key, namespace).
pub(crate) struct HeapListTable<K, T, N> {
    pub(crate) table: HeapTable<K, N, Vec<T>>,
    /// Applies to each element.
    pub(crate) filter: Option<SnapshotFilter<T>>,
}

impl<K: StateKey, N: StateKey, T: StateValue> ListTable<K, T, N> for HeapListTable<K, T, N> {
    fn get(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>> {
        self.table.read(key, ns, |v| v.cloned())
    }
    fn with_elements(&self, key: &K, ns: &N, f: &mut dyn FnMut(&[T])) -> Result<()> {
        self.table
            .read_unlocked(key, ns, |v| f(v.map_or(&[], Vec::as_slice)))
    }
    fn add(&self, key: &K, ns: &N, value: T) -> Result<()> {
        self.table
            .modify(key, ns, Vec::new, |list| list.push(value), |_| true)
    }
    fn add_all(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        self.table.modify(
            key,
            ns,
            Vec::new,
            |list| list.extend(values),
            |l| !l.is_empty(),
        )
    }
    fn update(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        if values.is_empty() {
            return self.table.take(key, ns).map(drop);
        }
        self.table.put(key, ns, values)
    }
    fn remove(&self, key: &K, ns: &N) -> Result<()> {
        self.table.take(key, ns).map(drop)
    }
    fn take(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>> {
        self.table.take(key, ns)
    }
    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&T) -> bool) -> Result<()> {
        self.table.cleanup(budget, |list| {
            let kept = list.iter().filter(|v| keep(v)).count();
            if kept == list.len() {
                Cleanup::Keep
            } else if kept == 0 {
                Cleanup::Remove
            } else {
                Cleanup::Replace(list.iter().filter(|v| keep(v)).cloned().collect())
            }
        })
    }
}

/// The heap [`MapTable`]: a hash map per (key, namespace).
pub(crate) struct HeapMapTable<K, UK, UV, N> {
    pub(crate) table: HeapTable<K, N, HashMap<UK, UV>>,
    /// Applies to each map value.
    pub(crate) filter: Option<SnapshotFilter<UV>>,
}

impl<K: StateKey, N: StateKey, UK: StateKey, UV: StateValue> MapTable<K, UK, UV, N>
    for HeapMapTable<K, UK, UV, N>
{
    fn get(&self, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        self.table
            .read(key, ns, |m| m.and_then(|m| m.get(user_key)).cloned())
    }
    fn put(&self, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()> {
        self.table.modify(
            key,
            ns,
            HashMap::new,
            |m| {
                m.insert(user_key, value);
            },
            |_| true,
        )
    }
    fn put_all(&self, key: &K, ns: &N, entries: Vec<(UK, UV)>) -> Result<()> {
        self.table.modify(
            key,
            ns,
            HashMap::new,
            |m| m.extend(entries),
            |m| !m.is_empty(),
        )
    }
    fn remove(&self, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        let present = self
            .table
            .read(key, ns, |m| m.is_some_and(|m| m.contains_key(user_key)))?;
        if !present {
            return Ok(());
        }
        self.table.modify(
            key,
            ns,
            HashMap::new,
            |m| {
                m.remove(user_key);
            },
            |m| !m.is_empty(),
        )
    }
    fn contains(&self, key: &K, ns: &N, user_key: &UK) -> Result<bool> {
        self.table
            .read(key, ns, |m| m.is_some_and(|m| m.contains_key(user_key)))
    }
    fn for_each(&self, key: &K, ns: &N, f: &mut dyn FnMut(&UK, &UV)) -> Result<()> {
        self.table.read_unlocked(key, ns, |m| {
            if let Some(m) = m {
                m.iter().for_each(|(k, v)| f(k, v));
            }
        })
    }
    fn is_empty(&self, key: &K, ns: &N) -> Result<bool> {
        self.table
            .read(key, ns, |m| m.is_none_or(HashMap::is_empty))
    }
    fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.table.take(key, ns).map(drop)
    }
    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
    fn cleanup_incrementally(
        &self,
        budget: usize,
        keep: &mut dyn FnMut(&UV) -> bool,
    ) -> Result<()> {
        self.table.cleanup(budget, |m| {
            let kept = m.values().filter(|v| keep(v)).count();
            if kept == m.len() {
                Cleanup::Keep
            } else if kept == 0 {
                Cleanup::Remove
            } else {
                Cleanup::Replace(
                    m.iter()
                        .filter(|(_, v)| keep(v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            }
        })
    }
}
