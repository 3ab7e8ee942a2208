//! Snapshots of the filesystem backend written into the checkpoint store on the local
//! filesystem and restored from it: rescaling (4 → 6, 4 → 1), range reads, corruption
//! reports, and processing during the asynchronous phase.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;
use std::sync::Arc;

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::rescale::keyed_handles_for;
use cornerstone_backend_api::spi::CountingReader;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, ErrorKind, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackendExt, KeyedStateHandle, ListStateDescriptor, StateBackend, StateReader,
    StreamStateHandle, ValueStateDescriptor,
};
use cornerstone_backend_fs::{FsKeyedStateBackend, FsStateBackend};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, ClaimMode, CompletedCheckpoint, CompletedCheckpointStore,
};
use cornerstone_testkit::checkpoints::KeyedOperator;
use cornerstone_testkit::store::TestStore;

const MAX_P: u32 = 128;
const KEYS: u64 = 200_000;

fn subtask_range(parallelism: u32, index: u32) -> KeyGroupRange {
    KeyGroupRange::for_subtask(MAX_P, parallelism, index).unwrap()
}

/// Runs an operator at `parallelism`: every key of `0..KEYS` goes to the subtask owning its
/// key group, with value `key * 3` and list `[key, key + 1]`; checkpoint 1 of job `job` is
/// committed with one handle per subtask.
fn write_checkpoint(
    store: &CheckpointStore,
    job: &str,
    factory: FsStateBackend,
    parallelism: u32,
) -> CompletedCheckpoint {
    let checkpoints =
        CompletedCheckpointStore::open(store, job, CheckpointConfig::default()).unwrap();
    let mut pending = checkpoints.begin_checkpoint(CheckpointId(1)).unwrap();
    let counter = KeyedOperator::new("counter", "Counter", parallelism, MAX_P);
    counter.write(&mut pending, CheckpointId(1), &factory, |range, backend| {
        let values = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
            .unwrap();
        let lists = backend
            .list_state::<u64, ()>(&ListStateDescriptor::new("list"))
            .unwrap();
        for key in counter.keys_in(range, 0..KEYS) {
            values.update(&key, &(), key * 3).unwrap();
            lists.add_all(&key, &(), vec![key, key + 1]).unwrap();
        }
    });
    pending.commit().unwrap()
}

fn keyed_handles(point: &CompletedCheckpoint) -> Vec<KeyedStateHandle> {
    point.metadata.operators[0]
        .subtasks
        .values()
        .flat_map(|s| s.keyed.clone())
        .collect()
}

fn file_bytes(handles: &[KeyedStateHandle]) -> u64 {
    handles
        .iter()
        .flat_map(|h| h.streams())
        .map(StreamStateHandle::size)
        .sum()
}

/// Restores subtask `index` of `parallelism` from `point`; returns the backend and the bytes
/// it read.
fn restore(
    store: &CheckpointStore,
    point: &CompletedCheckpoint,
    parallelism: u32,
    index: u32,
) -> (FsKeyedStateBackend<u64>, u64) {
    let counting = Arc::new(CountingReader::new(Arc::new(store.reader(&point.base_dir))));
    let reader: Arc<dyn StateReader> = Arc::clone(&counting) as Arc<dyn StateReader>;
    let range = subtask_range(parallelism, index);
    let handles = keyed_handles_for(&keyed_handles(point), range);
    let backend = FsStateBackend::new()
        .create_keyed_backend::<u64>(
            KeyedBackendParams::new(MAX_P, range).restore(handles, Some(reader)),
        )
        .unwrap();
    let read = counting.bytes_read();
    (backend, read)
}

/// Restores the checkpoint at `parallelism` and checks that every key comes back exactly
/// once, with its value and list, in the subtask that owns it. Returns the bytes read.
fn restore_everything_once(
    store: &CheckpointStore,
    point: &CompletedCheckpoint,
    parallelism: u32,
) -> u64 {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let mut total_read = 0;
    for index in 0..parallelism {
        let (backend, read) = restore(store, point, parallelism, index);
        total_read += read;
        let range = backend.key_group_range();
        let values = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
            .unwrap();
        let lists = backend
            .list_state::<u64, ()>(&ListStateDescriptor::new("list"))
            .unwrap();
        for key in values.state_keys(&()).unwrap() {
            assert!(
                range.contains(key_group_for_key(&key, MAX_P).unwrap()),
                "subtask {index} of {parallelism} restored key {key} outside its range"
            );
            assert_eq!(values.get(&key, &()).unwrap(), Some(key * 3), "key {key}");
            assert_eq!(
                lists.get(&key, &()).unwrap(),
                vec![key, key + 1],
                "key {key}"
            );
            *seen.entry(key).or_default() += 1;
        }
        assert_eq!(
            lists.state_keys(&()).unwrap().len(),
            values.state_keys(&()).unwrap().len()
        );
    }
    assert_eq!(
        seen.len() as u64,
        KEYS,
        "every key restored at {parallelism}"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).take(5).collect();
    assert!(twice.is_empty(), "keys restored more than once: {twice:?}");
    total_read
}

