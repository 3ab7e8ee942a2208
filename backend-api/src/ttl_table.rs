//! TTL as decorators over the table primitives: a TTL state stores [`TtlValue`]s in an
//! ordinary table, and these wrappers stamp, check, hide and clean them up.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::error::Result;
use crate::spi::table::{
    ListTable, MapTable, SnapshotFilter, ValueTable, merge_lists, merge_values,
};
use crate::ttl::{StateTtlConfig, StateVisibility, TtlValue, UpdateType};

struct Ttl {
    config: StateTtlConfig,
    clock: SharedClock,
}

impl Ttl {
    fn now(&self) -> u64 {
        self.clock.now_millis()
    }
    fn expired<V>(&self, v: &TtlValue<V>, now: u64) -> bool {
        self.config.is_expired(v.timestamp, now)
    }
    fn return_expired(&self) -> bool {
        self.config.visibility == StateVisibility::ReturnExpiredIfNotCleanedUp
    }
    fn update_on_read(&self) -> bool {
        self.config.update_type == UpdateType::OnReadAndWrite
    }
}

/// The snapshot filter that leaves expired values out of full snapshots, when configured.
pub(crate) fn snapshot_filter<V: 'static>(
    config: &StateTtlConfig,
) -> Option<SnapshotFilter<TtlValue<V>>> {
    if !config.cleanup.in_full_snapshot {
        return None;
    }
    let config = config.clone();
    Some(Arc::new(move |v: &TtlValue<V>, now| {
        !config.is_expired(v.timestamp, now)
    }))
}

/// Runs one incremental cleanup step when configured.
macro_rules! incremental_step {
    ($self:ident, $now:ident) => {
        if let Some(budget) = $self.ttl.config.cleanup.incremental_cleanup_size {
            let ttl = &$self.ttl;
            $self
                .inner
                .cleanup_incrementally(budget, &mut |v| !ttl.expired(v, $now))?;
        }
    };
}

/// A value table with TTL.
pub(crate) struct TtlValueTable<K, V, N> {
    inner: Arc<dyn ValueTable<K, TtlValue<V>, N>>,
    ttl: Ttl,
}

impl<K, N, V> TtlValueTable<K, V, N> {
    pub(crate) fn new(
        inner: Arc<dyn ValueTable<K, TtlValue<V>, N>>,
        config: StateTtlConfig,
        clock: SharedClock,
    ) -> Self {
        TtlValueTable {
            inner,
            ttl: Ttl { config, clock },
        }
    }
}

impl<K: Send + Sync, N: Send + Sync, V: Clone + Send + Sync> ValueTable<K, V, N>
    for TtlValueTable<K, V, N>
{
    fn get(&self, key: &K, ns: &N) -> Result<Option<V>> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let Some(stored) = self.inner.get(key, ns)? else {
            return Ok(None);
        };
        if self.ttl.expired(&stored, now) {
            self.inner.remove(key, ns)?;
            return Ok(self.ttl.return_expired().then_some(stored.value));
        }
        if self.ttl.update_on_read() {
            self.inner.put(
                key,
                ns,
                TtlValue {
                    timestamp: now,
                    value: stored.value.clone(),
                },
            )?;
        }
        Ok(Some(stored.value))
    }

    fn put(&self, key: &K, ns: &N, value: V) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        self.inner.put(
            key,
            ns,
            TtlValue {
                timestamp: now,
                value,
            },
        )
    }

    fn remove(&self, key: &K, ns: &N) -> Result<()> {
        self.inner.remove(key, ns)
    }

    fn take(&self, key: &K, ns: &N) -> Result<Option<V>> {
        let now = self.ttl.now();
        Ok(self
            .inner
            .take(key, ns)?
            .filter(|v| self.ttl.return_expired() || !self.ttl.expired(v, now))
            .map(|v| v.value))
    }

    fn transform(&self, key: &K, ns: &N, f: &mut dyn FnMut(Option<V>) -> Option<V>) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let ttl = &self.ttl;
        self.inner.transform(key, ns, &mut |old| {
            let current = old.filter(|v| !ttl.expired(v, now)).map(|v| v.value);
            f(current).map(|value| TtlValue {
                timestamp: now,
                value,
            })
        })
    }

    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.inner.keys(ns)
    }

    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&V) -> bool) -> Result<()> {
        self.inner
            .cleanup_incrementally(budget, &mut |v| keep(&v.value))
    }

    /// Merges the stored values: expired values (of the sources and of the target) are
    /// cleaned up, never folded or moved; a live value that moves alone keeps its timestamp;
    /// only the fold of two live values is stamped now (it is a write).
    fn merge_namespaces(
        &self,
        key: &K,
        target: &N,
        sources: &[N],
        merge: &mut dyn FnMut(V, V) -> V,
    ) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let ttl = &self.ttl;
        merge_values(
            &*self.inner,
            key,
            target,
            sources,
            &mut |v| !ttl.expired(v, now),
            &mut |current, value| TtlValue {
                timestamp: now,
                value: merge(current.value, value.value),
            },
        )
    }
}

