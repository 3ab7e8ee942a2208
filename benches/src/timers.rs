//! Timer workloads: registering, deleting and firing event-time timers through a backend's
//! [`TimerService`], beside a raw `BinaryHeap` + `HashSet` of the same entries; and the
//! pieces of the one-shot restore measurement (`benches/timers_restore.rs`).
//!
//! Every timer is `(key: u64, namespace: u64, timestamp)`: 100k keys, 10 timers per key
//! ([`TIMER_KEYS`] × [`TIMERS_PER_KEY`]). Timer `round` of a key has namespace `round` (a
//! window index) and a timestamp drawn uniformly from
//! `[round × TIMER_ROUND_SPAN, (round + 1) × TIMER_ROUND_SPAN)`, so the 1M timers are
//! registered in roughly increasing event time, rounds of the keys in one shuffled order,
//! and about a third of them share their timestamp with another timer (ties fire in key
//! group then entry order).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cornerstone_backend_api::timer::{Timer, TimerEntry, TimerService};
use cornerstone_backend_api::{KeyedStateBackend, KeyedStateBackendExt, Result, StateBackend};
use criterion::Criterion;
use hashbrown::HashSet;

use crate::support::{
    Cycle, SEED, SplitMix64, count_label, key_group, keyed_backend, per_op_group, shuffled_keys,
    timed_in_chunks,
};

/// Keys of the timer workloads.
pub const TIMER_KEYS: u64 = 100_000;
/// Timers per key in the timer workloads.
pub const TIMERS_PER_KEY: u64 = 10;
/// The event-time span (ms) of one round of timers: each key's timer of round `r` is due in
/// `[r × span, (r + 1) × span)`.
pub const TIMER_ROUND_SPAN: i64 = 100_000;
/// The name of the timer service of the benches.
pub const TIMER_SERVICE: &str = "bench";

/// One timer of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchTimer {
    /// Its key.
    pub key: u64,
    /// Its namespace (a window index).
    pub namespace: u64,
    /// When it is due.
    pub timestamp: i64,
}

impl BenchTimer {
    /// The same timer `offset` ms later.
    #[must_use]
    pub fn shifted(self, offset: i64) -> Self {
        BenchTimer {
            timestamp: self.timestamp + offset,
            ..self
        }
    }
}

/// The timers of `keys` keys × `per_key` timers, in registration order (see the module
/// docs), generated on the fly so that 10M timers need no 240 MB list.
pub fn timers(keys: u64, per_key: u64) -> impl Iterator<Item = BenchTimer> {
    let order = shuffled_keys(keys, SEED);
    let mut rng = SplitMix64(SEED ^ 0x7113_e125);
    (0..per_key).flat_map(move |round| {
        let order = order.clone();
        let mut rng = SplitMix64(rng.next_u64() ^ round);
        order.into_iter().map(move |key| BenchTimer {
            key,
            namespace: round,
            timestamp: round as i64 * TIMER_ROUND_SPAN + rng.below(TIMER_ROUND_SPAN as u64) as i64,
        })
    })
}

/// The 1M timers of the criterion workloads: registration order, the order deletes visit
/// them (a shuffle of the same timers), and every timestamp sorted (the watermark steps).
#[derive(Debug, Clone)]
pub struct TimerWorkload {
    /// Registration order.
    pub timers: Vec<BenchTimer>,
    /// The same timers in the order the delete workload deletes them.
    pub delete_order: Vec<BenchTimer>,
    /// Every timer's timestamp, sorted.
    pub sorted_timestamps: Vec<i64>,
}

impl TimerWorkload {
    /// [`TIMER_KEYS`] × [`TIMERS_PER_KEY`] timers.
    pub fn new() -> Self {
        Self::of(TIMER_KEYS, TIMERS_PER_KEY)
    }

    /// `keys` × `per_key` timers.
    pub fn of(keys: u64, per_key: u64) -> Self {
        let timers: Vec<BenchTimer> = self::timers(keys, per_key).collect();
        let delete_order = shuffled_keys(timers.len() as u64, SEED ^ 0xde1e7e)
            .into_iter()
            .map(|i| timers[i as usize])
            .collect();
        let mut sorted_timestamps: Vec<i64> = timers.iter().map(|t| t.timestamp).collect();
        sorted_timestamps.sort_unstable();
        TimerWorkload {
            timers,
            delete_order,
            sorted_timestamps,
        }
    }

    /// The bench-id detail, e.g. `100kx10`.
    pub fn label(&self) -> String {
        let per_key = self
            .timers
            .iter()
            .map(|t| t.namespace)
            .max()
            .map_or(0, |r| r + 1);
        format!(
            "{}x{per_key}",
            count_label(self.timers.len() as u64 / per_key.max(1))
        )
    }

