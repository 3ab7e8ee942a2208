//! Typed keyed state handles: what operator code holds and calls.
//!
//! Every handle is scoped by a key `K` and a namespace `N` (`()` unless the state belongs
//! to windows), passed on each call. Handles are cheap to clone and are the same types
//! whatever the backend, so operator code does not depend on the backend.

use std::fmt;
use std::sync::Arc;

use crate::descriptor::{AggregateFunction, ReduceFn, VoidNamespace};
use crate::error::{Error, Result};
use crate::spi::table::{ListTable, MapTable, ValueTable};

macro_rules! handle_debug {
    ($ty:ident < $($g:ident),+ >) => {
        impl<$($g),+> fmt::Debug for $ty<$($g),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).field("name", &self.name).finish_non_exhaustive()
            }
        }
        impl<$($g),+> Clone for $ty<$($g),+> {
            fn clone(&self) -> Self {
                self.clone_extra()
            }
        }
    };
}

/// One value per key and namespace (Flink's `ValueState`).
pub struct ValueState<K, V, N = VoidNamespace> {
    table: Arc<dyn ValueTable<K, V, N>>,
    name: Arc<str>,
}

impl<K, V, N> ValueState<K, V, N> {
    pub(crate) fn new(name: &str, table: Arc<dyn ValueTable<K, V, N>>) -> Self {
        ValueState {
            table,
            name: name.into(),
        }
    }
    fn clone_extra(&self) -> Self {
        Self::new(&self.name, Arc::clone(&self.table))
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key` in `ns`, if set.
    pub fn get(&self, key: &K, ns: &N) -> Result<Option<V>> {
        self.table.get(key, ns)
    }

    /// Sets the value of `key` in `ns`.
    pub fn update(&self, key: &K, ns: &N, value: V) -> Result<()> {
        self.table.put(key, ns, value)
    }

    /// Replaces the value with `f(current)`; returning `None` clears it.
    pub fn transform(
        &self,
        key: &K,
        ns: &N,
        mut f: impl FnMut(Option<V>) -> Option<V>,
    ) -> Result<()> {
        self.table.transform(key, ns, &mut f)
    }

    /// Clears the value of `key` in `ns`.
    pub fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.table.remove(key, ns)
    }

    /// The keys that have a value in `ns` (in no particular order).
    pub fn state_keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
}
handle_debug!(ValueState<K, V, N>);

/// A list per key and namespace (Flink's `ListState`).
pub struct ListState<K, T, N = VoidNamespace> {
    table: Arc<dyn ListTable<K, T, N>>,
    name: Arc<str>,
}

impl<K, T, N> ListState<K, T, N> {
    pub(crate) fn new(name: &str, table: Arc<dyn ListTable<K, T, N>>) -> Self {
        ListState {
            table,
            name: name.into(),
        }
    }
    fn clone_extra(&self) -> Self {
        Self::new(&self.name, Arc::clone(&self.table))
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The elements, in insertion order; empty when absent.
    pub fn get(&self, key: &K, ns: &N) -> Result<Vec<T>> {
        Ok(self.table.get(key, ns)?.unwrap_or_default())
    }

    /// Calls `f` on every element without copying the list.
    pub fn for_each(&self, key: &K, ns: &N, mut f: impl FnMut(&T)) -> Result<()> {
        self.table
            .with_elements(key, ns, &mut |elements| elements.iter().for_each(&mut f))
    }

    /// Calls `f` once with the elements as a borrowed slice (empty when absent) and returns
    /// its result: a read of the list without a copy on the heap backends (a backend that
    /// stores lists serialized decodes them first).
    ///
    /// `f` may use the state again: it sees the list as it was when the call began.
    ///
    /// ```
    /// # use cornerstone_backend_api::{ListState, Result};
    /// # fn demo(events: &ListState<String, u64>) -> Result<()> {
    /// let key = "alice".to_string();
    /// let (count, last) = events.with_elements(&key, &(), |list| (list.len(), list.last().copied()))?;
    /// # Ok(()) }
    /// ```
    pub fn with_elements<R>(&self, key: &K, ns: &N, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        let mut f = Some(f);
        let mut out = None;
        self.table.with_elements(key, ns, &mut |elements| {
            if let Some(f) = f.take() {
                out = Some(f(elements));
            }
        })?;
        out.ok_or_else(|| {
            Error::internal("the list table did not call back with the elements")
                .with_context("state", &*self.name)
        })
    }

    /// Appends an element.
    pub fn add(&self, key: &K, ns: &N, value: T) -> Result<()> {
        self.table.add(key, ns, value)
    }

    /// Appends elements.
    pub fn add_all(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.table.add_all(key, ns, values)
    }

    /// Replaces the list; an empty list clears it.
    pub fn update(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        self.table.update(key, ns, values)
    }

    /// Clears the list.
    pub fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.table.remove(key, ns)
    }

