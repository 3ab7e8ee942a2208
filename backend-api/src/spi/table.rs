//! The storage primitives that a keyed backend implements: a value table, a list table and
//! a map table per state, each keyed by (key, namespace).
//!
//! Generic parameters come in one order everywhere, in the tables as in the typed states of
//! the crate root: the key, then the stored types, then the namespace (`ValueTable<K, V, N>`
//! as `ValueState<K, V, N>`, `MapTable<K, UK, UV, N>` as `MapState<K, UK, UV, N>`).
//!
//! The typed states of [`crate::state`] (and the TTL decorators) are built on these.
//! Reducing and aggregating state are value tables with a fold on top, so a backend
//! implements three primitives, not five kinds.

use std::sync::Arc;

use crate::error::Result;
use crate::migration::Migrations;
use crate::ttl::StateTtlConfig;

/// Decides whether a stored value goes into a full snapshot, given the snapshot's time in
/// milliseconds (TTL's cleanup in full snapshots).
pub type SnapshotFilter<S> = Arc<dyn Fn(&S, u64) -> bool + Send + Sync>;

/// Options for a table, fixed when the state is registered.
pub struct TableOptions<S> {
    /// Values for which this returns `false` are left out of full snapshots.
    pub snapshot_filter: Option<SnapshotFilter<S>>,
    /// The state's TTL, when it has one. Its stored values are then
    /// [`TtlValue`](crate::ttl::TtlValue)s, whose encoding starts with the big-endian timestamp
    /// (list elements each start with theirs), so a backend can drop expired entries in
    /// the background without decoding them (RocksDB's compaction filter).
    pub ttl: Option<StateTtlConfig>,
    /// How restored values of another type become values of this one: a backend passes
    /// them to [`crate::migration::resolve`] with the restored state's meta, and rewrites
    /// the restored values through the migration it returns.
    pub migrations: Migrations,
}

impl<S> Default for TableOptions<S> {
    fn default() -> Self {
        TableOptions {
            snapshot_filter: None,
            ttl: None,
            migrations: Migrations::default(),
        }
    }
}

impl<S> std::fmt::Debug for TableOptions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableOptions")
            .field("snapshot_filter", &self.snapshot_filter.is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// One value per (key, namespace).
pub trait ValueTable<K, V, N>: Send + Sync {
    /// The value, if any.
    fn get(&self, key: &K, ns: &N) -> Result<Option<V>>;
    /// Sets the value.
    fn put(&self, key: &K, ns: &N, value: V) -> Result<()>;
    /// Removes the value.
    fn remove(&self, key: &K, ns: &N) -> Result<()>;
    /// Removes the value and returns it.
    fn take(&self, key: &K, ns: &N) -> Result<Option<V>>;
    /// Replaces the value with `f(current)`; `None` removes it. One lookup on heap tables.
    fn transform(&self, key: &K, ns: &N, f: &mut dyn FnMut(Option<V>) -> Option<V>) -> Result<()>;
    /// The keys that have a value in namespace `ns`.
    fn keys(&self, ns: &N) -> Result<Vec<K>>;
    /// Checks up to `budget` entries, continuing where the last call stopped, and removes
    /// those for which `keep` is false. Backends without incremental cleanup (RocksDB, which
    /// cleans up in compactions) check none.
    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&V) -> bool) -> Result<()>;
    /// Moves the values of `sources` into `target` and removes the sources: a source value
    /// moves as it is into an absent target, and is folded into a present one with
    /// `merge(target, source)` (reducing and aggregating state's namespace merge). The TTL
    /// decorator overrides it to merge the stored, timestamped values.
    fn merge_namespaces(
        &self,
        key: &K,
        target: &N,
        sources: &[N],
        merge: &mut dyn FnMut(V, V) -> V,
    ) -> Result<()> {
        merge_values(self, key, target, sources, &mut |_| true, merge)
    }
}

