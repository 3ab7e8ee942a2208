//! Timers: Flink's `InternalTimerService`, over a key-grouped priority queue that every
//! backend implements.
//!
//! ```
//! use cornerstone_backend_api::{KeyedBackendParams, KeyedStateBackendExt, KeyGroupRange, Result};
//! use cornerstone_backend_api::timer::Timer;
//! # fn demo<B: KeyedStateBackendExt<String>>(backend: &B) -> Result<()> {
//! // Windows are namespaces; a timer fires the window of one key at its end.
//! let timers = backend.timer_service::<u64>("window")?;
//! let key = "alice".to_string();
//! timers.register_event_time_timer(&key, &1_000, 999)?;
//! timers.register_event_time_timer(&key, &1_000, 999)?; // deduplicated
//! let mut fired = Vec::new();
//! timers.advance_watermark(999, &mut |timer: Timer<String, u64>| {
//!     fired.push((timer.key, timer.namespace, timer.timestamp));
//!     Ok(())
//! })?;
//! assert_eq!(fired, [("alice".to_string(), 1_000, 999)]);
//! # Ok(()) }
//! ```
//!
//! # Semantics
//! - a timer is a (key, namespace, timestamp) in one of two [`TimeDomain`]s; registering
//!   it again is a no-op, deleting an absent one too;
//! - [`TimerService::advance_watermark`] moves the watermark up (never down) and fires every
//!   event-time timer at or below it, each once, in the order below. The callback may
//!   register and delete timers: one registered at or below the watermark fires in the same
//!   call, one deleted before its turn does not fire;
//! - processing-time timers fire from [`TimerService::advance_processing_time`], or from the
//!   backend's [`Clock`](crate::Clock) with [`TimerService::fire_due_processing_timers`];
//! - the order of firing is by timestamp; timers of one timestamp fire in key-group order,
//!   and within a key group by their [`TimerEntry`] bytes: the length of the serialized key,
//!   then the serialized key, then the serialized namespace. Integer keys and namespaces
//!   serialize big-endian, so they fire in numeric order; string keys shorter first;
//! - timers are keyed state: they are written with the key groups of a snapshot and restored
//!   (at any parallelism) into the subtask owning their key group. The watermark is not:
//!   a restored service starts at [`i64::MIN`], as Flink's does, and the next watermark
//!   fires what is due.
//!
//! # For backend implementors
//! A backend implements [`TimerQueue`] (through
//! [`KeyedStateBackend::timer_queue`](crate::KeyedStateBackend::timer_queue)): a set of
//! `(key group, timestamp, entry)` ordered as above, where an entry is the serialized key
//! and namespace ([`TimerEntry`]). A queue's state meta has kind
//! [`StateKind::Timers`](crate::StateKind::Timers); each timer is one record of the keyed
//! snapshot stream whose key and namespace are the entry's parts and whose value is the
//! timestamp ([`encode_timestamp`]). [`KeyGroupHeads`] finds the earliest key group.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use integer_encoding::VarInt;
use smallvec::SmallVec;

use crate::clock::SharedClock;
use crate::codec;
use crate::descriptor::StateKey;
use crate::error::{Error, Result};
use crate::keygroup::key_group_for_bytes;

/// The prefix of the names of timer queues: a service named `window` keeps its timers in
/// the states `_timer_state/event_window` and `_timer_state/processing_window`, as Flink
/// names them. User states cannot take names with this prefix.
pub const TIMER_STATE_PREFIX: &str = "_timer_state/";

/// The value type recorded in the meta of a timer queue: the timestamp.
pub const TIMESTAMP_TYPE: &str = "i64";

/// The clock a timer fires by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark passes the timestamp.
    EventTime,
    /// Fires when the processing time passes the timestamp.
    ProcessingTime,
}

impl TimeDomain {
    /// The name of the queue of service `service` in this domain.
    pub fn queue_name(self, service: &str) -> String {
        match self {
            TimeDomain::EventTime => format!("{TIMER_STATE_PREFIX}event_{service}"),
            TimeDomain::ProcessingTime => format!("{TIMER_STATE_PREFIX}processing_{service}"),
        }
    }
}

/// A timer that fired (or is pending): for `key` in `namespace` at `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timer<K, N> {
    /// When it fires, in milliseconds.
    pub timestamp: i64,
    /// Its key.
    pub key: K,
    /// Its namespace (a window, `()` for none).
    pub namespace: N,
}