/// A list table with TTL per element.
pub(crate) struct TtlListTable<K, T, N> {
    inner: Arc<dyn ListTable<K, TtlValue<T>, N>>,
    ttl: Ttl,
}

impl<K, N, T> TtlListTable<K, T, N> {
    pub(crate) fn new(
        inner: Arc<dyn ListTable<K, TtlValue<T>, N>>,
        config: StateTtlConfig,
        clock: SharedClock,
    ) -> Self {
        TtlListTable {
            inner,
            ttl: Ttl { config, clock },
        }
    }

    fn stamp(now: u64, values: Vec<T>) -> Vec<TtlValue<T>> {
        values
            .into_iter()
            .map(|value| TtlValue {
                timestamp: now,
                value,
            })
            .collect()
    }
}

impl<K: Send + Sync, N: Send + Sync, T: Clone + Send + Sync> ListTable<K, T, N>
    for TtlListTable<K, T, N>
{
    fn get(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let Some(stored) = self.inner.get(key, ns)? else {
            return Ok(None);
        };
        let total = stored.len();
        // Expired elements that are returned keep their place in insertion order.
        let all: Option<Vec<T>> = self
            .ttl
            .return_expired()
            .then(|| stored.iter().map(|v| v.value.clone()).collect());
        let (live, expired): (Vec<_>, Vec<_>) =
            stored.into_iter().partition(|v| !self.ttl.expired(v, now));
        let changed = !expired.is_empty() || self.ttl.update_on_read();
        let visible: Vec<T> = match all {
            Some(all) => all,
            None => live.iter().map(|v| v.value.clone()).collect(),
        };
        if changed {
            let kept: Vec<TtlValue<T>> = if self.ttl.update_on_read() {
                Self::stamp(now, live.into_iter().map(|v| v.value).collect())
            } else {
                live
            };
            if kept.len() != total || self.ttl.update_on_read() {
                self.inner.update(key, ns, kept)?;
            }
        }
        Ok((!visible.is_empty()).then_some(visible))
    }

    fn with_elements(&self, key: &K, ns: &N, f: &mut dyn FnMut(&[T])) -> Result<()> {
        f(&self.get(key, ns)?.unwrap_or_default());
        Ok(())
    }

    fn add(&self, key: &K, ns: &N, value: T) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        self.inner.add(
            key,
            ns,
            TtlValue {
                timestamp: now,
                value,
            },
        )
    }

    fn add_all(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        self.inner.add_all(key, ns, Self::stamp(now, values))
    }

    fn update(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        self.inner.update(key, ns, Self::stamp(now, values))
    }

    fn remove(&self, key: &K, ns: &N) -> Result<()> {
        self.inner.remove(key, ns)
    }

    fn take(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>> {
        let now = self.ttl.now();
        let Some(stored) = self.inner.take(key, ns)? else {
            return Ok(None);
        };
        let visible: Vec<T> = stored
            .into_iter()
            .filter(|v| self.ttl.return_expired() || !self.ttl.expired(v, now))
            .map(|v| v.value)
            .collect();
        Ok((!visible.is_empty()).then_some(visible))
    }

    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.inner.keys(ns)
    }

    fn cleanup_incrementally(&self, budget: usize, keep: &mut dyn FnMut(&T) -> bool) -> Result<()> {
        self.inner
            .cleanup_incrementally(budget, &mut |v| keep(&v.value))
    }

    /// Moves the stored elements with their timestamps; expired elements of the sources are
    /// cleaned up, not moved.
    fn merge_namespaces(&self, key: &K, target: &N, sources: &[N]) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let ttl = &self.ttl;
        merge_lists(&*self.inner, key, target, sources, &mut |v| {
            !ttl.expired(v, now)
        })
    }
}