    /// A time offset past every timer: cycle `n` of the fire workload registers the timers
    /// `n` offsets later, so that the watermark only moves up.
    pub fn cycle_offset(&self) -> i64 {
        self.sorted_timestamps.last().map_or(0, |ts| ts + 1)
    }
}

impl Default for TimerWorkload {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the fire workload stands: the next timer to fire (an index into the sorted
/// timestamps) and the time offset of the registered cycle.
#[derive(Debug, Clone, Default)]
pub struct FireCursor {
    next: usize,
    cycle: i64,
    registered: bool,
}

/// Times firing `iters` timers in order: advances the watermark (`fire(watermark)`, which
/// returns how many timers fired) to the timestamp of the `iters`-th next timer, registering
/// every timer again (untimed, `register(offset)`, `offset` growing by
/// [`TimerWorkload::cycle_offset`] each cycle) when all have fired. Ties at the last
/// timestamp may fire a few more than `iters`; the time is scaled to `iters` timers.
///
/// # Panics
/// When a watermark fires nothing although a timer is due (a bug of the queue).
pub fn timed_fire(
    iters: u64,
    cursor: &mut FireCursor,
    workload: &TimerWorkload,
    mut fire: impl FnMut(i64) -> u64,
    mut register: impl FnMut(i64),
) -> Duration {
    let sorted = &workload.sorted_timestamps;
    let mut total = Duration::ZERO;
    let mut fired_total = 0u64;
    while fired_total < iters {
        if !cursor.registered || cursor.next == sorted.len() {
            if cursor.registered {
                cursor.cycle += workload.cycle_offset();
            }
            register(cursor.cycle);
            cursor.registered = true;
            cursor.next = 0;
        }
        let want = usize::try_from(iters - fired_total).unwrap_or(usize::MAX);
        let end = cursor.next.saturating_add(want).min(sorted.len());
        let watermark = sorted[end - 1] + cursor.cycle;
        let start = Instant::now();
        let fired = fire(watermark);
        total += start.elapsed();
        assert!(fired > 0, "watermark {watermark} fired no timer");
        cursor.next += fired as usize;
        fired_total += fired;
    }
    total.mul_f64(iters as f64 / fired_total as f64)
}

/// The event-time timer service [`TIMER_SERVICE`] of `backend`, namespaces `u64`.
///
/// # Errors
/// The backend's errors.
pub fn timer_service<B>(backend: &B) -> Result<TimerService<u64, u64>>
where
    B: KeyedStateBackend<u64> + ?Sized,
{
    backend.timer_service::<u64>(TIMER_SERVICE)
}

/// The timer workloads on one backend, named `name` in the bench ids, all event time on a
/// backend owning the 128 key groups:
///
/// - `timer_register/{name}/100kx10`: registers the next of the 1M timers; once all are
///   registered they are deleted (untimed) and the cycle restarts, so the queue holds
///   0 to 1M timers;
/// - `timer_delete/{name}/100kx10`: deletes the next timer, in a shuffled order, from the
///   1M registered ones; re-registered (untimed) once all are deleted;
/// - `timer_fire/{name}/100kx10`: `advance_watermark` over the 1M registered timers in
///   steps of as many timers as criterion asks for (see [`timed_fire`]), the callback
///   taking the decoded `Timer<u64, u64>`; re-registered (untimed) once all fired.
///
/// Each reports `Throughput::Elements(1)`: one timer.
///
/// # Panics
/// When the backend fails, naming the operation.
pub fn timer_ops<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F) {
    let backend = keyed_backend(factory).expect("create the keyed backend");
    let timers = timer_service(&backend).expect("timer service");
    timer_groups(c, name, &TimerWorkload::new(), timers);
}

/// One implementation of the timer workloads: a backend's [`TimerService`], or a raw
/// baseline. The untimed steps ([`clear`](Self::clear), [`fill`](Self::fill)) reset it
/// between cycles of the workload.
pub trait TimerBench {
    /// Registers a timer.
    fn register(&mut self, t: &BenchTimer);
    /// Deletes a timer.
    fn delete(&mut self, t: &BenchTimer);
    /// Removes every timer of `w` (untimed).
    fn clear(&mut self, w: &TimerWorkload) {
        w.timers.iter().for_each(|t| self.delete(t));
    }
    /// Registers every timer of `w`, `offset` ms later, into an empty queue (untimed).
    fn fill(&mut self, w: &TimerWorkload, offset: i64) {
        w.timers
            .iter()
            .for_each(|t| self.register(&t.shifted(offset)));
    }
    /// Fires every timer at or below `watermark` in order, decoding each; returns how many.
    fn fire(&mut self, watermark: i64) -> u64;
}

impl TimerBench for TimerService<u64, u64> {
    fn register(&mut self, t: &BenchTimer) {
        self.register_event_time_timer(&t.key, &t.namespace, t.timestamp)
            .expect("register");
    }