/// A timer's serialized key and namespace, as queues store and order it:
/// `varint(key length) | key | namespace` (LEB128 length, key and namespace serialized with
/// [`codec`]). Entries of 24 bytes or less are stored without an allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TimerEntry(SmallVec<[u8; 24]>);

impl fmt::Debug for TimerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerEntry({:02x?})", &self.0[..])
    }
}

impl TimerEntry {
    /// The entry of a serialized key and namespace.
    pub fn from_parts(key: &[u8], namespace: &[u8]) -> Self {
        let mut out = SmallVec::new();
        let mut len = [0u8; 10];
        let n = (key.len() as u64).encode_var(&mut len);
        out.extend_from_slice(&len[..n]);
        out.extend_from_slice(key);
        out.extend_from_slice(namespace);
        TimerEntry(out)
    }

    /// An entry from its bytes, e.g. the tail of a stored key (checked when split).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        TimerEntry(SmallVec::from_slice(bytes))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serialized key and namespace.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupted`] when the length prefix is malformed or too long.
    pub fn split(&self) -> Result<(&[u8], &[u8])> {
        split_entry(&self.0)
    }
}

/// Splits entry bytes into the serialized key and namespace.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] when the length prefix is malformed or too long.
pub fn split_entry(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || Error::corrupted("malformed timer entry").with_context("len", bytes.len());
    let (len, n) = u64::decode_var(bytes).ok_or_else(bad)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| n.checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(bad)?;
    Ok((&bytes[n..end], &bytes[end..]))
}

/// The stored form of a timestamp in snapshot records: [`codec`]'s (big-endian `i64`).
pub fn encode_timestamp(timestamp: i64) -> [u8; 8] {
    timestamp.to_be_bytes()
}

/// Reads a timestamp written by [`encode_timestamp`].
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] unless `bytes` are 8 bytes long.
pub fn decode_timestamp(bytes: &[u8]) -> Result<i64> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| {
            Error::corrupted("a timer's timestamp is not 8 bytes").with_context("len", bytes.len())
        })
}

/// Checks that `meta` is the meta of a timer queue (kind
/// [`StateKind::Timers`](crate::StateKind::Timers)): what a backend's
/// [`KeyedStateBackend::timer_queue`](crate::KeyedStateBackend::timer_queue) checks first.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming the state and its kind.
pub fn check_queue_meta(meta: &crate::StateMeta) -> Result<()> {
    if meta.kind == crate::StateKind::Timers {
        return Ok(());
    }
    Err(
        Error::invalid_input("a timer queue's state kind must be Timers")
            .with_context("state", &meta.name)
            .with_context("kind", meta.kind),
    )
}

/// A timer as a queue hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTimer {
    /// Its key group.
    pub key_group: u32,
    /// When it fires.
    pub timestamp: i64,
    /// Its serialized key and namespace.
    pub entry: TimerEntry,
}

/// Visits one stored timer: `(key_group, timestamp, entry)`; returns `false` to stop.
pub type TimerVisit<'v> = dyn FnMut(u32, i64, &[u8]) -> Result<bool> + 'v;

