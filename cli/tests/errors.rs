//! The `cornerstone` tool's error line: one line, naming the cause once (a Cornerstone
//! error prints its source and also returns it from `source()`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use cornerstone_backend_api::CheckpointId;
use cornerstone_checkpoint_store::metadata::{CheckpointMetadata, OperatorState, SnapshotKind};
use cornerstone_checkpoint_store::{FORMAT_VERSION, MetadataCompression, codec};

/// A CRC-valid `_metadata` whose body claims to be zstd-compressed but is not: decoding fails
/// with an error that has a source (zstd's).
fn metadata_with_a_bad_zstd_body() -> Vec<u8> {
    let metadata = CheckpointMetadata {
        format_version: FORMAT_VERSION,
        checkpoint_id: CheckpointId(1),
        job_id: "job".into(),
        kind: SnapshotKind::Checkpoint,
        trigger_timestamp_ms: 1,
        completed_timestamp_ms: 2,
        operators: vec![OperatorState::new("u", "n", 1, 128)],
    };
    let mut bytes = codec::encode(&metadata, MetadataCompression::None).unwrap();
    bytes[6] = 1; // the zstd flag
    let end = bytes.len() - 4;
    let crc = crc32(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// CRC32 (IEEE), as `_metadata` uses (bitwise: this crate does not depend on crc32fast).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn an_error_with_a_source_names_the_cause_once() {
    let bytes = metadata_with_a_bad_zstd_body();
    let err = codec::decode(&bytes).unwrap_err();
    let cause = std::error::Error::source(&err)
        .expect("the decoding error has a source")
        .to_string();
    assert!(!cause.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("job").join("chk-1");
    std::fs::create_dir_all(&chk).unwrap();
    std::fs::write(chk.join("_metadata"), &bytes).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_cornerstone"))
        .args(["show", chk.to_str().unwrap()])
        .env_remove("AWS_REGION")
        .output()
        .unwrap();
    // Corrupt data: exit 5.
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    assert!(stderr.contains(err.message()), "{stderr}");
    assert_eq!(
        stderr.matches(cause.as_str()).count(),
        1,
        "the cause '{cause}' once: {stderr}"
    );
}