/// A map table with TTL per entry.
pub(crate) struct TtlMapTable<K, UK, UV, N> {
    inner: Arc<dyn MapTable<K, UK, TtlValue<UV>, N>>,
    ttl: Ttl,
}

impl<K, N, UK, UV> TtlMapTable<K, UK, UV, N> {
    pub(crate) fn new(
        inner: Arc<dyn MapTable<K, UK, TtlValue<UV>, N>>,
        config: StateTtlConfig,
        clock: SharedClock,
    ) -> Self {
        TtlMapTable {
            inner,
            ttl: Ttl { config, clock },
        }
    }
}

impl<K, N, UK, UV> MapTable<K, UK, UV, N> for TtlMapTable<K, UK, UV, N>
where
    K: Send + Sync,
    N: Send + Sync,
    UK: Clone + Send + Sync,
    UV: Clone + Send + Sync,
{
    fn get(&self, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let Some(stored) = self.inner.get(key, ns, user_key)? else {
            return Ok(None);
        };
        if self.ttl.expired(&stored, now) {
            self.inner.remove(key, ns, user_key)?;
            return Ok(self.ttl.return_expired().then_some(stored.value));
        }
        if self.ttl.update_on_read() {
            self.inner.put(
                key,
                ns,
                user_key.clone(),
                TtlValue {
                    timestamp: now,
                    value: stored.value.clone(),
                },
            )?;
        }
        Ok(Some(stored.value))
    }

    fn put(&self, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        self.inner.put(
            key,
            ns,
            user_key,
            TtlValue {
                timestamp: now,
                value,
            },
        )
    }

    fn put_all(&self, key: &K, ns: &N, entries: Vec<(UK, UV)>) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let stamped = entries
            .into_iter()
            .map(|(k, value)| {
                (
                    k,
                    TtlValue {
                        timestamp: now,
                        value,
                    },
                )
            })
            .collect();
        self.inner.put_all(key, ns, stamped)
    }

    fn remove(&self, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        self.inner.remove(key, ns, user_key)
    }

    fn contains(&self, key: &K, ns: &N, user_key: &UK) -> Result<bool> {
        Ok(self.get(key, ns, user_key)?.is_some())
    }

    fn for_each(&self, key: &K, ns: &N, f: &mut dyn FnMut(&UK, &UV)) -> Result<()> {
        let now = self.ttl.now();
        incremental_step!(self, now);
        let mut expired = Vec::new();
        let mut refreshed = Vec::new();
        let ttl = &self.ttl;
        self.inner.for_each(key, ns, &mut |k, v| {
            if ttl.expired(v, now) {
                expired.push(k.clone());
                if ttl.return_expired() {
                    f(k, &v.value);
                }
            } else {
                if ttl.update_on_read() {
                    refreshed.push((
                        k.clone(),
                        TtlValue {
                            timestamp: now,
                            value: v.value.clone(),
                        },
                    ));
                }
                f(k, &v.value);
            }
        })?;
        for k in &expired {
            self.inner.remove(key, ns, k)?;
        }
        if !refreshed.is_empty() {
            self.inner.put_all(key, ns, refreshed)?;
        }
        Ok(())
    }

    fn is_empty(&self, key: &K, ns: &N) -> Result<bool> {
        let mut any = false;
        self.for_each(key, ns, &mut |_, _| any = true)?;
        Ok(!any)
    }

    fn clear(&self, key: &K, ns: &N) -> Result<()> {
        self.inner.clear(key, ns)
    }

    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.inner.keys(ns)
    }

    fn cleanup_incrementally(
        &self,
        budget: usize,
        keep: &mut dyn FnMut(&UV) -> bool,
    ) -> Result<()> {
        self.inner
            .cleanup_incrementally(budget, &mut |v| keep(&v.value))
    }
}