/// The storage primitive of timers: a key-grouped priority queue with set semantics (Flink's
/// `KeyGroupedInternalPriorityQueue`), one per [`TimeDomain`] of a service. Backends
/// implement it; engine code uses [`TimerService`].
///
/// Timers are ordered by timestamp, then key group, then entry bytes. Every method takes
/// `&self`: a queue is used from its subtask's thread while snapshots of it are written on
/// others.
pub trait TimerQueue: Send + Sync {
    /// Adds a timer; adding one that is present changes nothing.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when `key_group` is outside the backend's range;
    /// engine errors.
    fn add(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()>;

    /// Removes a timer; removing an absent one changes nothing.
    ///
    /// # Errors
    /// As [`add`](Self::add).
    fn remove(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()>;

    /// The timestamp of the first timer.
    ///
    /// # Errors
    /// Engine errors.
    fn peek(&self) -> Result<Option<i64>>;

    /// Removes and returns the first timer if its timestamp is at most `up_to`.
    ///
    /// # Errors
    /// Engine errors.
    fn poll(&self, up_to: i64) -> Result<Option<RawTimer>>;

    /// The number of timers (a scan on RocksDB).
    ///
    /// # Errors
    /// Engine errors.
    fn len(&self) -> Result<usize>;

    /// Whether there is no timer.
    ///
    /// # Errors
    /// Engine errors.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.peek()?.is_none())
    }

    /// Visits every timer in key-group order, each key group in timer order:
    /// `visit(key_group, timestamp, entry)` returns `false` to stop. `visit` must not use
    /// the queue.
    ///
    /// # Errors
    /// Engine errors, and the errors of `visit`.
    fn for_each(&self, visit: &mut TimerVisit<'_>) -> Result<()>;
}

/// The earliest key group of a key-grouped queue: a tournament tree over the head timestamp
/// of each key group, so that changing one head and finding the first are `O(log groups)`
/// with no allocation. Ties go to the lower key group.
#[derive(Debug, Clone)]
pub struct KeyGroupHeads {
    /// The head timestamp of each key-group index.
    heads: Vec<Option<i64>>,
    /// Leaves padded to a power of two.
    width: usize,
    /// `tree[i]` is the winning key-group index below node `i`; leaves are `width..2*width`.
    tree: Vec<u32>,
}

impl KeyGroupHeads {
    /// No heads for `groups` key groups.
    pub fn new(groups: usize) -> Self {
        let width = groups.max(1).next_power_of_two();
        let mut tree = vec![0u32; 2 * width];
        for (i, slot) in tree.iter_mut().enumerate().skip(width) {
            *slot = (i - width) as u32;
        }
        for i in (1..width).rev() {
            tree[i] = tree[2 * i];
        }
        KeyGroupHeads {
            heads: vec![None; groups],
            width,
            tree,
        }
    }

    fn key(&self, index: u32) -> (bool, i64, u32) {
        match self.heads.get(index as usize).copied().flatten() {
            Some(ts) => (false, ts, index),
            None => (true, 0, index),
        }
    }

    /// Sets the head timestamp of the key group at `index` (`None`: it has no timers).
    pub fn set(&mut self, index: usize, head: Option<i64>) {
        if self.heads.get(index).copied().flatten() == head {
            return;
        }
        self.heads[index] = head;
        let mut node = (self.width + index) / 2;
        while node >= 1 {
            let (l, r) = (self.tree[2 * node], self.tree[2 * node + 1]);
            self.tree[node] = if self.key(r) < self.key(l) { r } else { l };
            node /= 2;
        }
    }

    /// The head timestamp of the key group at `index`.
    pub fn head(&self, index: usize) -> Option<i64> {
        self.heads.get(index).copied().flatten()
    }

    /// The earliest head and its key-group index.
    pub fn first(&self) -> Option<(i64, usize)> {
        let winner = if self.width == 1 { 0 } else { self.tree[1] } as usize;
        self.head(winner).map(|ts| (ts, winner))
    }
}

/// Serializes (key, namespace) into an entry (in [`codec::with_scratch`]'s buffer) and
/// calls `f(key_group, entry)`.
fn with_entry<K: StateKey, N: StateKey, R>(
    key: &K,
    ns: &N,
    max_parallelism: u32,
    f: impl FnOnce(u32, &[u8]) -> Result<R>,
) -> Result<R> {
    codec::with_scratch(|buf| {
        let start = codec::encode_len_prefixed(key, buf)?;
        let key_group = key_group_for_bytes(&buf[start..], max_parallelism);
        codec::encode_into(ns, buf)?;
        f(key_group, buf)
    })
}

/// Event-time and processing-time timers of one operator, per key and namespace: Flink's
/// `InternalTimerService`. Created by
/// [`KeyedStateBackendExt::timer_service`](crate::KeyedStateBackendExt::timer_service); see
/// the [module docs](self) for the semantics.
///
/// Clones share the timers and the watermark. Asking the backend again for the service of
/// the same name gives the same timers with a watermark of its own.
pub struct TimerService<K, N> {
    name: Arc<str>,
    event: Arc<dyn TimerQueue>,
    processing: Arc<dyn TimerQueue>,
    max_parallelism: u32,
    watermark: Arc<AtomicI64>,
    clock: SharedClock,
    _types: PhantomData<fn() -> (K, N)>,
}

impl<K, N> Clone for TimerService<K, N> {
    fn clone(&self) -> Self {
        TimerService {
            name: Arc::clone(&self.name),
            event: Arc::clone(&self.event),
            processing: Arc::clone(&self.processing),
            max_parallelism: self.max_parallelism,
            watermark: Arc::clone(&self.watermark),
            clock: Arc::clone(&self.clock),
            _types: PhantomData,
        }
    }
}

impl<K, N> fmt::Debug for TimerService<K, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerService")
            .field("name", &self.name)
            .field("watermark", &self.watermark.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K: StateKey, N: StateKey> TimerService<K, N> {
    /// A service over the queues of its two domains; backends' queues come from
    /// [`KeyedStateBackend::timer_queue`](crate::KeyedStateBackend::timer_queue).
    pub fn new(
        name: &str,
        event: Arc<dyn TimerQueue>,
        processing: Arc<dyn TimerQueue>,
        max_parallelism: u32,
        clock: SharedClock,
    ) -> Self {
        TimerService {
            name: name.into(),
            event,
            processing,
            max_parallelism,
            watermark: Arc::new(AtomicI64::new(i64::MIN)),
            clock,
            _types: PhantomData,
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn queue(&self, domain: TimeDomain) -> &dyn TimerQueue {
        match domain {
            TimeDomain::EventTime => &*self.event,
            TimeDomain::ProcessingTime => &*self.processing,
        }
    }

    /// Registers a timer for `key` in `namespace` at `timestamp`; registering it again
    /// changes nothing.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the key cannot be serialized or belongs to a
    /// key group of another subtask; engine errors.
    pub fn register(
        &self,
        domain: TimeDomain,
        key: &K,
        namespace: &N,
        timestamp: i64,
    ) -> Result<()> {
        with_entry(key, namespace, self.max_parallelism, |kg, entry| {
            self.queue(domain).add(kg, timestamp, entry)
        })
        .map_err(|e| e.with_context("timer_service", &self.name))
    }

    /// Deletes a timer; deleting an absent one changes nothing.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn delete(&self, domain: TimeDomain, key: &K, namespace: &N, timestamp: i64) -> Result<()> {
        with_entry(key, namespace, self.max_parallelism, |kg, entry| {
            self.queue(domain).remove(kg, timestamp, entry)
        })
        .map_err(|e| e.with_context("timer_service", &self.name))
    }

    /// Registers an event-time timer.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn register_event_time_timer(&self, key: &K, namespace: &N, timestamp: i64) -> Result<()> {
        self.register(TimeDomain::EventTime, key, namespace, timestamp)
    }

    /// Deletes an event-time timer.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn delete_event_time_timer(&self, key: &K, namespace: &N, timestamp: i64) -> Result<()> {
        self.delete(TimeDomain::EventTime, key, namespace, timestamp)
    }

    /// Registers a processing-time timer.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn register_processing_time_timer(
        &self,
        key: &K,
        namespace: &N,
        timestamp: i64,
    ) -> Result<()> {
        self.register(TimeDomain::ProcessingTime, key, namespace, timestamp)
    }

    /// Deletes a processing-time timer.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn delete_processing_time_timer(
        &self,
        key: &K,
        namespace: &N,
        timestamp: i64,
    ) -> Result<()> {
        self.delete(TimeDomain::ProcessingTime, key, namespace, timestamp)
    }