    /// Appends the lists of `sources` to the list of `target` and clears the sources (for
    /// merging windows).
    ///
    /// Under TTL, the elements keep their timestamps, and elements of the sources
    /// that have expired are dropped, whatever the visibility of expired values.
    pub fn merge_namespaces(&self, key: &K, target: &N, sources: &[N]) -> Result<()> {
        self.table.merge_namespaces(key, target, sources)
    }

    /// The keys that have a list in `ns`.
    pub fn state_keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
}
handle_debug!(ListState<K, T, N>);

/// A map per key and namespace (Flink's `MapState`).
pub struct MapState<K, UK, UV, N = VoidNamespace> {
    table: Arc<dyn MapTable<K, UK, UV, N>>,
    name: Arc<str>,
}

impl<K, UK, UV, N> MapState<K, UK, UV, N> {
    pub(crate) fn new(name: &str, table: Arc<dyn MapTable<K, UK, UV, N>>) -> Self {
        MapState {
            table,
            name: name.into(),
        }
    }
    fn clone_extra(&self) -> Self {
        Self::new(&self.name, Arc::clone(&self.table))
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `user_key`.
    pub fn get(&self, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        self.table.get(key, ns, user_key)
    }

    /// Sets the value of `user_key`.
    pub fn put(&self, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()> {
        self.table.put(key, ns, user_key, value)
    }

    /// Sets several entries.
    pub fn put_all(&self, key: &K, ns: &N, entries: Vec<(UK, UV)>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.table.put_all(key, ns, entries)
    }

    /// Removes `user_key`.
    pub fn remove(&self, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        self.table.remove(key, ns, user_key)
    }

    /// Whether `user_key` has a value.
    pub fn contains(&self, key: &K, ns: &N, user_key: &UK) -> Result<bool> {
        self.table.contains(key, ns, user_key)
    }

    /// Calls `f` on every entry (in no particular order on heap backends, in key-byte order
    /// on RocksDB).
    pub fn for_each(&self, key: &K, ns: &N, mut f: impl FnMut(&UK, &UV)) -> Result<()> {
        self.table.for_each(key, ns, &mut f)
    }

    /// Every entry.
    pub fn entries(&self, key: &K, ns: &N) -> Result<Vec<(UK, UV)>>
    where
        UK: Clone,
        UV: Clone,
    {
        let mut out = Vec::new();
        self.table
            .for_each(key, ns, &mut |k, v| out.push((k.clone(), v.clone())))?;
        Ok(out)
    }

    /// Every user key.
    pub fn keys(&self, key: &K, ns: &N) -> Result<Vec<UK>>
    where
        UK: Clone,
    {
        let mut out = Vec::new();
        self.table
            .for_each(key, ns, &mut |k, _| out.push(k.clone()))?;
        Ok(out)
    }

    /// Every value.
    pub fn values(&self, key: &K, ns: &N) -> Result<Vec<UV>>
    where
        UV: Clone,
    {
        let mut out = Vec::new();
        self.table
            .for_each(key, ns, &mut |_, v| out.push(v.clone()))?;
        Ok(out)
    }

    /// Whether the map is empty or absent.
    pub fn is_empty(&self, key: &K, ns: &N) -> Result<bool> {
        self.table.is_empty(key, ns)
    }

    /// Removes the whole map.
    pub fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.table.clear(key, ns)
    }

    /// The keys that have a map in `ns`.
    pub fn state_keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
}
handle_debug!(MapState<K, UK, UV, N>);

/// A value folded with a reduce function (Flink's `ReducingState`).
pub struct ReducingState<K, V, N = VoidNamespace> {
    table: Arc<dyn ValueTable<K, V, N>>,
    name: Arc<str>,
    reduce: ReduceFn<V>,
}

impl<K, V, N> ReducingState<K, V, N> {
    pub(crate) fn new(
        name: &str,
        table: Arc<dyn ValueTable<K, V, N>>,
        reduce: ReduceFn<V>,
    ) -> Self {
        ReducingState {
            table,
            name: name.into(),
            reduce,
        }
    }
    fn clone_extra(&self) -> Self {
        Self::new(
            &self.name,
            Arc::clone(&self.table),
            Arc::clone(&self.reduce),
        )
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folded value, if anything was added.
    pub fn get(&self, key: &K, ns: &N) -> Result<Option<V>> {
        self.table.get(key, ns)
    }

    /// Folds `value` in.
    pub fn add(&self, key: &K, ns: &N, value: V) -> Result<()> {
        let mut value = Some(value);
        let reduce = &self.reduce;
        self.table.transform(key, ns, &mut |current| {
            let new = value.take()?;
            Some(match current {
                Some(current) => reduce(current, new),
                None => new,
            })
        })
    }

    /// Clears the value.
    pub fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.table.remove(key, ns)
    }

