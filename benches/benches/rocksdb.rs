//! The RocksDB backend: per-operation throughput through the shared harness beside raw
//! `rocksdb` crate calls with the same key encoding and options (`raw_rocksdb`), then the
//! size of an incremental checkpoint after changing 1% of 1M keys versus a full snapshot,
//! and restore times from both. `cargo bench -p cornerstone-benches --bench rocksdb`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    KeyedStateHandle, StateBackend, StateReader, SubtaskState, ValueStateDescriptor,
};
use cornerstone_backend_rocksdb::RocksDbStateBackend;
use cornerstone_backend_rocksdb::rocksdb::{
    ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, ReadOptions, WriteBatch,
};
use cornerstone_benches::{
    Cycle, LIST_KEYS, LIST_LEN, MAP_ENTRIES, MAP_KEYS, MAX_PARALLELISM, VALUE_KEYS, count_label,
    criterion_config, map_ops, per_op_group, shuffled_keys, state_ops,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

type Db = DBWithThreadMode<MultiThreaded>;

const SEED: u64 = 0x5eed_c0de;
/// Keys of the checkpoint-size workload.
const CHECKPOINT_KEYS: u64 = 1_000_000;

/// Buckets of the hash-indexed memtables of the `rocksdb_hash` runs.
const HASH_BUCKETS: usize = 100_000;

fn factory(dir: &std::path::Path) -> RocksDbStateBackend {
    RocksDbStateBackend::new().working_dir(dir)
}

/// The backend with its defaults (`rocksdb`), and with hash-indexed memtables
/// (`rocksdb_hash`).
fn backend(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    state_ops(c, "rocksdb", &factory(dir.path()));
    let hashed = factory(dir.path()).memtable_hash_buckets(HASH_BUCKETS);
    state_ops(c, "rocksdb_hash", &hashed);
}

/// The stored key of `key` in namespace `()`: key group, length-prefixed big-endian key,
/// empty namespace; the backend's layout.
#[inline]
fn state_key(key: u64, out: &mut Vec<u8>) {
    out.clear();
    let kg = key_group_for_key(&key, MAX_PARALLELISM).expect("key group of a u64");
    out.push(kg as u8);
    out.push(8);
    out.extend_from_slice(&key.to_be_bytes());
    out.push(0);
}

fn open_raw(dir: &std::path::Path, factory: &RocksDbStateBackend, cfs: &[&str]) -> Db {
    let descriptors = cfs.iter().map(|name| {
        ColumnFamilyDescriptor::new(*name, factory.column_family_options(MAX_PARALLELISM))
    });
    Db::open_cf_descriptors(&factory.db_options(), dir.join("db"), descriptors)
        .expect("open raw db")
}

/// The workloads of `state_ops` with direct `rocksdb` calls: the same key layout, column
/// family options, write options (no WAL) and value encoding (big-endian `u64`; lists as
/// a count and the elements, appended with the backend's merge operator).
fn raw(c: &mut Criterion) {
    const NAME: &str = "raw_rocksdb";
    let dir = tempfile::tempdir().expect("a temp dir");
    let f = factory(dir.path());
    let db = open_raw(dir.path(), &f, &["value", "list", "map"]);
    let write = RocksDbStateBackend::write_options();
    let read = ReadOptions::default();
    let mut k = Vec::with_capacity(32);

    // Values.
    let cf = db.cf_handle("value").expect("cf");
    let keys = shuffled_keys(VALUE_KEYS, SEED);
    for &key in &keys {
        state_key(key, &mut k);
        db.put_cf_opt(&cf, &k, key.to_be_bytes(), &write)
            .expect("put");
    }
    let label = count_label(VALUE_KEYS);
    let mut group = per_op_group(c, "value_get");
    group.bench_function(format!("{NAME}/{label}"), |b| {
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            state_key(cycle.next_item(), &mut k);
            let v = db
                .get_pinned_cf_opt(&cf, &k, &read)
                .expect("get")
                .expect("present");
            let mut n = [0u8; 8];
            n.copy_from_slice(&v);
            black_box(u64::from_be_bytes(n))
        });
    });
    group.finish();
    let mut group = per_op_group(c, "value_update");
    group.bench_function(format!("{NAME}/{label}"), |b| {
        let mut cycle = Cycle::new(&keys);
        let mut n = 0u64;
        b.iter(|| {
            state_key(cycle.next_item(), &mut k);
            n += 1;
            db.put_cf_opt(&cf, &k, n.to_be_bytes(), &write)
                .expect("put");
        });
    });
    group.finish();
    drop(cf);

    // Lists.
    let cf = db.cf_handle("list").expect("cf");
    let keys = shuffled_keys(LIST_KEYS, SEED);
    let label = count_label(LIST_KEYS);
    let mut group = per_op_group(c, "list_add");
    group.bench_function(format!("{NAME}/{label}"), |b| {
        let mut cycle = Cycle::new(&keys);
        let mut done = 0u64;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(LIST_KEYS * LIST_LEN - done);
                let start = Instant::now();
                for _ in 0..n {
                    let key = cycle.next_item();
                    state_key(key, &mut k);
                    let mut operand = [0u8; 16];
                    operand[..8].copy_from_slice(&1u64.to_be_bytes());
                    operand[8..].copy_from_slice(&key.to_be_bytes());
                    db.merge_cf_opt(&cf, &k, operand, &write).expect("merge");
                }
                total += start.elapsed();
                left -= n;
                done += n;
                if done == LIST_KEYS * LIST_LEN {
                    for &key in &keys {
                        state_key(key, &mut k);
                        db.delete_cf_opt(&cf, &k, &write).expect("delete");
                    }
                    done = 0;
                }
            }
            total
        });
    });
    group.finish();
    for &key in &keys {
        state_key(key, &mut k);
        let mut list = Vec::with_capacity(8 + 8 * LIST_LEN as usize);
        list.extend_from_slice(&LIST_LEN.to_be_bytes());
        for v in key..key + LIST_LEN {
            list.extend_from_slice(&v.to_be_bytes());
        }
        db.put_cf_opt(&cf, &k, &list, &write).expect("put");
    }
    let decode = |bytes: &[u8]| -> Vec<u64> {
        bytes[8..]
            .chunks_exact(8)
            .map(|c| {
                let mut n = [0u8; 8];
                n.copy_from_slice(c);
                u64::from_be_bytes(n)
            })
            .collect()
    };
    let detail = format!("{label}x{LIST_LEN}");
    for op in ["list_get", "list_for_each"] {
        let mut group = per_op_group(c, op);
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                state_key(cycle.next_item(), &mut k);
                let v = db
                    .get_pinned_cf_opt(&cf, &k, &read)
                    .expect("get")
                    .expect("present");
                black_box(decode(&v).iter().sum::<u64>())
            });
        });
        group.finish();
    }
    drop(cf);

    // Maps.
    let cf = db.cf_handle("map").expect("cf");
    let keys = shuffled_keys(MAP_KEYS, SEED);
    let ops = map_ops(&keys, MAP_ENTRIES, 1 << 20, SEED);
    let detail = format!("{}x{MAP_ENTRIES}", count_label(MAP_KEYS));
    let entry = |key: u64, uk: u64, out: &mut Vec<u8>| {
        state_key(key, out);
        out.extend_from_slice(&uk.to_be_bytes());
    };
    for &key in &keys {
        let mut batch = WriteBatch::default();
        for uk in 0..MAP_ENTRIES {
            entry(key, uk, &mut k);
            batch.put_cf(&cf, &k, (key ^ uk).to_be_bytes());
        }
        db.write_opt(batch, &write).expect("write");
    }
    let mut group = per_op_group(c, "map_put");
    group.bench_function(format!("{NAME}/{detail}"), |b| {
        let mut cycle = Cycle::new(&ops);
        let mut n = 0u64;
        b.iter(|| {
            let (key, uk) = cycle.next_item();
            entry(key, uk, &mut k);
            n += 1;
            db.put_cf_opt(&cf, &k, n.to_be_bytes(), &write)
                .expect("put");
        });
    });
    group.finish();
    let mut group = per_op_group(c, "map_get");
    group.bench_function(format!("{NAME}/{detail}"), |b| {
        let mut cycle = Cycle::new(&ops);
        b.iter(|| {
            let (key, uk) = cycle.next_item();
            entry(key, uk, &mut k);
            black_box(
                db.get_pinned_cf_opt(&cf, &k, &read)
                    .expect("get")
                    .map(|v| v.len()),
            )
        });
    });
    group.finish();
    let mut group = per_op_group(c, "map_iterate");
    group.bench_function(format!("{NAME}/{detail}"), |b| {
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            state_key(cycle.next_item(), &mut k);
            let mut upper = k.clone();
            if let Some(last) = upper.last_mut() {
                *last += 1;
            }
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(upper);
            let mut it = db.raw_iterator_cf_opt(&cf, ro);
            it.seek(&k);
            let mut sum = 0u64;
            while let (Some(key), Some(value)) = (it.key(), it.value()) {
                let mut a = [0u8; 8];
                a.copy_from_slice(&key[key.len() - 8..]);
                let mut v = [0u8; 8];
                v.copy_from_slice(value);
                sum = sum.wrapping_add(u64::from_be_bytes(a) ^ u64::from_be_bytes(v));
                it.next();
            }
            black_box(sum)
        });
    });
    group.finish();
}

