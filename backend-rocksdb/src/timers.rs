//! The RocksDB timer queue: timers in a column family of their own, keyed so that the
//! first key of a key group is its next timer, with a small in-memory cache of each key
//! group's first timers (Flink's `RocksDBCachingPriorityQueueSet`).
//!
//! ```text
//! key   = key_group (big-endian, 1 or 2 bytes, as the states)
//!       | timestamp (8 bytes, big-endian with the sign bit flipped: byte order is time order)
//!       | entry (varint(key length) | serialized key | serialized namespace)
//! value = empty
//! ```
//!
//! The cache of a key group holds its first timers in order, at most [`CACHE_SIZE`] of
//! them, and knows whether it holds them all. Polling takes the first one from the cache
//! and deletes it; a key group is read from RocksDB only when its cache runs dry while more
//! timers are stored.
//!
//! Changes are written through a write batch (as Flink's `RocksDBWriteBatchWrapper`),
//! applied when it holds [`BATCH_SIZE`] changes and before anything reads the column
//! family: a refill, a count, a visit, and (through [`RocksTimerQueue::flush`]) the
//! backend's snapshots and compactions. One write per batch instead of one per change
//! saves RocksDB's per-write work (write-group join, sequence numbers), the larger part
//! of a timer's cost. State is written without WAL, so a batch not yet applied is lost in
//! a crash exactly as the memtable is: recovery is from a checkpoint either way.
//!
//! A cache also keeps a lower bound of the stored timers it does not hold (its `floor`),
//! and a refill seeks there rather than to the start of the key group: the timers before
//! it were fired or deleted, and their tombstones stay in RocksDB until a compaction, so
//! seeking past them keeps a refill from stepping over every timer fired so far.

use std::collections::BTreeSet;

use cornerstone_backend_api::timer::{
    KeyGroupHeads, RawTimer, TimerEntry, TimerQueue, TimerVisit, encode_timestamp, split_entry,
};
use cornerstone_backend_api::{Error, Result};
use parking_lot::Mutex;
use rocksdb::WriteBatch;

use crate::error::from_rocksdb;
use crate::keys::{key_group_bound, key_group_of, push_key_group};
use crate::table::{Core, Seek, scan};

/// The most timers cached per key group.
pub(crate) const CACHE_SIZE: usize = 128;

/// The most changes a write batch holds before it is applied (Flink's default is 500).
pub(crate) const BATCH_SIZE: usize = 512;