    /// Folds the values of `sources` into `target` and clears the sources.
    ///
    /// Under TTL, a value that moves alone keeps its timestamp, the fold of two live values
    /// is stamped with the current time, and expired values are dropped, whatever the
    /// visibility of expired values.
    pub fn merge_namespaces(&self, key: &K, target: &N, sources: &[N]) -> Result<()> {
        let reduce = &self.reduce;
        self.table
            .merge_namespaces(key, target, sources, &mut |current, v| reduce(current, v))
    }

    /// The keys that have a value in `ns`.
    pub fn state_keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
}
handle_debug!(ReducingState<K, V, N>);

/// An accumulator folded with an [`AggregateFunction`] (Flink's `AggregatingState`).
pub struct AggregatingState<K, IN, ACC, OUT, N = VoidNamespace> {
    table: Arc<dyn ValueTable<K, ACC, N>>,
    name: Arc<str>,
    function: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
}

impl<K, IN, ACC, OUT, N> AggregatingState<K, IN, ACC, OUT, N> {
    pub(crate) fn new(
        name: &str,
        table: Arc<dyn ValueTable<K, ACC, N>>,
        function: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
    ) -> Self {
        AggregatingState {
            table,
            name: name.into(),
            function,
        }
    }
    fn clone_extra(&self) -> Self {
        Self::new(
            &self.name,
            Arc::clone(&self.table),
            Arc::clone(&self.function),
        )
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The result of the accumulator, if anything was added.
    pub fn get(&self, key: &K, ns: &N) -> Result<Option<OUT>> {
        Ok(self
            .table
            .get(key, ns)?
            .map(|acc| self.function.result(&acc)))
    }

    /// The accumulator itself.
    pub fn accumulator(&self, key: &K, ns: &N) -> Result<Option<ACC>> {
        self.table.get(key, ns)
    }

    /// Folds `value` in.
    pub fn add(&self, key: &K, ns: &N, value: IN) -> Result<()> {
        let mut value = Some(value);
        let function = &self.function;
        self.table.transform(key, ns, &mut |current| {
            let value = value.take()?;
            let acc = current.unwrap_or_else(|| function.create_accumulator());
            Some(function.add(value, acc))
        })
    }

    /// Clears the accumulator.
    pub fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.table.remove(key, ns)
    }

    /// Merges the accumulators of `sources` into `target` and clears the sources.
    ///
    /// Under TTL, as [`ReducingState::merge_namespaces`].
    pub fn merge_namespaces(&self, key: &K, target: &N, sources: &[N]) -> Result<()> {
        let function = &self.function;
        self.table
            .merge_namespaces(key, target, sources, &mut |current, acc| {
                function.merge(current, acc)
            })
    }

    /// The keys that have an accumulator in `ns`.
    pub fn state_keys(&self, ns: &N) -> Result<Vec<K>> {
        self.table.keys(ns)
    }
}
handle_debug!(AggregatingState<K, IN, ACC, OUT, N>);