/// Checkpoint sizes (printed) and restore times: 1M keys, checkpoint 1, 1% of the keys
/// changed, checkpoint 2 (incremental); a full snapshot of the same state for comparison.
fn checkpoints(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let incremental = factory(dir.path());
    let full = factory(dir.path()).incremental(false);
    let params = || KeyedBackendParams::new(MAX_PARALLELISM, KeyGroupRange::all(MAX_PARALLELISM));
    let backend = incremental
        .create_keyed_backend::<u64>(params())
        .expect("backend");
    let d = ValueStateDescriptor::<u64>::new("value");
    let state = backend.value_state::<u64, ()>(&d).expect("state");
    let keys = shuffled_keys(CHECKPOINT_KEYS, SEED);
    for &key in &keys {
        state.update(&key, &(), key).expect("update");
    }
    let storage = MemoryCheckpointStorage::new();
    let write = |id: u64| -> (SubtaskState, u64) {
        let before = storage.total_size();
        let s = backend
            .snapshot(CheckpointId(id))
            .expect("sync phase")
            .write(&storage.stream_factory(CheckpointId(id)))
            .expect("async phase");
        backend
            .notify_checkpoint_complete(CheckpointId(id))
            .expect("notify");
        (s, storage.total_size() - before)
    };
    let (_, first) = write(1);
    for &key in keys.iter().take((CHECKPOINT_KEYS / 100) as usize) {
        state.update(&key, &(), key + 1).expect("update");
    }
    let (second, uploaded) = write(2);
    // The same state as a full snapshot (what the fs backend or a savepoint writes).
    let full_handles = {
        let restored = full
            .create_keyed_backend::<u64>(params().restore(
                second.keyed.clone(),
                Some(Arc::new(storage.clone()) as Arc<dyn StateReader>),
            ))
            .expect("restore");
        restored
            .snapshot(CheckpointId(3))
            .expect("sync phase")
            .write(&storage.stream_factory(CheckpointId(3)))
            .expect("async phase")
            .keyed
    };
    let full_size: u64 = full_handles
        .iter()
        .flat_map(KeyedStateHandle::streams)
        .map(|s| s.size())
        .sum();
    let incremental_size: u64 = second
        .keyed
        .iter()
        .flat_map(KeyedStateHandle::streams)
        .map(|s| s.size())
        .sum();
    println!(
        "checkpoint_size/rocksdb/1M: first incremental checkpoint uploaded {first} B; after changing 1% of \
         the keys the next uploaded {uploaded} B = {:.2}% of a full snapshot ({full_size} B); the \
         incremental handle references {incremental_size} B",
        uploaded as f64 * 100.0 / full_size as f64
    );

    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    let hashed = factory(dir.path()).memtable_hash_buckets(HASH_BUCKETS);
    let mut group = c.benchmark_group("restore");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CHECKPOINT_KEYS));
    for (label, handles, into) in [
        ("rocksdb/incremental", second.keyed.clone(), &incremental),
        ("rocksdb/full", full_handles.clone(), &incremental),
        ("rocksdb_hash/full", full_handles, &hashed),
    ] {
        group.bench_function(format!("{label}/1M"), |b| {
            b.iter(|| {
                let restored = into
                    .create_keyed_backend::<u64>(
                        params().restore(handles.clone(), Some(reader.clone())),
                    )
                    .expect("restore");
                black_box(restored.registered_states().len())
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = backend, raw, checkpoints
}
criterion_main!(benches);
