//! The asynchronous phase streams: writing a snapshot into the checkpoint store allocates a
//! bounded amount of memory (a block and an upload chunk), not a copy of the snapshot. Its
//! own test binary, because it counts every allocation of the process.

#![allow(clippy::unwrap_used)]

use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    StateBackend, StreamStateHandle, ValueStateDescriptor,
};
use cornerstone_backend_fs::FsStateBackend;
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, CompletedCheckpointStore};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

const KEYS: u64 = 1_000_000;

#[test]
fn writing_a_snapshot_allocates_a_bounded_amount_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let checkpoints =
        CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let backend = FsStateBackend::new()
        .create_keyed_backend::<u64>(KeyedBackendParams::new(128, KeyGroupRange::all(128)))
        .unwrap();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
        .unwrap();
    for key in 0..KEYS {
        values.update(&key, &(), key).unwrap();
    }
    let mut pending = checkpoints.begin_checkpoint(CheckpointId(1)).unwrap();
    let streams = pending.stream_factory();
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();

    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let state = snapshot.write(&*streams).unwrap();
    let peak = ALLOCATOR.peak_usage().saturating_sub(before);

    let size: u64 = state
        .keyed
        .iter()
        .flat_map(|h| h.streams())
        .map(StreamStateHandle::size)
        .sum();
    eprintln!("snapshot of {size} bytes written with a peak of {peak} bytes allocated");
    assert!(size > 15_000_000, "the snapshot is {size} bytes");
    // A 256 KiB block (and its encoding), a 1 MiB upload chunk, the writer's buffers.
    assert!(
        peak < 8 * 1024 * 1024,
        "writing a snapshot of {size} bytes allocated up to {peak} bytes at once"
    );
    pending
        .add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state)
        .unwrap();
    pending.commit().unwrap();
}
