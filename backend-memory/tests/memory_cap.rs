//! The memory backend's `max_state_size`: an over-cap snapshot fails that checkpoint with a
//! clear error, and the backend keeps working.
#![allow(clippy::unwrap_used)]

use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::{
    CheckpointId, CheckpointOutputStream, CheckpointStreamFactory, CheckpointableBackend,
    ErrorKind, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, KeyedStateHandle, Result,
    StateBackend, StateReader, StateScope, StreamStateHandle, ValueStateDescriptor,
};
use cornerstone_backend_memory::{DEFAULT_MAX_STATE_SIZE, MemoryStateBackend};

fn params() -> KeyedBackendParams {
    KeyedBackendParams::new(128, KeyGroupRange::all(128))
}

#[test]
fn default_cap_is_five_mib() {
    assert_eq!(DEFAULT_MAX_STATE_SIZE, 5 * 1024 * 1024);
}

#[test]
fn over_cap_snapshot_fails_with_size_cap_and_hint_and_backend_keeps_working() {
    let factory = MemoryStateBackend::new().max_state_size(64 * 1024);
    let backend = factory.create_keyed_backend::<u64>(params()).unwrap();
    let state = backend
        .value_state::<String, ()>(&ValueStateDescriptor::new("blob"))
        .unwrap();
    for k in 0..100u64 {
        state.update(&k, &(), "x".repeat(1024)).unwrap();
    }
    let storage = MemoryCheckpointStorage::new();
    let err = backend
        .snapshot(CheckpointId(7))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(7)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    let msg = err.to_string();
    assert!(msg.contains("max_state_size=65536 bytes"), "{msg}");
    assert!(msg.contains("checkpoint=7"), "{msg}");
    assert!(msg.contains("filesystem backend"), "{msg}");
    assert!(msg.contains("size=at least "), "{msg}");
    assert!(storage.paths().is_empty(), "nothing may be left in storage");

    // Processing goes on, and a snapshot that fits succeeds.
    for k in 0..100u64 {
        if k >= 10 {
            state.clear(&k, &()).unwrap();
        }
    }
    assert_eq!(state.get(&3, &()).unwrap().unwrap().len(), 1024);
    let written = backend
        .snapshot(CheckpointId(8))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(8)))
        .unwrap();
    assert!(inline_len(&written.keyed[0]) <= 64 * 1024);
}

fn inline_len(handle: &cornerstone_backend_api::KeyedStateHandle) -> usize {
    match handle {
        cornerstone_backend_api::KeyedStateHandle::KeyGroups(h) => match &h.stream {
            StreamStateHandle::Inline(bytes) => bytes.len(),
            other => panic!("memory backend must write inline handles, got {other:?}"),
        },
        other => panic!("unexpected handle {other:?}"),
    }
}

#[test]
fn compression_fits_more_state_under_the_cap() {
    let plain = MemoryStateBackend::new().max_state_size(32 * 1024);
    let zstd = plain.compression(Compression::Zstd(3));
    let storage = MemoryCheckpointStorage::new();
    let mut results = Vec::new();
    for factory in [plain, zstd] {
        let backend = factory.create_keyed_backend::<u64>(params()).unwrap();
        let state = backend
            .value_state::<String, ()>(&ValueStateDescriptor::new("text"))
            .unwrap();
        for k in 0..200u64 {
            state.update(&k, &(), "abc".repeat(100)).unwrap();
        }
        results.push(
            backend
                .snapshot(CheckpointId(1))
                .unwrap()
                .write(&storage.stream_factory(CheckpointId(1)))
                .map(|s| s.keyed.len()),
        );
    }
    assert_eq!(
        results[0].as_ref().unwrap_err().kind(),
        ErrorKind::LimitExceeded
    );
    assert_eq!(*results[1].as_ref().unwrap(), 1);
}

/// A storage that keeps what the memory backend asks to keep inline in its own files, and
/// counts the requests: the stream factory decides where inline streams go, not the backend.
#[derive(Debug)]
struct InlineAsFiles {
    storage: MemoryCheckpointStorage,
    id: CheckpointId,
    caps: std::sync::Mutex<Vec<usize>>,
}

impl CheckpointStreamFactory for InlineAsFiles {
    fn checkpoint_id(&self) -> CheckpointId {
        self.id
    }
    fn create(&self, scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>> {
        self.storage.stream_factory(self.id).create(scope)
    }
    fn create_inline(&self, max_state_size: usize) -> Result<Box<dyn CheckpointOutputStream>> {
        self.caps.lock().unwrap().push(max_state_size);
        self.create(StateScope::Exclusive)
    }
}

#[test]
fn the_snapshot_goes_through_the_callers_stream_factory() {
    let factory = MemoryStateBackend::new().max_state_size(64 * 1024);
    let backend = factory.create_keyed_backend::<u64>(params()).unwrap();
    let state = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    for k in 0..1000u64 {
        state.update(&k, &(), k).unwrap();
    }
    let streams = InlineAsFiles {
        storage: MemoryCheckpointStorage::new(),
        id: CheckpointId(3),
        caps: Default::default(),
    };
    let written = backend
        .snapshot(CheckpointId(3))
        .unwrap()
        .write(&streams)
        .unwrap();
    assert_eq!(
        *streams.caps.lock().unwrap(),
        vec![64 * 1024],
        "one capped stream"
    );
    let [KeyedStateHandle::KeyGroups(h)] = written.keyed.as_slice() else {
        panic!("one key-groups handle, got {:?}", written.keyed)
    };
    assert!(
        matches!(h.stream, StreamStateHandle::File(_)),
        "where the factory put it"
    );
    assert_eq!(streams.storage.paths().len(), 1);

    // And it restores from there.
    let reader: std::sync::Arc<dyn StateReader> = std::sync::Arc::new(streams.storage.clone());
    let restored = factory
        .create_keyed_backend::<u64>(params().restore(written.keyed, Some(reader)))
        .unwrap();
    let state = restored
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    assert_eq!(state.get(&999, &()).unwrap(), Some(999));
}
