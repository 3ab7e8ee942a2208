//! Committed `_metadata` fixtures: decoded, regenerated deterministically, and every
//! single-byte flip detected.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use cornerstone_backend_api::{
    CheckpointId, Distribution, ErrorKind, FileStateHandle, IncrementalStateHandle, KeyGroupRange,
    KeyGroupsStateHandle, KeyedStateHandle, NamedStateFile, OperatorStateHandle, OperatorStateMeta,
    StateScope, StreamStateHandle, SubtaskState,
};
use cornerstone_checkpoint_store::codec::{self, MetadataCompression};
use cornerstone_checkpoint_store::{CheckpointMetadata, OperatorState, SnapshotKind};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

fn file(path: &str, scope: StateScope, size: u64, crc32: u32) -> StreamStateHandle {
    StreamStateHandle::File(FileStateHandle {
        path: path.into(),
        scope,
        size,
        crc32,
    })
}

/// The content of the v1 fixtures: every handle kind.
fn fixture_v1() -> CheckpointMetadata {
    let mut keyed = OperatorState::new("keyed-uid", "Keyed Aggregation", 2, 128);
    for i in 0..2u32 {
        let range = KeyGroupRange::for_subtask(128, 2, i).unwrap();
        keyed.subtasks.insert(
            i,
            SubtaskState {
                keyed: vec![KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
                    range,
                    offsets: (0..64u64).map(|g| g * 10).collect(),
                    stream: file(
                        &format!("chk-42/keyed-{i}"),
                        StateScope::Exclusive,
                        1000,
                        0xdead_beef + i,
                    ),
                })],
                operator: vec![],
            },
        );
    }
    let mut rocks = OperatorState::new("rocks-uid", "Window", 1, 16);
    rocks.subtasks.insert(
        0,
        SubtaskState {
            keyed: vec![KeyedStateHandle::Incremental(IncrementalStateHandle {
                range: KeyGroupRange::all(16),
                checkpoint_id: CheckpointId(42),
                backend_id: "backend-7".into(),
                shared: vec![NamedStateFile {
                    local_name: "000042.sst".into(),
                    handle: file("shared/sst-1", StateScope::Shared, 4096, 7),
                }],
                private: vec![NamedStateFile {
                    local_name: "CURRENT".into(),
                    handle: StreamStateHandle::Inline(b"MANIFEST-1\n".to_vec()),
                }],
                meta: StreamStateHandle::Inline(vec![1, 2, 3]),
            })],
            operator: vec![],
        },
    );
    let mut source = OperatorState::new("source-uid", "Kafka Source", 1, 128);
    source.subtasks.insert(
        0,
        SubtaskState {
            keyed: vec![],
            operator: vec![OperatorStateHandle {
                states: BTreeMap::from([(
                    "offsets".to_string(),
                    OperatorStateMeta {
                        mode: Distribution::Union,
                        element_type: "(u64, u64)".into(),
                        offsets: vec![0, 16],
                    },
                )]),
                stream: file("taskowned/offsets", StateScope::TaskOwned, 32, 99),
            }],
        },
    );
    CheckpointMetadata {
        format_version: 1,
        checkpoint_id: CheckpointId(42),
        job_id: "0123456789abcdef".into(),
        kind: SnapshotKind::Checkpoint,
        trigger_timestamp_ms: 1_700_000_000_000,
        completed_timestamp_ms: 1_700_000_000_250,
        operators: vec![keyed, rocks, source],
    }
}

#[test]
fn v1_fixtures_decode() {
    for name in ["metadata-v1.csmd", "metadata-v1-zstd.csmd"] {
        let bytes = std::fs::read(testdata(name)).unwrap();
        assert_eq!(codec::decode(&bytes).unwrap(), fixture_v1(), "{name}");
    }
}

#[test]
fn v1_fixture_regenerates_identically() {
    assert_eq!(
        cornerstone_checkpoint_store::FORMAT_VERSION,
        1,
        "a new _metadata version needs its own fixture; keep decoding metadata-v1*.csmd"
    );
    let plain = codec::encode(&fixture_v1(), MetadataCompression::None).unwrap();
    let zstd = codec::encode(&fixture_v1(), MetadataCompression::Zstd).unwrap();
    if std::env::var_os("CORNERSTONE_REGENERATE_FIXTURES").is_some() {
        std::fs::write(testdata("metadata-v1.csmd"), &plain).unwrap();
        std::fs::write(testdata("metadata-v1-zstd.csmd"), &zstd).unwrap();
    }
    // The uncompressed encoding is byte-exact; zstd output may differ across zstd releases,
    // so the compressed fixture is only required to decode (above).
    assert_eq!(
        plain,
        std::fs::read(testdata("metadata-v1.csmd")).unwrap(),
        "the v1 encoding changed: bump FORMAT_VERSION"
    );
}

#[test]
fn every_single_byte_flip_is_detected() {
    for name in ["metadata-v1.csmd", "metadata-v1-zstd.csmd"] {
        let bytes = std::fs::read(testdata(name)).unwrap();
        let mut checked = 0;
        for i in 0..bytes.len() {
            for x in 1..=255u8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= x;
                let e = codec::decode(&flipped).expect_err("a flipped byte must be detected");
                assert!(
                    matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported),
                    "{name} byte {i}: {e}"
                );
                checked += 1;
            }
        }
        // Truncations too.
        for len in 0..bytes.len() {
            assert!(
                codec::decode(&bytes[..len]).is_err(),
                "{name} truncated to {len}"
            );
        }
        assert_eq!(checked, bytes.len() * 255);
    }
}
