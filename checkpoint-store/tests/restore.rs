//! Backend restore through the checkpoint store on every storage (fs, memory, S3): keyed
//! state of the heap backend in streams mode (what the fs backend does), written at
//! parallelism 4 and restored at 6 and 1, with the bytes read from storage counted to show
//! that a rescaled restore reads only the byte ranges of the key groups it owns.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::rescale::keyed_handles_for;
use cornerstone_backend_api::spi::CountingReader;
use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    KeyedStateHandle, StateBackend, StateReader, ValueStateDescriptor,
};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, ClaimMode, CompletedCheckpointStore,
};
use cornerstone_testkit::checkpoints::{HeapFactory, KeyedOperator, put_values};
use cornerstone_testkit::storage_tests;
use cornerstone_testkit::store::TestStore;

const MAX_PARALLELISM: u32 = 128;

/// The heap backend in streams mode (what the fs backend does).
fn heap(compression: Compression) -> HeapFactory {
    HeapFactory::streams("fs", compression)
}

fn value_of(k: u64) -> String {
    format!("value-{k:08}-{}", "x".repeat((k % 48) as usize))
}

/// Writes `keys` keys of value state `v` at `parallelism` as checkpoint `id` of job `job`;
/// returns the size of the snapshot files and the time the asynchronous phase and the
/// commit took.
fn write_job(
    store: &CheckpointStore,
    job: &str,
    parallelism: u32,
    keys: u64,
    compression: Compression,
) -> (u64, std::time::Duration) {
    let completed =
        CompletedCheckpointStore::open(store, job, CheckpointConfig::default()).unwrap();
    let mut pending = completed.begin_checkpoint(CheckpointId(1)).unwrap();
    let keyed = KeyedOperator::new("keyed", "Keyed", parallelism, MAX_PARALLELISM);
    let mut snapshots = Vec::new();
    for (subtask, backend) in (0..).zip(keyed.open(&heap(compression))) {
        put_values(
            &backend,
            "v",
            keyed.keys_in(keyed.range(subtask), 0..keys),
            value_of,
        );
        snapshots.push(backend.snapshot(CheckpointId(1)).unwrap());
    }
    let started = Instant::now();
    keyed.add_snapshots(&mut pending, snapshots);
    let done = pending.commit().unwrap();
    let elapsed = started.elapsed();
    let size = done.metadata.files().iter().map(|f| f.size).sum();
    (size, elapsed)
}

/// Restores `job` at `parallelism`, checks every key, and returns the bytes each subtask read
/// from storage and the total time.
fn restore_job(
    store: &CheckpointStore,
    job: &str,
    parallelism: u32,
    keys: u64,
    compression: Compression,
) -> (Vec<u64>, std::time::Duration) {
    let started = Instant::now();
    // The restored job runs under a new job id (NoClaim: the old files stay the old job's).
    let completed = CompletedCheckpointStore::open(
        store,
        &format!("{job}-restored-p{parallelism}"),
        CheckpointConfig::default(),
    )
    .unwrap();
    let point = store.resolve(job).unwrap();
    let reader: Arc<dyn StateReader> =
        Arc::new(completed.restore(&point, ClaimMode::NoClaim).unwrap());
    let op = point.metadata.operator("keyed").unwrap();
    let handles: Vec<&KeyedStateHandle> = op.subtasks.values().flat_map(|s| &s.keyed).collect();
    let mut read = Vec::new();
    for subtask in 0..parallelism {
        let range = KeyGroupRange::for_subtask(MAX_PARALLELISM, parallelism, subtask).unwrap();
        let counting = Arc::new(CountingReader::new(Arc::clone(&reader)));
        let params = KeyedBackendParams::new(MAX_PARALLELISM, range).restore(
            keyed_handles_for(handles.iter().copied(), range),
            Some(Arc::clone(&counting) as Arc<dyn StateReader>),
        );
        let backend = heap(compression)
            .create_keyed_backend::<u64>(params)
            .unwrap();
        let v = backend
            .value_state::<String, ()>(&ValueStateDescriptor::new("v"))
            .unwrap();
        let mut owned = 0u64;
        for k in 0..keys {
            if range.contains(key_group_for_key(&k, MAX_PARALLELISM).unwrap()) {
                assert_eq!(v.get(&k, &()).unwrap(), Some(value_of(k)), "key {k}");
                owned += 1;
            }
        }
        assert_eq!(v.state_keys(&()).unwrap().len() as u64, owned);
        read.push(counting.bytes_read());
    }
    (read, started.elapsed())
}

