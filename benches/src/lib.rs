//! Criterion benchmarks of Cornerstone's state backends: one harness, generic over
//! [`StateBackendFactory`], that runs the same workloads against every backend, and raw
//! baselines (plain hash maps) measured in the same run.
//!
//! ```
//! use cornerstone_backend_memory::MemoryStateBackend;
//! use cornerstone_benches::{Cycle, keyed_backend, populate_values, shuffled_keys};
//!
//! // What `value_get/memory/100k` does, on 1,000 keys and without criterion.
//! let backend = keyed_backend(&MemoryStateBackend::new())?;
//! let keys = shuffled_keys(1_000, 42);
//! let state = populate_values(&backend, &keys)?;
//! let mut cycle = Cycle::new(&keys);
//! let mut sum = 0;
//! for _ in 0..2_000 {
//!     let key = cycle.next_item();
//!     sum += state.get(&key, &())?.expect("every key is populated");
//! }
//! assert_eq!(sum, 2 * (0..1_000u64).sum::<u64>());
//! # Ok::<_, cornerstone_backend_api::Error>(())
//! ```
//!
//! # Workloads
//! - [`state_ops`]: `ValueState<u64>` get and update, `ListState<u64>` add, get and
//!   `for_each`, `MapState<u64, u64>` put, get and iterate, for one backend;
//!   [`raw_state_ops`]: the same on `hashbrown` maps plus the key-group computation;
//! - [`snapshot_sync`]: the synchronous phase of a snapshot and the first write after it
//!   (copy-on-write); [`snapshot_async`]: the asynchronous write of the snapshot;
//!   [`raw_snapshot_baselines`]: cloning and serializing a plain map of the same size;
//! - [`timer_ops`]: registering, deleting and firing 100k keys × 10 event-time timers
//!   (namespace `u64`) through a backend's timer service; [`raw_heap_timer_ops`]: the same
//!   on a `BinaryHeap` + `HashSet` ([`timers`] module).
//!
//! Benchmark ids are `op/backend/detail`, e.g. `value_get/memory/100k`; per-operation
//! groups set [`Throughput::Elements`] so criterion prints operations per second.
//!
//! Every backend runs single-threaded with keys `u64`, namespace `()` (`u64` for timers), max parallelism
//! [`MAX_PARALLELISM`] and one backend owning all key groups.

pub mod storage;
pub mod timers;

pub use timers::{
    BenchTimer, FireCursor, RawHeapTimers, TIMER_KEYS, TIMER_ROUND_SPAN, TIMER_SERVICE,
    TIMERS_PER_KEY, TimerBench, TimerWorkload, raw_heap_timer_ops, timed_fire, timer_groups,
    timer_ops, timer_service,
};

use std::hint::black_box;
use std::time::{Duration, Instant};

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::{
    CheckpointId, KeyGroupRange, KeyedBackendParams, KeyedStateBackend, KeyedStateBackendExt,
    KeyedStateHandle, ListState, ListStateDescriptor, MapState, MapStateDescriptor,
    MemoryCheckpointStorage, Result, StateBackend, StateBackendFactory, StateKey, ValueState,
    ValueStateDescriptor,
};
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use hashbrown::HashMap;

/// The number of key groups of every benchmark backend.
pub const MAX_PARALLELISM: u32 = 128;
/// Keys of the value-state workloads.
pub const VALUE_KEYS: u64 = 100_000;
/// Keys of the list-state workloads.
pub const LIST_KEYS: u64 = 100_000;
/// Elements per list in the list-read workloads (and at most in `list_add`).
pub const LIST_LEN: u64 = 10;
/// Keys of the map-state workloads (fewer than the others to keep memory small).
pub const MAP_KEYS: u64 = 10_000;
/// Entries per map in the map-state workloads.
pub const MAP_ENTRIES: u64 = 100;

/// The seed of every key shuffle, so runs access keys in the same order.
const SEED: u64 = 0x5eed_c0de;
/// How many (key, user key) pairs the map workloads cycle through.
const MAP_OPS: usize = 1 << 20;
/// How many snapshots the sync-phase bench holds before dropping them (outside timing).
const SYNC_CHUNK: u64 = 1_000;