    fn delete(&mut self, t: &BenchTimer) {
        self.delete_event_time_timer(&t.key, &t.namespace, t.timestamp)
            .expect("delete");
    }

    fn fire(&mut self, watermark: i64) -> u64 {
        self.advance_watermark(watermark, &mut |t| {
            black_box(t);
            Ok(())
        })
        .expect("advance_watermark")
    }
}

/// The three timer groups of `bench`, named `{name}/{w.label()}` (see [`timer_ops`]).
pub fn timer_groups<T: TimerBench>(c: &mut Criterion, name: &str, w: &TimerWorkload, bench: T) {
    let id = format!("{name}/{}", w.label());
    let n = w.timers.len() as u64;
    let bench = RefCell::new(bench);

    let mut group = per_op_group(c, "timer_register");
    let mut cycle = Cycle::new(&w.timers);
    let mut done = 0;
    group.bench_function(&id, |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                n,
                &mut done,
                || bench.borrow_mut().register(&cycle.next_item()),
                || bench.borrow_mut().clear(w),
            )
        });
    });
    group.finish();
    bench.borrow_mut().clear(w);

    bench.borrow_mut().fill(w, 0);
    let mut group = per_op_group(c, "timer_delete");
    let mut cycle = Cycle::new(&w.delete_order);
    let mut done = 0;
    group.bench_function(&id, |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                n,
                &mut done,
                || bench.borrow_mut().delete(&cycle.next_item()),
                || bench.borrow_mut().fill(w, 0),
            )
        });
    });
    group.finish();
    bench.borrow_mut().clear(w);

    let mut group = per_op_group(c, "timer_fire");
    let mut cursor = FireCursor::default();
    group.bench_function(&id, |b| {
        b.iter_custom(|iters| {
            timed_fire(
                iters,
                &mut cursor,
                w,
                |watermark| bench.borrow_mut().fire(watermark),
                |offset| bench.borrow_mut().fill(w, offset),
            )
        });
    });
    group.finish();
}

/// The raw baseline of the heap timer queue: a `BinaryHeap` ordered as timers fire
/// (timestamp, key group, entry bytes) and a `hashbrown::HashSet` of (timestamp, entry)
/// that deduplicates registrations. Deletion is lazy: it removes the timer from the set
/// only, and firing skips heap entries that are no longer in the set (the cheapest exact
/// equivalent; the heap keeps the deleted entries until they reach the top).
#[derive(Debug, Default)]
pub struct RawHeapTimers {
    heap: BinaryHeap<Reverse<(i64, u32, TimerEntry)>>,
    set: HashSet<(i64, TimerEntry)>,
}

impl RawHeapTimers {
    /// The key group and entry of a timer, as the service computes them: the key group of
    /// the serialized key, entry `varint(8) | key | namespace` (both big-endian).
    #[inline]
    fn entry(t: &BenchTimer) -> (u32, TimerEntry) {
        (
            key_group(t.key),
            TimerEntry::from_parts(&t.key.to_be_bytes(), &t.namespace.to_be_bytes()),
        )
    }

    /// Registers a timer (a no-op when present).
    #[inline]
    pub fn register(&mut self, t: &BenchTimer) {
        let (kg, entry) = Self::entry(t);
        if self.set.insert((t.timestamp, entry.clone())) {
            self.heap.push(Reverse((t.timestamp, kg, entry)));
        }
    }

    /// Deletes a timer (a no-op when absent).
    #[inline]
    pub fn delete(&mut self, t: &BenchTimer) {
        let (_, entry) = Self::entry(t);
        self.set.remove(&(t.timestamp, entry));
    }

    /// Fires every timer at or below `up_to` in order, decoding key and namespace for
    /// `on_timer`; returns how many fired.
    #[inline]
    pub fn fire(&mut self, up_to: i64, mut on_timer: impl FnMut(Timer<u64, u64>)) -> u64 {
        let mut fired = 0;
        while self
            .heap
            .peek()
            .is_some_and(|Reverse((ts, _, _))| *ts <= up_to)
        {
            let Some(Reverse((timestamp, _, entry))) = self.heap.pop() else {
                break;
            };
            let timer = (timestamp, entry);
            if self.set.remove(&timer) {
                let bytes = timer.1.as_bytes();
                let word = |at: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[at..at + 8]);
                    u64::from_be_bytes(b)
                };
                fired += 1;
                on_timer(Timer {
                    timestamp,
                    key: word(1),
                    namespace: word(9),
                });
            }
        }
        fired
    }
}