    /// The current watermark: [`i64::MIN`] until the first
    /// [`advance_watermark`](Self::advance_watermark).
    pub fn current_watermark(&self) -> i64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// The processing time of the backend's clock, in milliseconds.
    pub fn current_processing_time(&self) -> i64 {
        i64::try_from(self.clock.now_millis()).unwrap_or(i64::MAX)
    }

    /// The timestamp of the next timer of `domain`.
    ///
    /// # Errors
    /// Engine errors.
    pub fn next_timer(&self, domain: TimeDomain) -> Result<Option<i64>> {
        self.queue(domain).peek()
    }

    /// The number of pending timers of `domain` (a scan on RocksDB).
    ///
    /// # Errors
    /// Engine errors.
    pub fn num_timers(&self, domain: TimeDomain) -> Result<usize> {
        self.queue(domain).len()
    }

    /// Decodes a stored timer; an error names the service and the key group.
    fn decode(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<Timer<K, N>> {
        let decode = || -> Result<Timer<K, N>> {
            let (key, namespace) = split_entry(entry)?;
            Ok(Timer {
                timestamp,
                key: codec::decode(key)?,
                namespace: codec::decode(namespace)?,
            })
        };
        decode().map_err(|e| {
            e.with_context("timer_service", &self.name)
                .with_context("key_group", key_group)
        })
    }

    /// Every pending timer of `domain`, in key-group order and timer order within a key
    /// group; `visit` returns `false` to stop. `visit` must not register or delete timers.
    ///
    /// # Errors
    /// Engine and decoding errors; errors of `visit`.
    pub fn for_each_timer(
        &self,
        domain: TimeDomain,
        visit: &mut dyn FnMut(Timer<K, N>) -> Result<bool>,
    ) -> Result<()> {
        self.queue(domain).for_each(&mut |kg, ts, entry| {
            let timer = self.decode(kg, ts, entry)?;
            visit(timer)
        })
    }

    fn fire(
        &self,
        domain: TimeDomain,
        up_to: i64,
        on_timer: &mut dyn FnMut(Timer<K, N>) -> Result<()>,
    ) -> Result<u64> {
        let mut fired = 0;
        while let Some(raw) = self.queue(domain).poll(up_to)? {
            let timer = self.decode(raw.key_group, raw.timestamp, raw.entry.as_bytes())?;
            fired += 1;
            on_timer(timer)?;
        }
        Ok(fired)
    }

    /// Moves the watermark up to `watermark` (a lower one leaves it) and fires every
    /// event-time timer at or below it, in order, including those `on_timer` registers at
    /// or below it. Returns how many fired.
    ///
    /// A timer is removed before `on_timer` runs: if `on_timer` fails, the error is
    /// returned and that timer stays fired; the ones after it stay pending.
    ///
    /// # Errors
    /// Engine and decoding errors; errors of `on_timer`.
    pub fn advance_watermark(
        &self,
        watermark: i64,
        on_timer: &mut dyn FnMut(Timer<K, N>) -> Result<()>,
    ) -> Result<u64> {
        let previous = self.watermark.fetch_max(watermark, Ordering::AcqRel);
        self.fire(TimeDomain::EventTime, previous.max(watermark), on_timer)
    }

    /// Fires every processing-time timer at or below `now`, in order, including those
    /// `on_timer` registers at or below it. Returns how many fired.
    ///
    /// # Errors
    /// As [`advance_watermark`](Self::advance_watermark).
    pub fn advance_processing_time(
        &self,
        now: i64,
        on_timer: &mut dyn FnMut(Timer<K, N>) -> Result<()>,
    ) -> Result<u64> {
        self.fire(TimeDomain::ProcessingTime, now, on_timer)
    }

    /// Fires the processing-time timers due by the backend's clock.
    ///
    /// # Errors
    /// As [`advance_watermark`](Self::advance_watermark).
    pub fn fire_due_processing_timers(
        &self,
        on_timer: &mut dyn FnMut(Timer<K, N>) -> Result<()>,
    ) -> Result<u64> {
        self.advance_processing_time(self.current_processing_time(), on_timer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entries_split_back_into_key_and_namespace() {
        for key_len in [0usize, 1, 127, 128, 300] {
            let key = vec![7u8; key_len];
            let entry = TimerEntry::from_parts(&key, b"ns");
            assert_eq!(entry.split().unwrap(), (&key[..], &b"ns"[..]));
            assert_eq!(TimerEntry::from_bytes(entry.as_bytes()), entry);
        }
        for bad in [&[][..], &[5, 1, 2][..], &[0x80][..], &[0xff; 11][..]] {
            assert_eq!(
                split_entry(bad).unwrap_err().kind(),
                crate::ErrorKind::Corrupted
            );
        }
        assert_eq!(decode_timestamp(&encode_timestamp(-5)).unwrap(), -5);
        assert_eq!(codec::encode(&-5i64).unwrap(), encode_timestamp(-5));
        assert!(decode_timestamp(&[1, 2]).is_err());
    }

    /// The heads agree with a scan of every key group, whatever the order of changes.
    #[test]
    fn heads_find_the_earliest_key_group() {
        for groups in [1usize, 2, 3, 7, 128, 129] {
            let mut heads = KeyGroupHeads::new(groups);
            let mut model = vec![None; groups];
            assert_eq!(heads.first(), None);
            let mut x: u64 = 17;
            for _ in 0..2_000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let index = (x >> 33) as usize % groups;
                let head = if (x >> 20).is_multiple_of(4) {
                    None
                } else {
                    Some(((x >> 40) % 50) as i64 - 25)
                };
                heads.set(index, head);
                model[index] = head;
                let expected = model
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| h.map(|t| (t, i)))
                    .min();
                assert_eq!(heads.first(), expected, "{groups} groups");
            }
        }
    }

    /// Keys of 128 bytes or more get a wider length prefix, and the key group is computed
    /// from the key's bytes alone.
    #[test]
    fn long_keys_make_entries_with_wide_prefixes() {
        for len in [1usize, 119, 120, 200] {
            let key = "k".repeat(len);
            with_entry(&key, &9u32, 128, |kg, entry| {
                let (k, ns) = split_entry(entry)?;
                assert_eq!(k, codec::encode(&key)?);
                assert_eq!(ns, 9u32.to_be_bytes());
                assert_eq!(kg, crate::keygroup::key_group_for_key(&key, 128)?);
                Ok(())
            })
            .unwrap();
        }
    }
}