/// The criterion settings of every Cornerstone bench: 20 samples, 1 s warm-up, 3 s of
/// measurement, so that a full run stays within minutes on a small shared machine.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// A short label for a count, used in bench ids: `100000` is `"100k"`, `1000000` is `"1M"`.
pub fn count_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// SplitMix64: a tiny deterministic generator, good enough to shuffle keys.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The keys `0..n` in a random order fixed by `seed` (Fisher-Yates).
pub fn shuffled_keys(n: u64, seed: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..keys.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        keys.swap(i, j);
    }
    keys
}

/// `n` random `(key, user key)` pairs: keys drawn from `keys`, user keys from
/// `0..entries`, so every pair hits an entry of a map filled by [`populate_maps`].
pub fn map_ops(keys: &[u64], entries: u64, n: usize, seed: u64) -> Vec<(u64, u64)> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| {
            let key = keys[rng.below(keys.len() as u64) as usize];
            (key, rng.below(entries))
        })
        .collect()
}

/// Cycles through a slice forever: the access pattern of every per-key workload.
#[derive(Debug, Clone)]
pub struct Cycle<'a, T> {
    items: &'a [T],
    next: usize,
}

impl<'a, T: Copy> Cycle<'a, T> {
    /// A cycle starting at the first item; `items` must not be empty.
    pub fn new(items: &'a [T]) -> Self {
        assert!(!items.is_empty(), "a cycle needs at least one item");
        Cycle { items, next: 0 }
    }

    /// The next item, wrapping around at the end.
    #[inline]
    pub fn next_item(&mut self) -> T {
        let item = self.items[self.next];
        self.next += 1;
        if self.next == self.items.len() {
            self.next = 0;
        }
        item
    }
}

/// Writes checkpoint `id` of `backend` into `storage` (both phases, then the
/// completion notice): its handles, how many bytes it wrote (into the storage, or inline in
/// the handles) and the time of both phases. For the one-shot restore benches.
///
/// # Panics
/// When the snapshot fails: a bench has nothing to measure then.
pub fn checkpoint_into<K: StateKey, B: KeyedStateBackend<K>>(
    backend: &B,
    id: u64,
    storage: &MemoryCheckpointStorage,
) -> (Vec<KeyedStateHandle>, u64, Duration) {
    let before = storage.total_size();
    let start = Instant::now();
    let state = backend
        .snapshot(CheckpointId(id))
        .expect("sync phase")
        .write(&storage.stream_factory(CheckpointId(id)))
        .expect("async phase");
    let took = start.elapsed();
    backend
        .notify_checkpoint_complete(CheckpointId(id))
        .expect("notify");
    // The memory backend keeps its snapshot inline in the handle, not in the storage.
    let bytes = (storage.total_size() - before).max(
        state
            .keyed
            .iter()
            .flat_map(KeyedStateHandle::streams)
            .map(|s| s.size())
            .sum(),
    );
    (state.keyed, bytes, took)
}

/// A fresh keyed backend for `u64` keys owning all [`MAX_PARALLELISM`] key groups.
///
/// # Errors
/// The factory's errors.
pub fn keyed_backend<F: StateBackendFactory>(factory: &F) -> Result<F::Backend<u64>> {
    factory.create_keyed_backend::<u64>(KeyedBackendParams::new(
        MAX_PARALLELISM,
        KeyGroupRange::all(MAX_PARALLELISM),
    ))
}

/// Registers `ValueState<u64>` `"value"` and sets every key to itself.
///
/// # Errors
/// The backend's errors.
pub fn populate_values<B>(backend: &B, keys: &[u64]) -> Result<ValueState<u64, u64>>
where
    B: KeyedStateBackend<u64> + ?Sized,
{
    let state = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("value"))?;
    for &key in keys {
        state.update(&key, &(), key)?;
    }
    Ok(state)
}

/// Registers `ListState<u64>` `"list"` and gives every key the list `key..key + len`
/// (no list when `len` is 0).
///
/// # Errors
/// The backend's errors.
pub fn populate_lists<B>(backend: &B, keys: &[u64], len: u64) -> Result<ListState<u64, u64>>
where
    B: KeyedStateBackend<u64> + ?Sized,
{
    let state = backend.list_state::<u64, ()>(&ListStateDescriptor::new("list"))?;
    for &key in keys {
        state.add_all(&key, &(), (key..key + len).collect())?;
    }
    Ok(state)
}