/// Writes at parallelism 4 and restores at 6 and at 1 from `store`.
fn rescale_4_to_6_and_to_1(store: &CheckpointStore) {
    let point = write_checkpoint(store, "job-p4", FsStateBackend::new(), 4);
    let handles = keyed_handles(&point);
    assert_eq!(handles.len(), 4);
    assert!(
        handles
            .iter()
            .flat_map(|h| h.streams())
            .all(|s| matches!(s, StreamStateHandle::File(_))),
        "snapshots of 50k keys are files, not inline"
    );
    let size = file_bytes(&handles);

    // The same restores through the store's own resolution of the job directory.
    let resolved = store.resolve("job-p4").unwrap();
    assert_eq!(resolved.metadata_path, point.metadata_path);

    let read_6 = restore_everything_once(store, &resolved, 6);
    let read_1 = restore_everything_once(store, &resolved, 1);
    // Every key group is read once: the only overhead is the headers of the files that two
    // new subtasks share.
    assert!(
        read_6 <= size + size / 50,
        "restoring at 6 read {read_6} of {size} bytes"
    );
    assert!(
        read_1 <= size,
        "restoring at 1 read {read_1} of {size} bytes"
    );
}

#[test]
fn rescale_4_to_6_and_to_1_on_the_local_filesystem() {
    rescale_4_to_6_and_to_1(&TestStore::fs().store);
}

#[test]
fn rescale_4_to_6_and_to_1_on_opendal_memory() {
    rescale_4_to_6_and_to_1(&TestStore::memory().store);
}

#[test]
fn quarter_of_the_key_groups_reads_at_most_30_percent() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    for (job, factory) in [
        ("plain", FsStateBackend::new()),
        (
            "zstd",
            FsStateBackend::new()
                .compression(cornerstone_backend_api::spi::keyed_format::Compression::Zstd(3)),
        ),
    ] {
        let point = write_checkpoint(&store, job, factory, 1);
        let size = file_bytes(&keyed_handles(&point));
        for index in 0..4 {
            let (backend, read) = restore(&store, &point, 4, index);
            let values = backend
                .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
                .unwrap();
            assert!(values.state_keys(&()).unwrap().len() as u64 > KEYS / 5);
            assert!(
                read * 100 <= size * 30,
                "{job}: subtask {index} of 4 read {read} of {size} bytes ({}%)",
                read * 100 / size
            );
            assert!(read * 100 >= size * 20, "{job}: read {read} of {size}");
        }
    }
}

#[test]
fn corrupted_block_is_reported_with_file_and_key_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let point = write_checkpoint(&store, "job", FsStateBackend::new(), 1);
    let handles = keyed_handles(&point);
    let KeyedStateHandle::KeyGroups(handle) = &handles[0] else {
        panic!("a full snapshot")
    };
    let StreamStateHandle::File(file) = &handle.stream else {
        panic!("a file")
    };
    // Flip a byte in the middle of key group 64's block, on disk.
    let at = (handle.offsets[64] + handle.offsets[65]) / 2;
    let path = dir.path().join("job").join(&file.path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();

    let reader: Arc<dyn StateReader> = Arc::new(store.reader(&point.base_dir));
    let err = FsStateBackend::new()
        .create_keyed_backend::<u64>(
            KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P))
                .restore(handles.clone(), Some(Arc::clone(&reader))),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
    let message = err.to_string();
    assert!(message.contains(&file.path), "names the file: {message}");
    assert!(
        message.contains("key_group"),
        "names the key group: {message}"
    );
    assert!(message.contains("64"), "names key group 64: {message}");

    // The key groups of subtask 0 of 2 (0..=63) do not touch the damaged block.
    let range = subtask_range(2, 0);
    let backend = FsStateBackend::new()
        .create_keyed_backend::<u64>(
            KeyedBackendParams::new(MAX_P, range).restore(handles, Some(reader)),
        )
        .unwrap();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
        .unwrap();
    assert!(!values.state_keys(&()).unwrap().is_empty());
}

/// The asynchronous phase runs on another thread while this one keeps updating every key:
/// the checkpoint holds exactly the values of the synchronous phase.
#[test]
fn processing_goes_on_during_the_asynchronous_phase() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let checkpoints =
        CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let factory = FsStateBackend::new();
    let backend = factory
        .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)))
        .unwrap();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
        .unwrap();
    for key in 0..KEYS {
        values.update(&key, &(), key).unwrap();
    }
    let mut pending = checkpoints.begin_checkpoint(CheckpointId(1)).unwrap();
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    let streams = pending.stream_factory();
    let writer = std::thread::spawn(move || snapshot.write(&*streams));
    let mut rounds = 0u64;
    while !writer.is_finished() || rounds < 2 {
        rounds += 1;
        for key in 0..KEYS {
            values.update(&key, &(), key + rounds * KEYS).unwrap();
            if key % 1024 == 0 && rounds > 2 && writer.is_finished() {
                break;
            }
        }
        for key in 0..KEYS / 10 {
            values.clear(&(key * 10), &()).unwrap();
        }
    }
    let state = writer.join().unwrap().unwrap();
    pending
        .add_subtask_state(&OperatorSpec::new("counter", "Counter", 1, MAX_P), 0, state)
        .unwrap();
    let point = pending.commit().unwrap();

    let reader = checkpoints.restore(&point, ClaimMode::Claim).unwrap();
    let restored = factory
        .create_keyed_backend::<u64>(
            KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P))
                .restore(keyed_handles(&point), Some(Arc::new(reader))),
        )
        .unwrap();
    let restored_values = restored
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
        .unwrap();
    assert_eq!(restored_values.state_keys(&()).unwrap().len() as u64, KEYS);
    for key in 0..KEYS {
        assert_eq!(
            restored_values.get(&key, &()).unwrap(),
            Some(key),
            "key {key}"
        );
    }
}