/// The stored form of a timestamp: big-endian with the sign bit flipped.
pub(crate) fn sortable_timestamp(timestamp: i64) -> [u8; 8] {
    ((timestamp as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp of [`sortable_timestamp`] bytes.
fn timestamp_of(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The stored key of a timer.
pub(crate) fn timer_key(
    out: &mut Vec<u8>,
    key_group: u32,
    prefix_len: usize,
    ts: i64,
    entry: &[u8],
) {
    out.clear();
    push_key_group(out, key_group, prefix_len);
    out.extend_from_slice(&sortable_timestamp(ts));
    out.extend_from_slice(entry);
}

/// A stored timer key's key group, timestamp and entry (the entry not checked).
fn parts(raw: &[u8], prefix_len: usize) -> Result<(u32, i64, &[u8])> {
    let bad = || {
        Error::corrupted("malformed timer key in the RocksDB state").with_context("len", raw.len())
    };
    let key_group = key_group_of(raw, prefix_len).ok_or_else(bad)?;
    let Some((ts, entry)) = raw[prefix_len..].split_first_chunk::<8>() else {
        return Err(bad());
    };
    Ok((key_group, timestamp_of(*ts), entry))
}

/// Splits a stored timer key into its key group, timestamp and entry, checking the entry.
///
/// # Errors
/// [`cornerstone_backend_api::ErrorKind::Corrupted`] when it is too short or its entry is
/// malformed.
pub(crate) fn split_timer_key(raw: &[u8], prefix_len: usize) -> Result<(u32, i64, &[u8])> {
    let (key_group, ts, entry) = parts(raw, prefix_len)?;
    split_entry(entry)?;
    Ok((key_group, ts, entry))
}

/// A timer record of a full snapshot from a stored timer key: (key, namespace, value).
pub(crate) fn timer_record(raw: &[u8], prefix_len: usize) -> Result<(&[u8], &[u8], [u8; 8])> {
    let (_, ts, entry) = parts(raw, prefix_len)?;
    let (key, namespace) = split_entry(entry)?;
    Ok((key, namespace, encode_timestamp(ts)))
}

/// The first timers of one key group.
#[derive(Default)]
struct Cache {
    timers: BTreeSet<(i64, TimerEntry)>,
    /// Whether `timers` are all the key group's timers. When not, `timers` is never empty.
    complete: bool,
    /// No stored timer of the key group outside `timers` is before this one (`None`: no
    /// bound known), where a refill seeks.
    floor: Option<(i64, TimerEntry)>,
}

impl Cache {
    /// Notes that `timer`, the last cached timer, left the cache (fired or deleted) and
    /// the cache is now empty: every stored timer is after it, so a refill seeks there and
    /// steps over one tombstone, not the tombstones of all the timers the cache held.
    fn raise_floor(&mut self, timer: &(i64, TimerEntry)) {
        if self.floor.as_ref().is_none_or(|floor| floor < timer) {
            self.floor = Some(timer.clone());
        }
    }

    /// Notes that `timer` is stored but not cached.
    fn lower_floor(&mut self, timer: &(i64, TimerEntry)) {
        if self.floor.as_ref().is_none_or(|floor| timer < floor) {
            self.floor = Some(timer.clone());
        }
    }
}

struct Inner {
    caches: Vec<Cache>,
    heads: KeyGroupHeads,
    key: Vec<u8>,
    /// The changes not yet applied to RocksDB, in order.
    batch: WriteBatch,
}

/// The RocksDB [`TimerQueue`] of one timer state.
pub(crate) struct RocksTimerQueue {
    core: Core,
    inner: Mutex<Inner>,
}

impl RocksTimerQueue {
    /// The queue over the column family of `core`, loading each key group's cache.
    pub(crate) fn open(core: Core) -> Result<Self> {
        let groups = core.range.len() as usize;
        let queue = RocksTimerQueue {
            inner: Mutex::new(Inner {
                caches: (0..groups).map(|_| Cache::default()).collect(),
                heads: KeyGroupHeads::new(groups),
                key: Vec::new(),
                batch: WriteBatch::default(),
            }),
            core,
        };
        {
            let mut inner = queue.inner.lock();
            for index in 0..groups {
                queue.refill(&mut inner, index)?;
            }
        }
        Ok(queue)
    }

    fn index(&self, key_group: u32) -> Result<usize> {
        self.core.range.index_of(key_group).ok_or_else(|| {
            Error::invalid_input("timer key belongs to a key group outside this backend's range")
                .with_context("key_group", key_group)
                .with_context("range", self.core.range)
                .with_context("state", &self.core.state)
        })
    }

    /// Reads the first timers of the key group at `index` into its cache.
    fn refill(&self, inner: &mut Inner, index: usize) -> Result<()> {
        self.apply(&mut inner.batch)?;
        let kg = self.core.range.first() + index as u32;
        let plen = self.core.prefix_len;
        let cf = self.core.inst.cf(&self.core.cf)?;
        let cache = &mut inner.caches[index];
        cache.timers.clear();
        let mut from = key_group_bound(kg, plen);
        if let Some((ts, entry)) = &cache.floor {
            timer_key(&mut from, kg, plen, *ts, entry.as_bytes());
        }
        let mut complete = true;
        scan(
            &self.core.inst.db,
            &cf,
            &from,
            Some(key_group_bound(kg + 1, plen)),
            Seek::Total,
            &mut |k, _| {
                if cache.timers.len() == CACHE_SIZE {
                    complete = false;
                    return Ok(false);
                }
                let (_, ts, entry) = split_timer_key(k, plen)?;
                cache.timers.insert((ts, TimerEntry::from_bytes(entry)));
                Ok(true)
            },
        )
        .map_err(|e| e.with_context("state", &self.core.state))?;
        cache.complete = complete;
        // The timers not read are after the last one read.
        cache.floor = if complete {
            None
        } else {
            cache.timers.last().cloned()
        };
        let head = cache.timers.first().map(|(ts, _)| *ts);
        inner.heads.set(index, head);
        Ok(())
    }

    /// After `taken` left the cache of the key group at `index` (fired or deleted): refills
    /// the cache when it ran dry while more timers are stored (seeking past `taken`, which
    /// every stored timer follows), else moves the key group's head.
    fn after_taking(
        &self,
        inner: &mut Inner,
        index: usize,
        taken: &(i64, TimerEntry),
    ) -> Result<()> {
        let cache = &mut inner.caches[index];
        if cache.timers.is_empty() && !cache.complete {
            cache.raise_floor(taken);
            return self.refill(inner, index);
        }
        let head = cache.timers.first().map(|(ts, _)| *ts);
        inner.heads.set(index, head);
        Ok(())
    }

    /// Records a put (`put`) or a delete of `key` in `batch`.
    fn record(&self, batch: &mut WriteBatch, key: &[u8], put: bool) -> Result<()> {
        let cf = self.core.inst.cf(&self.core.cf)?;
        if put {
            batch.put_cf(&cf, key, []);
        } else {
            batch.delete_cf(&cf, key);
        }
        Ok(())
    }

    /// Applies `batch` when it holds [`BATCH_SIZE`] changes. Called before a change, so
    /// that a failed write leaves the change undone and the queue as it was.
    fn apply_when_full(&self, batch: &mut WriteBatch) -> Result<()> {
        if batch.len() >= BATCH_SIZE {
            self.apply(batch)?;
        }
        Ok(())
    }

    /// Applies the changes of `batch` to RocksDB (nothing when it is empty).
    fn apply(&self, batch: &mut WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let changes = batch.len();
        // RocksDB takes the batch it writes; writing a copy keeps the changes here when
        // the write fails (it applies nothing then), for the next attempt.
        let copy = WriteBatch::from_data(batch.data());
        self.core
            .inst
            .db
            .write_opt(copy, &self.core.inst.write)
            .map_err(|e| {
                from_rocksdb("write timer changes", e)
                    .with_context("state", &self.core.state)
                    .with_context("changes", changes)
            })?;
        batch.clear();
        Ok(())
    }

    /// Applies every change made so far to RocksDB, so that a snapshot or a compaction of
    /// the database sees them.
    ///
    /// # Errors
    /// RocksDB's error, naming the state; the changes are kept for the next attempt.
    pub(crate) fn flush(&self) -> Result<()> {
        self.apply(&mut self.inner.lock().batch)
    }
}

impl TimerQueue for RocksTimerQueue {
    fn add(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()> {
        let index = self.index(key_group)?;
        let mut inner = self.inner.lock();
        self.apply_when_full(&mut inner.batch)?;
        let Inner {
            caches,
            heads,
            key,
            batch,
        } = &mut *inner;
        timer_key(key, key_group, self.core.prefix_len, timestamp, entry);
        self.record(batch, key, true)?;
        let cache = &mut caches[index];
        let timer = (timestamp, TimerEntry::from_bytes(entry));
        // The cache stays the first timers of the key group: a timer after its last one
        // joins it only when it holds them all.
        let belongs = cache.complete || cache.timers.last().is_some_and(|last| timer < *last);
        if !belongs {
            cache.lower_floor(&timer);
        } else if cache.timers.insert(timer) {
            if cache.timers.len() > CACHE_SIZE
                && let Some(last) = cache.timers.pop_last()
            {
                cache.lower_floor(&last);
                cache.complete = false;
            }
            heads.set(index, cache.timers.first().map(|(ts, _)| *ts));
        }
        Ok(())
    }

    fn remove(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()> {
        let index = self.index(key_group)?;
        let mut inner = self.inner.lock();
        self.apply_when_full(&mut inner.batch)?;
        let Inner {
            caches, key, batch, ..
        } = &mut *inner;
        timer_key(key, key_group, self.core.prefix_len, timestamp, entry);
        self.record(batch, key, false)?;
        let timer = (timestamp, TimerEntry::from_bytes(entry));
        if caches[index].timers.remove(&timer) {
            self.after_taking(&mut inner, index, &timer)?;
        }
        Ok(())
    }

    fn peek(&self) -> Result<Option<i64>> {
        Ok(self.inner.lock().heads.first().map(|(ts, _)| ts))
    }

    fn poll(&self, up_to: i64) -> Result<Option<RawTimer>> {
        let mut inner = self.inner.lock();
        let Some((head, index)) = inner.heads.first() else {
            return Ok(None);
        };
        if head > up_to {
            return Ok(None);
        }
        self.apply_when_full(&mut inner.batch)?;
        let key_group = self.core.range.first() + index as u32;
        let Inner {
            caches, key, batch, ..
        } = &mut *inner;
        let cache = &mut caches[index];
        let Some(taken) = cache.timers.pop_first() else {
            return Err(
                Error::internal("timer cache of a key group with a head is empty")
                    .with_context("state", &self.core.state)
                    .with_context("key_group", key_group),
            );
        };
        timer_key(
            key,
            key_group,
            self.core.prefix_len,
            taken.0,
            taken.1.as_bytes(),
        );
        self.record(batch, key, false)?;
        self.after_taking(&mut inner, index, &taken)?;
        let (timestamp, entry) = taken;
        Ok(Some(RawTimer {
            key_group,
            timestamp,
            entry,
        }))
    }

    fn len(&self) -> Result<usize> {
        let mut inner = self.inner.lock();
        self.apply(&mut inner.batch)?;
        let cf = self.core.inst.cf(&self.core.cf)?;
        let mut n = 0;
        scan(
            &self.core.inst.db,
            &cf,
            &[],
            None,
            Seek::Total,
            &mut |_, _| {
                n += 1;
                Ok(true)
            },
        )?;
        Ok(n)
    }

    fn for_each(&self, visit: &mut TimerVisit<'_>) -> Result<()> {
        self.flush()?;
        let cf = self.core.inst.cf(&self.core.cf)?;
        let plen = self.core.prefix_len;
        let first = self.core.range.first();
        scan(
            &self.core.inst.db,
            &cf,
            &key_group_bound(first, plen),
            Some(key_group_bound(self.core.range.last() + 1, plen)),
            Seek::Total,
            &mut |k, _| {
                let (key_group, ts, entry) = split_timer_key(k, plen)?;
                visit(key_group, ts, entry)
            },
        )
    }
}
