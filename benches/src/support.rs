//! What every workload shares: the criterion settings, deterministic key shuffles, the
//! cycle through keys, backend creation and population, and chunked timing.

use std::time::{Duration, Instant};

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    CheckpointId, KeyGroupRange, KeyedBackendParams, KeyedStateBackend, KeyedStateBackendExt,
    KeyedStateHandle, ListState, ListStateDescriptor, MapState, MapStateDescriptor, Result,
    StateBackend, StateKey, ValueState, ValueStateDescriptor,
};
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};

/// The number of key groups of every benchmark backend.
pub const MAX_PARALLELISM: u32 = 128;
/// The seed of every key shuffle, so runs access keys in the same order.
pub(crate) const SEED: u64 = 0x5eed_c0de;

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
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
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
pub fn keyed_backend<F: StateBackend>(factory: &F) -> Result<F::Backend<u64>> {
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

/// How the lists of a list workload are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListBuild {
    /// One `update(list)` per key: one stored value per list, as the Flink harness
    /// preloads its lists (the like-for-like comparison).
    Update,
    /// One `add` per element: in RocksDB, one merge operand per element, merged on read.
    Adds,
}

/// Registers `ListState<u64>` `"list"` and gives every key the list `key..key + len`
/// (no list when `len` is 0), built as `build` says.
///
/// # Errors
/// The backend's errors.
pub fn populate_lists<B>(
    backend: &B,
    keys: &[u64],
    len: u64,
    build: ListBuild,
) -> Result<ListState<u64, u64>>
where
    B: KeyedStateBackend<u64> + ?Sized,
{
    let state = backend.list_state::<u64, ()>(&ListStateDescriptor::new("list"))?;
    for &key in keys {
        match build {
            ListBuild::Update if len > 0 => state.update(&key, &(), (key..key + len).collect())?,
            ListBuild::Update => {}
            ListBuild::Adds => {
                for v in key..key + len {
                    state.add(&key, &(), v)?;
                }
            }
        }
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

/// The key group of `key`, computed as every backend does on each access.
#[inline]
pub(crate) fn key_group(key: u64) -> u32 {
    key_group_for_key(&key, MAX_PARALLELISM).expect("key group of a u64")
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