/// Registers `MapState<u64, u64>` `"map"` and gives every key the map
/// `{uk: key ^ uk for uk in 0..entries}`.
///
/// # Errors
/// The backend's errors.
pub fn populate_maps<B>(backend: &B, keys: &[u64], entries: u64) -> Result<MapState<u64, u64, u64>>
where
    B: KeyedStateBackend<u64> + ?Sized,
{
    let state = backend.map_state::<u64, u64, ()>(&MapStateDescriptor::new("map"))?;
    for &key in keys {
        state.put_all(&key, &(), (0..entries).map(|uk| (uk, key ^ uk)).collect())?;
    }
    Ok(state)
}

/// A group `op` measuring one operation per iteration.
pub fn per_op_group<'c>(c: &'c mut Criterion, op: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(op);
    group.throughput(Throughput::Elements(1));
    group
}

/// Times `iters` calls of `op`, calling `reset` (untimed) after every `chunk` calls, so
/// that appending workloads keep a bounded size. `done` counts the calls since the last
/// reset across invocations.
pub fn timed_in_chunks(
    iters: u64,
    chunk: u64,
    done: &mut u64,
    mut op: impl FnMut(),
    mut reset: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk - *done);
        let start = Instant::now();
        for _ in 0..n {
            op();
        }
        total += start.elapsed();
        left -= n;
        *done += n;
        if *done == chunk {
            reset();
            *done = 0;
        }
    }
    total
}

/// The per-state-operation workloads on one backend, named `name` in the bench ids:
///
/// - `value_get`, `value_update`: `ValueState<u64>` over [`VALUE_KEYS`] populated keys,
///   visited in a shuffled order;
/// - `list_add`: appends to lists of [`LIST_KEYS`] keys, cleared (untimed) once they
///   hold [`LIST_LEN`] elements on average;
/// - `list_get` (a copy as a `Vec`, then summed) and `list_for_each` (summed in place):
///   lists of [`LIST_LEN`] elements;
/// - `map_put` (overwrites), `map_get`, `map_iterate` (all entries of one map per op):
///   [`MAP_KEYS`] keys with [`MAP_ENTRIES`] entries each.
///
/// # Panics
/// When the backend fails, naming the operation.
pub fn state_ops<F: StateBackendFactory>(c: &mut Criterion, name: &str, factory: &F) {
    value_ops(c, name, factory);
    list_ops(c, name, factory);
    map_ops_bench(c, name, factory);
}

fn value_ops<F: StateBackendFactory>(c: &mut Criterion, name: &str, factory: &F) {
    let keys = shuffled_keys(VALUE_KEYS, SEED);
    let label = count_label(VALUE_KEYS);
    let backend = keyed_backend(factory).expect("create the keyed backend");
    let state = populate_values(&backend, &keys).expect("populate value state");

    let mut group = per_op_group(c, "value_get");
    group.bench_function(format!("{name}/{label}"), |b| {
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            black_box(state.get(&key, &()).expect("value_get"))
        });
    });
    group.finish();

    let mut group = per_op_group(c, "value_update");
    group.bench_function(format!("{name}/{label}"), |b| {
        let mut cycle = Cycle::new(&keys);
        let mut n = 0u64;
        b.iter(|| {
            let key = cycle.next_item();
            n += 1;
            state.update(&key, &(), n).expect("value_update");
        });
    });
    group.finish();
}

fn list_ops<F: StateBackendFactory>(c: &mut Criterion, name: &str, factory: &F) {
    let keys = shuffled_keys(LIST_KEYS, SEED);
    let label = count_label(LIST_KEYS);
    {
        let backend = keyed_backend(factory).expect("create the keyed backend");
        let state = populate_lists(&backend, &keys, 0).expect("register list state");
        let mut group = per_op_group(c, "list_add");
        group.bench_function(format!("{name}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            let mut done = 0;
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    LIST_KEYS * LIST_LEN,
                    &mut done,
                    || {
                        let key = cycle.next_item();
                        state.add(&key, &(), key).expect("list_add");
                    },
                    || {
                        for key in &keys {
                            state.clear(key, &()).expect("list clear");
                        }
                    },
                )
            });
        });
        group.finish();
    }

    let backend = keyed_backend(factory).expect("create the keyed backend");
    let state = populate_lists(&backend, &keys, LIST_LEN).expect("populate list state");
    let detail = format!("{label}x{LIST_LEN}");

    let mut group = per_op_group(c, "list_get");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            let list = state.get(&key, &()).expect("list_get");
            black_box(list.iter().sum::<u64>())
        });
    });
    group.finish();

    let mut group = per_op_group(c, "list_for_each");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            let mut sum = 0u64;
            state
                .for_each(&key, &(), |v| sum += *v)
                .expect("list_for_each");
            black_box(sum)
        });
    });
    group.finish();
}

