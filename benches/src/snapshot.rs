//! The snapshot workloads: the synchronous and asynchronous phases on a backend, and raw
//! baselines on a plain map.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyedStateHandle, StateBackend,
};
use criterion::{Criterion, Throughput};
use hashbrown::HashMap;

use crate::support::{
    Cycle, SEED, count_label, key_group, keyed_backend, per_op_group, populate_values,
    shuffled_keys,
};

/// How many snapshots the sync-phase bench holds before dropping them (outside timing).
const SYNC_CHUNK: u64 = 1_000;

/// The synchronous phase of a snapshot of a backend holding `keys` `ValueState<u64>`
/// keys (`snapshot_sync/{name}/{keys}`), and the latency of the first write after a
/// snapshot, which copies one key group (`snapshot_cow_write/{name}/{keys}`), beside a
/// steady-state update of the same backend (`value_update/{name}/{keys}`).
///
/// Snapshots are dropped outside the measurement; nothing is written.
///
/// # Panics
/// When the backend fails, naming the operation.
pub fn snapshot_sync<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F, keys: u64) {
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
pub fn snapshot_async<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F, keys: u64) {
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
                KeyedStateHandle::Changelog(h) => h.latest().size(),
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
