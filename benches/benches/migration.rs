//! One-shot cost of schema migration on restore: 1M keys of a value state written as
//! version 1 of a struct, restored (a) with the same type and (b) as version 2 (a field
//! added) through `migrate_from`, for the heap (the fs backend: the memory backend caps its
//! snapshots at 5 MiB) and, with the `rocksdb` feature,
//! RocksDB (incremental checkpoint; migration rewrites the column family). Each restore is
//! timed from `create_keyed_backend` until the state is registered and one value read, the
//! median of three runs; all values are then checked (untimed).
//!
//! ```sh
//! cargo bench -p cornerstone-benches --features rocksdb --bench migration
//! CORNERSTONE_MIGRATION_KEYS=100000 cargo bench -p cornerstone-benches --bench migration
//! ```
//!
//! Without `--bench` (`cargo test`) it runs 1,000 keys as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, KeyedStateHandle, StateBackend,
    StateReader, ValueStateDescriptor, state_type,
};
use cornerstone_backend_fs::FsStateBackend;
use cornerstone_benches::{MAX_PARALLELISM, checkpoint_into, count_label};
use serde::{Deserialize, Serialize};

/// Version 1 of the stored type.
#[derive(Clone, Serialize, Deserialize)]
struct VisitV1 {
    page: String,
    count: u64,
}
state_type!(VisitV1, "bench.Visit");

/// Version 2: a field added.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
struct Visit {
    page: String,
    count: u64,
    referrer: Option<String>,
}
state_type!(Visit, "bench.Visit", version = 2);

fn v1(k: u64) -> VisitV1 {
    VisitV1 {
        page: format!("/page/{}", k % 1000),
        count: k,
    }
}

fn upgrade(old: VisitV1) -> Visit {
    Visit {
        page: old.page,
        count: old.count,
        referrer: None,
    }
}

fn params() -> KeyedBackendParams {
    KeyedBackendParams::new(MAX_PARALLELISM, KeyGroupRange::all(MAX_PARALLELISM))
}

/// Writes `keys` version-1 values with `factory`'s backend and checkpoints them.
fn written<F: StateBackend>(
    factory: &F,
    keys: u64,
    storage: &MemoryCheckpointStorage,
) -> Vec<KeyedStateHandle> {
    let backend = factory
        .create_keyed_backend::<u64>(params())
        .expect("backend");
    let state = backend
        .value_state::<VisitV1, ()>(&ValueStateDescriptor::new("visits"))
        .expect("state");
    for k in 0..keys {
        state.update(&k, &(), v1(k)).expect("update");
    }
    let (handles, bytes, _) = checkpoint_into(&backend, 1, storage);
    println!("  snapshot of {} keys: {bytes} B", count_label(keys));
    handles
}

/// The median time of three restores of `handles` that register the state with
/// `register` and read one value; `check` then reads every value (untimed).
fn timed<F: StateBackend, R>(
    factory: &F,
    handles: &[KeyedStateHandle],
    storage: &MemoryCheckpointStorage,
    register: impl Fn(&F::Backend<u64>) -> R,
    check: impl Fn(&R),
) -> Duration {
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    let mut runs: Vec<Duration> = (0..3)
        .map(|_| {
            let start = Instant::now();
            let backend = factory
                .create_keyed_backend::<u64>(
                    params().restore(handles.to_vec(), Some(reader.clone())),
                )
                .expect("restore");
            let state = register(&backend);
            let took = start.elapsed();
            check(&state);
            took
        })
        .collect();
    runs.sort();
    runs[1]
}

fn run<F: StateBackend>(label: &str, factory: &F, keys: u64) {
    println!("{label}/{}:", count_label(keys));
    let storage = MemoryCheckpointStorage::new();
    let handles = written(factory, keys, &storage);
    let plain = timed(
        factory,
        &handles,
        &storage,
        |b| {
            let s = b
                .value_state::<VisitV1, ()>(&ValueStateDescriptor::new("visits"))
                .expect("register");
            s.get(&1, &()).expect("get");
            s
        },
        |s| {
            for k in 0..keys {
                assert_eq!(s.get(&k, &()).expect("get").expect("value").count, k);
            }
        },
    );
    let migrated = timed(
        factory,
        &handles,
        &storage,
        |b| {
            let s = b
                .value_state::<Visit, ()>(
                    &ValueStateDescriptor::new("visits").migrate_from(upgrade),
                )
                .expect("register with a migration");
            s.get(&1, &()).expect("get");
            s
        },
        |s| {
            for k in 0..keys {
                assert_eq!(s.get(&k, &()).expect("get"), Some(upgrade(v1(k))));
            }
        },
    );
    println!(
        "  restore as is {:.3} s, with migration {:.3} s ({:.2}x)",
        plain.as_secs_f64(),
        migrated.as_secs_f64(),
        migrated.as_secs_f64() / plain.as_secs_f64()
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let keys = std::env::var("CORNERSTONE_MIGRATION_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 1_000 });
    run("fs", &FsStateBackend::new(), keys);
    #[cfg(feature = "rocksdb")]
    {
        let dir = tempfile::tempdir().expect("a temp dir");
        let factory = cornerstone_backend_rocksdb::RocksDbStateBackend::new()
            .working_dir(dir.path())
            .incremental(true);
        run("rocksdb", &factory, keys);
    }
}