fn rescaled_restore_reads_only_the_owned_key_groups(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let keys = 20_000;
    let (total, _) = write_job(&store, "job", 4, keys, Compression::None);
    assert!(total > 500_000, "{name}: {total} bytes of snapshot files");

    // Parallelism 6: each subtask owns a sixth of the key groups and reads only their ranges.
    let (read, _) = restore_job(&store, "job", 6, keys, Compression::None);
    for (subtask, bytes) in read.iter().enumerate() {
        assert!(
            *bytes * 100 <= total * 30,
            "{name}: subtask {subtask} of 6 read {bytes} of {total} bytes (> 30%)"
        );
        assert!(
            *bytes * 100 >= total * 10,
            "{name}: subtask {subtask}: {bytes}"
        );
    }
    let sum: u64 = read.iter().sum();
    assert!(
        sum >= total && sum * 100 <= total * 105,
        "{name}: the 6 subtasks read {sum} bytes of {total} ({read:?})"
    );

    // Parallelism 1: everything, once.
    let (read, _) = restore_job(&store, "job", 1, keys, Compression::None);
    assert!(
        read[0] <= total && read[0] * 100 >= total * 99,
        "{name}: one subtask read {} of {total} bytes",
        read[0]
    );

    // Compressed blocks restore the same way.
    let (ztotal, _) = write_job(&store, "zjob", 4, keys, Compression::Zstd(3));
    assert!(ztotal < total, "{name}: zstd {ztotal} vs {total}");
    let (read, _) = restore_job(&store, "zjob", 6, keys, Compression::Zstd(3));
    assert!(
        read.iter().all(|b| *b * 100 <= ztotal * 30),
        "{name}: {read:?}"
    );
}

storage_tests!(rescaled_restore_reads_only_the_owned_key_groups);

/// Checkpoint write and restore throughput of the same state on local disk and on S3
/// (SeaweedFS on 127.0.0.1). Run by hand, in release mode:
/// `cargo test --release -p cornerstone-checkpoint-store --all-features --test restore -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: prints MB/s; run by hand"]
fn throughput_local_disk_vs_s3() {
    let keys: u64 = std::env::var("CORNERSTONE_THROUGHPUT_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500_000);
    let fs = TestStore::fs();
    let mut storages = vec![fs];
    storages.extend(TestStore::s3("restore::throughput"));
    for s in &storages {
        for parallelism in [1u32, 4] {
            let job = format!("job-p{parallelism}");
            let (size, write) = write_job(&s.store, &job, parallelism, keys, Compression::None);
            let (read, restore) = restore_job(&s.store, &job, parallelism, keys, Compression::None);
            // The storage alone: read every snapshot file whole.
            let point = s.store.resolve(&job).unwrap();
            let reader = s.store.reader(&point.base_dir);
            let started = Instant::now();
            let mut raw = 0usize;
            for stream in point.metadata.streams() {
                raw += read_stream(stream, Some(&reader)).unwrap().len();
            }
            let raw_read = started.elapsed();
            assert_eq!(raw as u64, size);
            let mb = size as f64 / 1e6;
            println!(
                "{:>3} p={parallelism}: {mb:.1} MB state ({keys} keys): write {:.1} MB/s ({:.2} s), \
                 restore {:.1} MB/s ({:.2} s, {} MB read, incl. checking every key), \
                 files read back {:.1} MB/s",
                s.name,
                mb / write.as_secs_f64(),
                write.as_secs_f64(),
                mb / restore.as_secs_f64(),
                restore.as_secs_f64(),
                read.iter().sum::<u64>() / 1_000_000,
                mb / raw_read.as_secs_f64(),
            );
        }
    }
}