fn map_ops_bench<F: StateBackendFactory>(c: &mut Criterion, name: &str, factory: &F) {
    let keys = shuffled_keys(MAP_KEYS, SEED);
    let ops = map_ops(&keys, MAP_ENTRIES, MAP_OPS, SEED);
    let detail = format!("{}x{MAP_ENTRIES}", count_label(MAP_KEYS));
    let backend = keyed_backend(factory).expect("create the keyed backend");
    let state = populate_maps(&backend, &keys, MAP_ENTRIES).expect("populate map state");

    let mut group = per_op_group(c, "map_put");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let mut cycle = Cycle::new(&ops);
        let mut n = 0u64;
        b.iter(|| {
            let (key, user_key) = cycle.next_item();
            n += 1;
            state.put(&key, &(), user_key, n).expect("map_put");
        });
    });
    group.finish();

    let mut group = per_op_group(c, "map_get");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let mut cycle = Cycle::new(&ops);
        b.iter(|| {
            let (key, user_key) = cycle.next_item();
            black_box(state.get(&key, &(), &user_key).expect("map_get"))
        });
    });
    group.finish();

    let mut group = per_op_group(c, "map_iterate");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            let mut sum = 0u64;
            state
                .for_each(&key, &(), |uk, uv| sum = sum.wrapping_add(uk ^ uv))
                .expect("map_iterate");
            black_box(sum)
        });
    });
    group.finish();
}

/// The key group of `key`, computed as every backend does on each access.
#[inline]
fn key_group(key: u64) -> u32 {
    key_group_for_key(&key, MAX_PARALLELISM).expect("key group of a u64")
}

/// The workloads of [`state_ops`] on plain `hashbrown` maps (same hasher as the heap
/// backends), each access also computing the key group of its key: the bar for the
/// overhead of a backend. Backend name `raw_hashmap`.
///
/// `list_get/raw_hashmap` clones the `Vec` as `ListState::get` does; `list_for_each`
/// sums it in place. `key_group/raw/100k` times the key-group computation alone.
///
/// # Panics
/// Never, except on a bug in the key-group computation.
pub fn raw_state_ops(c: &mut Criterion) {
    const NAME: &str = "raw_hashmap";
    // The key-group computation alone: a fixed cost of every access, in every backend.
    {
        let keys = shuffled_keys(VALUE_KEYS, SEED);
        let mut group = per_op_group(c, "key_group");
        group.bench_function(format!("raw/{}", count_label(VALUE_KEYS)), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| key_group(cycle.next_item()));
        });
        group.finish();
    }
    // Values.
    {
        let keys = shuffled_keys(VALUE_KEYS, SEED);
        let label = count_label(VALUE_KEYS);
        let mut map: HashMap<u64, u64> = keys.iter().map(|&k| (k, k)).collect();

        let mut group = per_op_group(c, "value_get");
        group.bench_function(format!("{NAME}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                black_box(map.get(&key).copied())
            });
        });
        group.finish();

        let mut group = per_op_group(c, "value_update");
        group.bench_function(format!("{NAME}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            let mut n = 0u64;
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                n += 1;
                map.insert(key, n);
            });
        });
        group.finish();
    }
    // Lists.
    {
        let keys = shuffled_keys(LIST_KEYS, SEED);
        let label = count_label(LIST_KEYS);
        let mut map: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut group = per_op_group(c, "list_add");
        group.bench_function(format!("{NAME}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            let mut done = 0;
            let map = std::cell::RefCell::new(&mut map);
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    LIST_KEYS * LIST_LEN,
                    &mut done,
                    || {
                        let key = cycle.next_item();
                        black_box(key_group(key));
                        map.borrow_mut().entry(key).or_default().push(key);
                    },
                    || {
                        let mut map = map.borrow_mut();
                        for key in &keys {
                            map.remove(key);
                        }
                    },
                )
            });
        });
        group.finish();
        drop(map);

        let map: HashMap<u64, Vec<u64>> = keys
            .iter()
            .map(|&k| (k, (k..k + LIST_LEN).collect()))
            .collect();
        let detail = format!("{label}x{LIST_LEN}");
        let mut group = per_op_group(c, "list_get");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                let list = map.get(&key).cloned().unwrap_or_default();
                black_box(list.iter().sum::<u64>())
            });
        });
        group.finish();

        let mut group = per_op_group(c, "list_for_each");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                black_box(map.get(&key).map_or(0, |l| l.iter().sum::<u64>()))
            });
        });
        group.finish();
    }
    // Maps.
    {
        let keys = shuffled_keys(MAP_KEYS, SEED);
        let ops = map_ops(&keys, MAP_ENTRIES, MAP_OPS, SEED);
        let detail = format!("{}x{MAP_ENTRIES}", count_label(MAP_KEYS));
        let mut map: HashMap<u64, HashMap<u64, u64>> = keys
            .iter()
            .map(|&k| (k, (0..MAP_ENTRIES).map(|uk| (uk, k ^ uk)).collect()))
            .collect();

        let mut group = per_op_group(c, "map_put");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&ops);
            let mut n = 0u64;
            b.iter(|| {
                let (key, user_key) = cycle.next_item();
                black_box(key_group(key));
                n += 1;
                map.entry(key).or_default().insert(user_key, n);
            });
        });
        group.finish();

        let mut group = per_op_group(c, "map_get");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&ops);
            b.iter(|| {
                let (key, user_key) = cycle.next_item();
                black_box(key_group(key));
                black_box(map.get(&key).and_then(|m| m.get(&user_key)).copied())
            });
        });
        group.finish();

        let mut group = per_op_group(c, "map_iterate");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                let mut sum = 0u64;
                if let Some(m) = map.get(&key) {
                    for (uk, uv) in m {
                        sum = sum.wrapping_add(uk ^ uv);
                    }
                }
                black_box(sum)
            });
        });
        group.finish();
    }
}