/// Moves the values of `sources` into `target` of `table` and removes the sources, leaving
/// out the values (of the sources and of the target) for which `keep` is false; two kept
/// values are folded with `merge(target, source)`.
pub(crate) fn merge_values<K, V, N, T: ValueTable<K, V, N> + ?Sized>(
    table: &T,
    key: &K,
    target: &N,
    sources: &[N],
    keep: &mut dyn FnMut(&V) -> bool,
    merge: &mut dyn FnMut(V, V) -> V,
) -> Result<()> {
    for source in sources {
        let Some(value) = table.take(key, source)?.filter(|v| keep(v)) else {
            continue;
        };
        let mut value = Some(value);
        table.transform(key, target, &mut |current| {
            let current = current.filter(|v| keep(v));
            match (current, value.take()) {
                (Some(current), Some(value)) => Some(merge(current, value)),
                (current, value) => value.or(current),
            }
        })?;
    }
    Ok(())
}

/// A list per (key, namespace).
pub trait ListTable<K, T, N>: Send + Sync {
    /// The list, if any.
    fn get(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>>;
    /// Calls `f` once with the elements (empty when absent), without copying the list on
    /// heap backends. `f` may use the state again.
    fn with_elements(&self, key: &K, ns: &N, f: &mut dyn FnMut(&[T])) -> Result<()>;
    /// Appends an element.
    fn add(&self, key: &K, ns: &N, value: T) -> Result<()>;
    /// Appends elements.
    fn add_all(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()>;
    /// Replaces the list; an empty list removes it.
    fn update(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()>;
    /// Removes the list.
    fn remove(&self, key: &K, ns: &N) -> Result<()>;
    /// Removes the list and returns it.
    fn take(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>>;
    /// The keys that have a list in namespace `ns`.
    fn keys(&self, ns: &N) -> Result<Vec<K>>;
    /// As [`ValueTable::cleanup_incrementally`], per element.
    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&T) -> bool) -> Result<()>;
    /// Appends the lists of `sources` to the list of `target` and removes the sources (list
    /// state's namespace merge). The elements move as they are: the TTL decorator overrides
    /// it to move the stored, timestamped elements.
    fn merge_namespaces(&self, key: &K, target: &N, sources: &[N]) -> Result<()> {
        merge_lists(self, key, target, sources, &mut |_| true)
    }
}

/// Appends the lists of `sources` to the list of `target` of `table` and removes the
/// sources, leaving out the source elements for which `keep` is false.
pub(crate) fn merge_lists<K, N, E, T: ListTable<K, E, N> + ?Sized>(
    table: &T,
    key: &K,
    target: &N,
    sources: &[N],
    keep: &mut dyn FnMut(&E) -> bool,
) -> Result<()> {
    let mut merged = Vec::new();
    for source in sources {
        if let Some(elements) = table.take(key, source)? {
            merged.extend(elements.into_iter().filter(|e| keep(e)));
        }
    }
    if merged.is_empty() {
        return Ok(());
    }
    table.add_all(key, target, merged)
}

/// A map per (key, namespace).
pub trait MapTable<K, UK, UV, N>: Send + Sync {
    /// The value of `user_key`.
    fn get(&self, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>>;
    /// Sets the value of `user_key`.
    fn put(&self, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()>;
    /// Sets several entries.
    fn put_all(&self, key: &K, ns: &N, entries: Vec<(UK, UV)>) -> Result<()>;
    /// Removes `user_key`.
    fn remove(&self, key: &K, ns: &N, user_key: &UK) -> Result<()>;
    /// Whether `user_key` has a value.
    fn contains(&self, key: &K, ns: &N, user_key: &UK) -> Result<bool>;
    /// Calls `f` on every entry.
    fn for_each(&self, key: &K, ns: &N, f: &mut dyn FnMut(&UK, &UV)) -> Result<()>;
    /// Whether the map is empty or absent.
    fn is_empty(&self, key: &K, ns: &N) -> Result<bool>;
    /// Removes the whole map.
    fn clear(&self, key: &K, ns: &N) -> Result<()>;
    /// The keys that have a map in namespace `ns`.
    fn keys(&self, ns: &N) -> Result<Vec<K>>;
    /// As [`ValueTable::cleanup_incrementally`], per map entry.
    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&UV) -> bool)
    -> Result<()>;
}
