//! The timer service of one operator ([`TimerService`]), over the queues of its two time
//! domains.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::queue::TimerQueue;
use super::types::{TimeDomain, Timer, split_entry};
use crate::clock::SharedClock;
use crate::descriptor::StateKey;
use crate::error::Result;
use crate::keygroup::KeyGroupAssigner;
use crate::spi::codec;

/// Serializes (key, namespace) into an entry (in [`codec::with_scratch`]'s buffer) and
/// calls `f(key_group, entry)`.
pub(super) fn with_entry<K: StateKey, N: StateKey, R>(
    key: &K,
    ns: &N,
    key_groups: KeyGroupAssigner,
    f: impl FnOnce(u32, &[u8]) -> Result<R>,
) -> Result<R> {
    codec::with_scratch(|buf| {
        let start = codec::encode_len_prefixed(key, buf)?;
        let key_group = key_groups.of_bytes(&buf[start..]);
        codec::encode_into(ns, buf)?;
        f(key_group, buf)
    })
}

/// Event-time and processing-time timers of one operator, per key and namespace: Flink's
/// `InternalTimerService`. Created by
/// [`KeyedStateBackendExt::timer_service`](crate::KeyedStateBackendExt::timer_service); see
/// the [module docs](crate::timer) for the semantics.
///
/// Clones share the timers and the watermark. Asking the backend again for the service of
/// the same name gives the same timers with a watermark of its own.
pub struct TimerService<K, N> {
    name: Arc<str>,
    event: Arc<dyn TimerQueue>,
    processing: Arc<dyn TimerQueue>,
    key_groups: KeyGroupAssigner,
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
            key_groups: self.key_groups,
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
        key_groups: KeyGroupAssigner,
        clock: SharedClock,
    ) -> Self {
        TimerService {
            name: name.into(),
            event,
            processing,
            key_groups,
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
        with_entry(key, namespace, self.key_groups, |kg, entry| {
            self.queue(domain).add(kg, timestamp, entry)
        })
        .map_err(|e| e.with_context("timer_service", &self.name))
    }

    /// Deletes a timer; deleting an absent one changes nothing.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn delete(&self, domain: TimeDomain, key: &K, namespace: &N, timestamp: i64) -> Result<()> {
        with_entry(key, namespace, self.key_groups, |kg, entry| {
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
