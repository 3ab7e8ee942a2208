//! The asynchronous phase of a large fs snapshot writes its key groups in parts, on several
//! threads, one file each; the parts restore like any handles, at any parallelism.

use std::sync::Arc;

use cornerstone_backend_api::rescale::keyed_handles_for;
use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    KeyedStateHandle, ListStateDescriptor, StateBackend, StateReader, SubtaskState,
    ValueStateDescriptor,
};
use cornerstone_backend_fs::FsStateBackend;

const MAX_P: u32 = 128;
/// Enough entries for three parts of at least 256 Ki entries.
const KEYS: u64 = 800_000;

/// A snapshot, written with `threads` threads, of `ValueState<u64>` `"v"` holding
/// `value(k)` for the keys `0..keys`: its storage and handles.
fn values_snapshot(
    threads: usize,
    keys: u64,
    value: impl Fn(u64) -> u64,
) -> (MemoryCheckpointStorage, SubtaskState) {
    let backend = FsStateBackend::new()
        .io_threads(threads)
        .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)))
        .expect("create the backend");
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .expect("register the state");
    for k in 0..keys {
        values.update(&k, &(), value(k)).expect("update");
    }
    let storage = MemoryCheckpointStorage::new();
    let state = backend
        .snapshot(CheckpointId(1))
        .expect("synchronous phase")
        .write(&storage.stream_factory(CheckpointId(1)))
        .expect("asynchronous phase");
    (storage, state)
}

fn ranges(handles: &[KeyedStateHandle]) -> Vec<KeyGroupRange> {
    handles
        .iter()
        .map(KeyedStateHandle::key_group_range)
        .collect()
}

#[test]
fn a_large_snapshot_is_written_in_parts_that_restore_at_any_parallelism() {
    let factory = FsStateBackend::new().io_threads(3);
    let backend = factory
        .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)))
        .unwrap();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let lists = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    for k in 0..KEYS {
        values.update(&k, &(), k * 3).unwrap();
    }
    for k in (0..KEYS).step_by(1000) {
        lists.update(&k, &(), vec![k, k + 1]).unwrap();
    }
    let storage = MemoryCheckpointStorage::new();
    let state = backend
        .snapshot(CheckpointId(1))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(1)))
        .unwrap();

    // Three contiguous parts covering the backend's key groups, one file each.
    let parts = ranges(&state.keyed);
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(parts[0].first(), 0);
    assert_eq!(parts[2].last(), MAX_P - 1);
    for pair in parts.windows(2) {
        assert_eq!(pair[0].last() + 1, pair[1].first(), "{parts:?}");
    }
    assert_eq!(storage.paths().len(), 3);

    // Restored by 2 subtasks: each reads the parts that overlap its key groups.
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    let mut restored = 0;
    for subtask in 0..2 {
        let range = KeyGroupRange::for_subtask(MAX_P, 2, subtask).unwrap();
        let params = KeyedBackendParams::new(MAX_P, range)
            .restore(keyed_handles_for(&state.keyed, range), Some(reader.clone()));
        let backend = factory.create_keyed_backend::<u64>(params).unwrap();
        let values = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
            .unwrap();
        let lists = backend
            .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
            .unwrap();
        let keys = values.state_keys(&()).unwrap();
        for k in &keys {
            assert_eq!(values.get(k, &()).unwrap(), Some(k * 3), "key {k}");
            let expected = if k % 1000 == 0 {
                vec![*k, k + 1]
            } else {
                vec![]
            };
            assert_eq!(lists.get(k, &()).unwrap(), expected, "key {k}");
        }
        restored += keys.len() as u64;
    }
    assert_eq!(restored, KEYS);
}

#[test]
fn one_thread_or_a_small_snapshot_is_one_file() {
    for (threads, keys) in [(1, KEYS), (4, 1000)] {
        let (_, state) = values_snapshot(threads, keys, |k| k);
        assert_eq!(
            ranges(&state.keyed),
            [KeyGroupRange::all(MAX_P)],
            "{threads} threads, {keys} keys"
        );
    }
}

#[test]
fn a_large_file_is_restored_by_several_threads_at_any_parallelism() {
    // One file of about 16 MB, written by one thread.
    let (storage, state) = values_snapshot(1, KEYS, |k| k ^ 0xabcd);
    assert_eq!(state.keyed.len(), 1);

    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    for parallelism in [1, 3] {
        let mut restored = 0;
        for subtask in 0..parallelism {
            let range = KeyGroupRange::for_subtask(MAX_P, parallelism, subtask).unwrap();
            let params = KeyedBackendParams::new(MAX_P, range)
                .restore(keyed_handles_for(&state.keyed, range), Some(reader.clone()));
            let backend = FsStateBackend::new()
                .io_threads(4)
                .create_keyed_backend::<u64>(params)
                .unwrap();
            let values = backend
                .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
                .unwrap();
            let keys = values.state_keys(&()).unwrap();
            for k in &keys {
                assert_eq!(values.get(k, &()).unwrap(), Some(k ^ 0xabcd), "key {k}");
            }
            restored += keys.len() as u64;
        }
        assert_eq!(restored, KEYS, "parallelism {parallelism}");
    }
}
