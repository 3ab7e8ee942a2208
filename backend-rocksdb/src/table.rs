//! The table primitives over column families: value, list (appends through the merge
//! operator) and map (one RocksDB entry per map entry, iterated by prefix).

use std::marker::PhantomData;
use std::sync::Arc;

use cornerstone_backend_api::keygroup::KeyGroupAssigner;
use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::spi::table::{ListTable, MapTable, ValueTable};
use cornerstone_backend_api::{Error, KeyGroupRange, Result, StateKey, StateValue};
use rocksdb::{ReadOptions, WriteBatch};
use serde::de::DeserializeOwned;

use crate::db::{Db, Instance};
use crate::error::from_rocksdb;
use crate::keys::{prefix_successor, split};

/// Visits one entry (key, value); returns `false` to stop.
pub(crate) type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'v;

/// Type markers of a table.
type Types<K, N, V> = PhantomData<fn() -> (K, N, V)>;

/// Which entries an iterator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seek {
    /// Every entry, in key order (across keys, key groups, the whole column family).
    Total,
    /// Only the entries of the seek key's key (its namespaces, its map entries): the
    /// iterator reads one bucket of a hash-indexed memtable.
    WithinKey,
}

/// Visits the entries of `cf` in `[lower, upper)`; `visit` returns `false` to stop. With
/// [`Seek::WithinKey`], `[lower, upper)` must lie within the entries of one key.
pub(crate) fn scan(
    db: &Db,
    cf: &impl rocksdb::AsColumnFamilyRef,
    lower: &[u8],
    upper: Option<Vec<u8>>,
    seek: Seek,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let mut ro = ReadOptions::default();
    ro.set_total_order_seek(seek == Seek::Total);
    if let Some(upper) = upper {
        ro.set_iterate_upper_bound(upper);
    }
    let mut it = db.raw_iterator_cf_opt(cf, ro);
    it.seek(lower);
    while it.valid() {
        if let (Some(k), Some(v)) = (it.key(), it.value())
            && !visit(k, v)?
        {
            return Ok(());
        }
        it.next();
    }
    it.status().map_err(|e| from_rocksdb("iterate", e))
}

/// What every table of one state shares: the database, the column family, the key layout.
pub(crate) struct Core {
    pub(crate) inst: Arc<Instance>,
    pub(crate) cf: String,
    pub(crate) state: Arc<str>,
    pub(crate) prefix_len: usize,
    pub(crate) key_groups: KeyGroupAssigner,
    pub(crate) range: KeyGroupRange,
}