/// The synchronous phase of a snapshot of a backend holding `keys` `ValueState<u64>`
/// keys (`snapshot_sync/{name}/{keys}`), and the latency of the first write after a
/// snapshot, which copies one key group (`snapshot_cow_write/{name}/{keys}`), beside a
/// steady-state update of the same backend (`value_update/{name}/{keys}`).
///
/// Snapshots are dropped outside the measurement; nothing is written.
///
/// # Panics
/// When the backend fails, naming the operation.
pub fn snapshot_sync<F: StateBackendFactory>(
    c: &mut Criterion,
    name: &str,
    factory: &F,
    keys: u64,
) {
    let key_list = shuffled_keys(keys, SEED);
    let label = count_label(keys);
    let backend = keyed_backend(factory).expect("create the keyed backend");
    let state = populate_values(&backend, &key_list).expect("populate value state");
    let mut checkpoint = 0u64;

    let mut group = c.benchmark_group("snapshot_sync");
    group.bench_function(format!("{name}/{label}"), |b| {
        let mut held = Vec::with_capacity(SYNC_CHUNK as usize);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(SYNC_CHUNK);
                let start = Instant::now();
                for _ in 0..n {
                    checkpoint += 1;
                    held.push(
                        backend
                            .snapshot(CheckpointId(checkpoint))
                            .expect("snapshot"),
                    );
                }
                total += start.elapsed();
                held.clear();
                left -= n;
            }
            total
        });
    });
    group.finish();

    let mut group = per_op_group(c, "snapshot_cow_write");
    group.bench_function(format!("{name}/{label}"), |b| {
        let mut cycle = Cycle::new(&key_list);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                checkpoint += 1;
                let snapshot = backend
                    .snapshot(CheckpointId(checkpoint))
                    .expect("snapshot");
                let key = cycle.next_item();
                let start = Instant::now();
                state.update(&key, &(), key).expect("value_update");
                total += start.elapsed();
                drop(snapshot);
            }
            total
        });
    });
    group.finish();

    let mut group = per_op_group(c, "value_update");
    group.bench_function(format!("{name}/{label}"), |b| {
        let mut cycle = Cycle::new(&key_list);
        b.iter(|| {
            let key = cycle.next_item();
            state.update(&key, &(), key).expect("value_update");
        });
    });
    group.finish();
}