impl TimerBench for RawHeapTimers {
    fn register(&mut self, t: &BenchTimer) {
        RawHeapTimers::register(self, t);
    }

    fn delete(&mut self, t: &BenchTimer) {
        RawHeapTimers::delete(self, t);
    }

    /// Starts empty: deleted timers also leave the heap's garbage behind.
    fn clear(&mut self, _w: &TimerWorkload) {
        *self = RawHeapTimers::default();
    }

    fn fill(&mut self, w: &TimerWorkload, offset: i64) {
        *self = RawHeapTimers::default();
        w.timers
            .iter()
            .for_each(|t| RawHeapTimers::register(self, &t.shifted(offset)));
    }

    fn fire(&mut self, watermark: i64) -> u64 {
        RawHeapTimers::fire(self, watermark, |t| {
            black_box(t);
        })
    }
}

/// The timer workloads of [`timer_ops`] on [`RawHeapTimers`], with the same timers in the
/// same order: backend name `raw_heap`.
pub fn raw_heap_timer_ops(c: &mut Criterion) {
    timer_groups(
        c,
        "raw_heap",
        &TimerWorkload::new(),
        RawHeapTimers::default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use cornerstone_backend_memory::MemoryStateBackend;

    #[test]
    fn workload_is_distinct_and_sorted() {
        let w = TimerWorkload::of(1_000, 10);
        assert_eq!(w.timers.len(), 10_000);
        assert_eq!(w.label(), "1kx10");
        let distinct: HashSet<(u64, u64)> = w.timers.iter().map(|t| (t.key, t.namespace)).collect();
        assert_eq!(distinct.len(), 10_000);
        let mut deleted = w.delete_order.clone();
        deleted.sort_by_key(|t| (t.key, t.namespace));
        let mut registered = w.timers.clone();
        registered.sort_by_key(|t| (t.key, t.namespace));
        assert_eq!(deleted, registered);
        assert!(w.sorted_timestamps.is_sorted());
        assert!(w.cycle_offset() <= 10 * TIMER_ROUND_SPAN);
    }

    /// The raw heap and the memory backend fire the same timers in the same order, through
    /// the fire workload's steps and cycles.
    #[test]
    fn raw_heap_fires_as_the_service() {
        let w = TimerWorkload::of(500, 4);
        let backend = keyed_backend(&MemoryStateBackend::new()).expect("backend");
        let service = timer_service(&backend).expect("service");
        let raw = std::cell::RefCell::new(RawHeapTimers::default());
        for t in &w.timers {
            raw.borrow_mut().register(t);
            service
                .register_event_time_timer(&t.key, &t.namespace, t.timestamp)
                .expect("register");
        }
        // Deleted and registered again: the raw heap then holds a stale duplicate.
        for t in w.delete_order.iter().take(100) {
            raw.borrow_mut().delete(t);
            raw.borrow_mut().register(t);
            service
                .delete_event_time_timer(&t.key, &t.namespace, t.timestamp)
                .expect("delete");
            service
                .register_event_time_timer(&t.key, &t.namespace, t.timestamp)
                .expect("register");
        }
        let (mut from_raw, mut from_service) = (Vec::new(), Vec::new());
        let (mut c1, mut c2) = (FireCursor::default(), FireCursor::default());
        for iters in [1u64, 7, 300, 5_000] {
            timed_fire(
                iters,
                &mut c1,
                &w,
                |wm| raw.borrow_mut().fire(wm, |t| from_raw.push(t)),
                |offset| {
                    if offset > 0 {
                        let mut raw = raw.borrow_mut();
                        w.timers
                            .iter()
                            .for_each(|t| raw.register(&t.shifted(offset)));
                    }
                },
            );
            timed_fire(
                iters,
                &mut c2,
                &w,
                |wm| {
                    service
                        .advance_watermark(wm, &mut |t| {
                            from_service.push(t);
                            Ok(())
                        })
                        .expect("fire")
                },
                |offset| {
                    if offset > 0 {
                        for t in &w.timers {
                            let t = t.shifted(offset);
                            service
                                .register_event_time_timer(&t.key, &t.namespace, t.timestamp)
                                .expect("register");
                        }
                    }
                },
            );
        }
        assert!(from_raw.len() >= 5_308);
        assert_eq!(from_raw, from_service);
    }
}