impl Core {
    /// The stored key of (key, namespace): the key-group prefix, the key, the namespace.
    #[inline]
    fn key_ns<K: serde::Serialize, N: serde::Serialize>(&self, key: &K, ns: &N) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(32);
        out.resize(self.prefix_len, 0);
        let start = codec::encode_len_prefixed(key, &mut out)?;
        let kg = self.key_groups.of_bytes(&out[start..]);
        if !self.range.contains(kg) {
            return Err(Error::invalid_input(
                "key belongs to a key group outside this backend's range",
            )
            .with_context("key_group", kg)
            .with_context("range", self.range));
        }
        if self.prefix_len == 1 {
            out[0] = kg as u8;
        } else {
            out[..2].copy_from_slice(&(kg as u16).to_be_bytes());
        }
        codec::encode_len_prefixed(ns, &mut out)?;
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        codec::decode(bytes).map_err(|e| e.with_context("state", &self.state))
    }

    #[inline]
    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>> {
        let cf = self.inst.cf(&self.cf)?;
        match self.inst.db.get_pinned_cf_opt(&cf, k, &self.inst.read) {
            Ok(Some(v)) => self.decode(&v).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(from_rocksdb("get", e).with_context("state", &self.state)),
        }
    }

    fn exists(&self, k: &[u8]) -> Result<bool> {
        let cf = self.inst.cf(&self.cf)?;
        self.inst
            .db
            .get_pinned_cf_opt(&cf, k, &self.inst.read)
            .map(|v| v.is_some())
            .map_err(|e| from_rocksdb("get", e).with_context("state", &self.state))
    }

    #[inline]
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()> {
        let cf = self.inst.cf(&self.cf)?;
        self.inst
            .db
            .put_cf_opt(&cf, k, v, &self.inst.write)
            .map_err(|e| from_rocksdb("put", e).with_context("state", &self.state))
    }

    fn merge(&self, k: &[u8], v: &[u8]) -> Result<()> {
        let cf = self.inst.cf(&self.cf)?;
        self.inst
            .db
            .merge_cf_opt(&cf, k, v, &self.inst.write)
            .map_err(|e| from_rocksdb("merge", e).with_context("state", &self.state))
    }

    fn delete(&self, k: &[u8]) -> Result<()> {
        let cf = self.inst.cf(&self.cf)?;
        self.inst
            .db
            .delete_cf_opt(&cf, k, &self.inst.write)
            .map_err(|e| from_rocksdb("delete", e).with_context("state", &self.state))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inst
            .db
            .write_opt(batch, &self.inst.write)
            .map_err(|e| from_rocksdb("write batch", e).with_context("state", &self.state))
    }

    /// Visits the entries whose stored key starts with `prefix`, which holds a whole key
    /// (its namespace too: the entries of one map) with [`Seek::WithinKey`], or anything
    /// with [`Seek::Total`].
    fn scan_prefix(&self, prefix: &[u8], seek: Seek, visit: &mut Visit<'_>) -> Result<()> {
        let cf = self.inst.cf(&self.cf)?;
        scan(
            &self.inst.db,
            &cf,
            prefix,
            prefix_successor(prefix),
            seek,
            visit,
        )
        .map_err(|e| e.with_context("state", &self.state))
    }

    /// The keys with an entry in namespace `ns`, each once.
    fn keys<K: DeserializeOwned, N: serde::Serialize>(&self, ns: &N) -> Result<Vec<K>> {
        let ns = codec::encode(ns)?;
        let mut out = Vec::new();
        let mut last: Vec<u8> = Vec::new();
        let mut first = true;
        let prefix_len = self.prefix_len;
        self.scan_prefix(&[], Seek::Total, &mut |k, _| {
            let s = split(k, prefix_len)?;
            if s.namespace == ns.as_slice() && (first || s.key != last.as_slice()) {
                first = false;
                last.clear();
                last.extend_from_slice(s.key);
                out.push(self.decode(s.key)?);
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

/// The RocksDB [`ValueTable`].
pub(crate) struct RocksValueTable<K, V, N> {
    pub(crate) core: Core,
    pub(crate) _types: Types<K, N, V>,
}

impl<K: StateKey, N: StateKey, V: StateValue> ValueTable<K, V, N> for RocksValueTable<K, V, N> {
    #[inline]
    fn get(&self, key: &K, ns: &N) -> Result<Option<V>> {
        self.core.get(&self.core.key_ns(key, ns)?)
    }
    #[inline]
    fn put(&self, key: &K, ns: &N, value: V) -> Result<()> {
        self.core
            .put(&self.core.key_ns(key, ns)?, &codec::encode(&value)?)
    }
    fn remove(&self, key: &K, ns: &N) -> Result<()> {
        self.core.delete(&self.core.key_ns(key, ns)?)
    }
    fn take(&self, key: &K, ns: &N) -> Result<Option<V>> {
        let k = self.core.key_ns(key, ns)?;
        let v = self.core.get(&k)?;
        if v.is_some() {
            self.core.delete(&k)?;
        }
        Ok(v)
    }
    fn transform(&self, key: &K, ns: &N, f: &mut dyn FnMut(Option<V>) -> Option<V>) -> Result<()> {
        let k = self.core.key_ns(key, ns)?;
        let old = self.core.get(&k)?;
        let existed = old.is_some();
        match f(old) {
            Some(new) => self.core.put(&k, &codec::encode(&new)?),
            None if existed => self.core.delete(&k),
            None => Ok(()),
        }
    }
    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.core.keys(ns)
    }
    fn cleanup_incrementally(
        &self,
        _budget: usize,
        _keep: &mut dyn FnMut(&V) -> bool,
    ) -> Result<()> {
        // RocksDB cleans up in compactions, not on access.
        Ok(())
    }
}

/// The RocksDB [`ListTable`]: a serialized `Vec` per (key, namespace), appended to with
/// the merge operator.
pub(crate) struct RocksListTable<K, T, N> {
    pub(crate) core: Core,
    pub(crate) _types: Types<K, N, T>,
}

impl<K: StateKey, N: StateKey, T: StateValue> ListTable<K, T, N> for RocksListTable<K, T, N> {
    fn get(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>> {
        self.core.get(&self.core.key_ns(key, ns)?)
    }
    fn with_elements(&self, key: &K, ns: &N, f: &mut dyn FnMut(&[T])) -> Result<()> {
        let list: Option<Vec<T>> = self.core.get(&self.core.key_ns(key, ns)?)?;
        f(list.as_deref().unwrap_or(&[]));
        Ok(())
    }
    fn add(&self, key: &K, ns: &N, value: T) -> Result<()> {
        let mut operand = Vec::with_capacity(16);
        operand.extend_from_slice(&1u64.to_be_bytes());
        codec::encode_into(&value, &mut operand)?;
        self.core.merge(&self.core.key_ns(key, ns)?, &operand)
    }
    fn add_all(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.core
            .merge(&self.core.key_ns(key, ns)?, &codec::encode(&values)?)
    }
    fn update(&self, key: &K, ns: &N, values: Vec<T>) -> Result<()> {
        let k = self.core.key_ns(key, ns)?;
        if values.is_empty() {
            return self.core.delete(&k);
        }
        self.core.put(&k, &codec::encode(&values)?)
    }
    fn remove(&self, key: &K, ns: &N) -> Result<()> {
        self.core.delete(&self.core.key_ns(key, ns)?)
    }
    fn take(&self, key: &K, ns: &N) -> Result<Option<Vec<T>>> {
        let k = self.core.key_ns(key, ns)?;
        let v: Option<Vec<T>> = self.core.get(&k)?;
        if v.is_some() {
            self.core.delete(&k)?;
        }
        Ok(v)
    }
    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.core.keys(ns)
    }
    fn cleanup_incrementally(
        &self,
        _budget: usize,
        _keep: &mut dyn FnMut(&T) -> bool,
    ) -> Result<()> {
        Ok(())
    }
}

/// The RocksDB [`MapTable`]: one entry per map entry, under the (key, namespace) prefix.
pub(crate) struct RocksMapTable<K, UK, UV, N> {
    pub(crate) core: Core,
    pub(crate) _types: Types<K, N, (UK, UV)>,
}

impl<K: StateKey, N: StateKey, UK: StateKey, UV: StateValue> RocksMapTable<K, UK, UV, N> {
    #[inline]
    fn entry_key(&self, key: &K, ns: &N, user_key: &UK) -> Result<Vec<u8>> {
        let mut k = self.core.key_ns(key, ns)?;
        codec::encode_into(user_key, &mut k)?;
        Ok(k)
    }
}

impl<K: StateKey, N: StateKey, UK: StateKey, UV: StateValue> MapTable<K, UK, UV, N>
    for RocksMapTable<K, UK, UV, N>
{
    #[inline]
    fn get(&self, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        self.core.get(&self.entry_key(key, ns, user_key)?)
    }
    #[inline]
    fn put(&self, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()> {
        self.core.put(
            &self.entry_key(key, ns, &user_key)?,
            &codec::encode(&value)?,
        )
    }
    fn put_all(&self, key: &K, ns: &N, entries: Vec<(UK, UV)>) -> Result<()> {
        let prefix = self.core.key_ns(key, ns)?;
        let cf = self.core.inst.cf(&self.core.cf)?;
        let mut batch = WriteBatch::default();
        let mut k = Vec::with_capacity(prefix.len() + 16);
        let mut v = Vec::with_capacity(16);
        for (uk, uv) in &entries {
            k.clear();
            k.extend_from_slice(&prefix);
            codec::encode_into(uk, &mut k)?;
            v.clear();
            codec::encode_into(uv, &mut v)?;
            batch.put_cf(&cf, &k, &v);
        }
        drop(cf);
        self.core.write(batch)
    }
    fn remove(&self, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        self.core.delete(&self.entry_key(key, ns, user_key)?)
    }
    fn contains(&self, key: &K, ns: &N, user_key: &UK) -> Result<bool> {
        self.core.exists(&self.entry_key(key, ns, user_key)?)
    }
    fn for_each(&self, key: &K, ns: &N, f: &mut dyn FnMut(&UK, &UV)) -> Result<()> {
        let prefix = self.core.key_ns(key, ns)?;
        let core = &self.core;
        core.scan_prefix(&prefix, Seek::WithinKey, &mut |k, v| {
            let uk: UK = core.decode(&k[prefix.len()..])?;
            let uv: UV = core.decode(v)?;
            f(&uk, &uv);
            Ok(true)
        })
    }
    fn is_empty(&self, key: &K, ns: &N) -> Result<bool> {
        let prefix = self.core.key_ns(key, ns)?;
        let mut empty = true;
        self.core
            .scan_prefix(&prefix, Seek::WithinKey, &mut |_, _| {
                empty = false;
                Ok(false)
            })?;
        Ok(empty)
    }
    fn clear(&self, key: &K, ns: &N) -> Result<()> {
        let prefix = self.core.key_ns(key, ns)?;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        self.core
            .scan_prefix(&prefix, Seek::WithinKey, &mut |k, _| {
                keys.push(k.to_vec());
                Ok(true)
            })?;
        if keys.is_empty() {
            return Ok(());
        }
        let cf = self.core.inst.cf(&self.core.cf)?;
        let mut batch = WriteBatch::default();
        for k in &keys {
            batch.delete_cf(&cf, k);
        }
        drop(cf);
        self.core.write(batch)
    }
    fn keys(&self, ns: &N) -> Result<Vec<K>> {
        self.core.keys(ns)
    }
    fn cleanup_incrementally(
        &self,
        _budget: usize,
        _keep: &mut dyn FnMut(&UV) -> bool,
    ) -> Result<()> {
        Ok(())
    }
}