/// The asynchronous phase of a snapshot of `keys` `ValueState<u64>` keys, written through
/// a fresh [`MemoryCheckpointStorage`] each time (`snapshot_async_write/{name}/{keys}`,
/// throughput in keys). Backends that write inline (the memory backend) ignore the
/// storage; give them a cap that fits.
///
/// # Panics
/// When the backend or the write fails, naming the operation.
pub fn snapshot_async<F: StateBackendFactory>(
    c: &mut Criterion,
    name: &str,
    factory: &F,
    keys: u64,
) {
    let key_list = shuffled_keys(keys, SEED);
    let label = count_label(keys);
    let backend = keyed_backend(factory).expect("create the keyed backend");
    let _state = populate_values(&backend, &key_list).expect("populate value state");
    let mut checkpoint = 0u64;

    // Report the snapshot's size once, for context.
    {
        let storage = MemoryCheckpointStorage::new();
        let written = backend
            .snapshot(CheckpointId(0))
            .expect("snapshot")
            .write(&storage.stream_factory(CheckpointId(0)))
            .expect("write the snapshot");
        let bytes: u64 = written
            .keyed
            .iter()
            .map(|h| match h {
                KeyedStateHandle::KeyGroups(h) => h.stream.size(),
                KeyedStateHandle::Incremental(_) => 0,
            })
            .sum();
        eprintln!("snapshot_async_write/{name}/{label}: the snapshot is {bytes} bytes");
    }

    let mut group = c.benchmark_group("snapshot_async_write");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(keys));
    group.bench_function(format!("{name}/{label}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                checkpoint += 1;
                let id = CheckpointId(checkpoint);
                let storage = MemoryCheckpointStorage::new();
                let streams = storage.stream_factory(id);
                let snapshot = backend.snapshot(id).expect("snapshot");
                let start = Instant::now();
                let written = snapshot.write(&streams).expect("write the snapshot");
                total += start.elapsed();
                drop((written, streams, storage));
            }
            total
        });
    });
    group.finish();
}

/// Baselines for the snapshot benches on a `hashbrown` map of `keys` `u64` entries:
/// cloning it (`snapshot_sync/raw_hashmap_clone/{keys}`, what a copying sync phase would
/// cost), serializing it as big-endian pairs into a `Vec`
/// (`snapshot_async_write/raw_serialize/{keys}`), and updating it with the key-group
/// computation (`value_update/raw_hashmap/{keys}`, the raw bar for the steady-state
/// update of [`snapshot_sync`] at that size).
pub fn raw_snapshot_baselines(c: &mut Criterion, keys: u64) {
    let label = count_label(keys);
    let key_list = shuffled_keys(keys, SEED);
    let mut map: HashMap<u64, u64> = key_list.iter().map(|&k| (k, k)).collect();

    let mut group = c.benchmark_group("snapshot_sync");
    // A clone of 1M entries takes milliseconds: 20 samples would not fit in 3 s.
    group.sample_size(10);
    group.bench_function(format!("raw_hashmap_clone/{label}"), |b| {
        b.iter_with_large_drop(|| map.clone());
    });
    group.finish();

    let mut group = per_op_group(c, "value_update");
    group.bench_function(format!("raw_hashmap/{label}"), |b| {
        let mut cycle = Cycle::new(&key_list);
        b.iter(|| {
            let key = cycle.next_item();
            black_box(key_group(key));
            map.insert(key, key);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("snapshot_async_write");
    group.throughput(Throughput::Elements(keys));
    group.bench_function(format!("raw_serialize/{label}"), |b| {
        b.iter_with_large_drop(|| {
            let mut out = Vec::with_capacity(map.len() * 16);
            for (k, v) in &map {
                out.extend_from_slice(&k.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            out
        });
    });
    group.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_and_deterministic() {
        let keys = shuffled_keys(1_000, 1);
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1_000).collect::<Vec<_>>());
        assert_eq!(keys, shuffled_keys(1_000, 1));
        assert_ne!(keys, sorted);
    }

    #[test]
    fn labels() {
        assert_eq!(count_label(100_000), "100k");
        assert_eq!(count_label(1_000_000), "1M");
        assert_eq!(count_label(10_000), "10k");
        assert_eq!(count_label(1_500), "1500");
    }

    #[test]
    fn chunks_reset_between_batches() {
        let (mut ops, mut resets, mut done) = (0u64, 0u64, 0u64);
        let mut counter = |iters| {
            timed_in_chunks(iters, 10, &mut done, || ops += 1, || resets += 1);
        };
        counter(7);
        counter(7);
        counter(26);
        assert_eq!((ops, resets, done), (40, 4, 0));
    }
}
