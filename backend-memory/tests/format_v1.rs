//! Keyed snapshots in version 1 of the `CSKG` format (fixed-width record lengths), written
//! by the release that introduced it, still restore. The fixtures in the repository's
//! `testdata/` hold the encoded `Vec<KeyedStateHandle>` of one inline snapshot of 1,000
//! keys: `ValueState<u64>` "value" = key × 7, `ListState<String>` "list" in namespace
//! `key % 3` = [a{key}, b{key}], `MapState<u32, u64>` "map" = {key % 10: key + 1};
//! uncompressed and zstd blocks.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use cornerstone_backend_api::StateBackend;
use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::{
    CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    KeyedStateHandle, ListStateDescriptor, MapStateDescriptor, StreamStateHandle,
    ValueStateDescriptor,
};
use cornerstone_backend_memory::MemoryStateBackend;

fn fixture(name: &str) -> Vec<KeyedStateHandle> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name);
    codec::decode(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn version_1_snapshots_restore() {
    for name in ["keyed-v1.bin", "keyed-v1-zstd.bin"] {
        let handles = fixture(name);
        let KeyedStateHandle::KeyGroups(h) = &handles[0] else {
            panic!("{name}: a full snapshot")
        };
        let StreamStateHandle::Inline(bytes) = &h.stream else {
            panic!("{name}: inline")
        };
        assert_eq!(&bytes[0..6], b"CSKG\0\x01", "{name} is a version 1 stream");

        for range in [KeyGroupRange::all(128), KeyGroupRange::new(32, 95)] {
            let backend = MemoryStateBackend::new()
                .create_keyed_backend::<u64>(
                    KeyedBackendParams::new(128, range).restore(handles.clone(), None),
                )
                .unwrap();
            let value = backend
                .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
                .unwrap();
            let list = backend
                .list_state::<String, u32>(&ListStateDescriptor::new("list"))
                .unwrap();
            let map = backend
                .map_state::<u32, u64, ()>(&MapStateDescriptor::new("map"))
                .unwrap();
            let mut keys = 0;
            for k in 0..1000u64 {
                let kg = cornerstone_backend_api::keygroup::key_group_for_key(&k, 128).unwrap();
                if !range.contains(kg) {
                    continue;
                }
                keys += 1;
                assert_eq!(value.get(&k, &()).unwrap(), Some(k * 7), "{name} key {k}");
                assert_eq!(
                    list.get(&k, &((k % 3) as u32)).unwrap(),
                    vec![format!("a{k}"), format!("b{k}")],
                    "{name} key {k}"
                );
                assert_eq!(
                    map.get(&k, &(), &((k % 10) as u32)).unwrap(),
                    Some(k + 1),
                    "{name} key {k}"
                );
            }
            assert_eq!(value.state_keys(&()).unwrap().len(), keys, "{name}");
            assert_eq!(backend.key_group_range(), range);
        }
    }
}

#[test]
fn new_snapshots_are_version_2_and_smaller() {
    let backend = MemoryStateBackend::new()
        .create_keyed_backend::<u64>(KeyedBackendParams::new(128, KeyGroupRange::all(128)))
        .unwrap();
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
        .unwrap();
    for k in 0..1000u64 {
        value.update(&k, &(), k * 7).unwrap();
    }
    let storage = cornerstone_backend_api::spi::MemoryCheckpointStorage::new();
    let id = cornerstone_backend_api::CheckpointId(1);
    let state = backend
        .snapshot(id)
        .unwrap()
        .write(&storage.stream_factory(id))
        .unwrap();
    let KeyedStateHandle::KeyGroups(h) = &state.keyed[0] else {
        panic!("a full snapshot")
    };
    let StreamStateHandle::Inline(bytes) = &h.stream else {
        panic!("inline")
    };
    assert_eq!(&bytes[0..6], b"CSKG\0\x02");
    // 1,000 records of 16 payload bytes and 4 bytes of varints, 111 non-empty key groups
    // with a 17-byte block header, and the header.
    let records: usize = 1000 * 20;
    assert!(
        bytes.len() < records + 128 * 17 + 512,
        "{} bytes for {records} bytes of records",
        bytes.len()
    );
}
