//! Error classification of the checkpoint store (issue 13, defects 9 and 10): a crafted
//! `_metadata` whose sizes overflow when summed is corrupt, not a panic; a state file shorter
//! than its handle records is corrupt, not a transient failure; and the underlying error stays
//! reachable through `source()`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::io::Write;

use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    CheckpointId, CheckpointStreamFactory, ErrorKind, FileStateHandle, OperatorStateHandle,
    StateScope, StreamStateHandle, SubtaskState,
};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::inspect::{self, SnapshotStatus};
use cornerstone_checkpoint_store::metadata::{CheckpointMetadata, OperatorState, SnapshotKind};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, FORMAT_VERSION,
    MetadataCompression, codec,
};

/// An operator-state handle of a file of `size` bytes.
fn file_handle(path: &str, size: u64) -> OperatorStateHandle {
    OperatorStateHandle {
        states: BTreeMap::new(),
        stream: StreamStateHandle::File(FileStateHandle {
            path: path.to_owned(),
            scope: StateScope::Exclusive,
            size,
            crc32: 0,
        }),
    }
}

/// Checkpoint 1 of `job` with one operator whose subtask references two files of `size`
/// bytes each.
fn metadata_with_two_files_of(size: u64) -> CheckpointMetadata {
    let mut op = OperatorState::new("huge-uid", "Huge", 1, 128);
    op.subtasks.insert(
        0,
        SubtaskState {
            keyed: vec![],
            operator: vec![file_handle("chk-1/a", size), file_handle("chk-1/b", size)],
        },
    );
    CheckpointMetadata {
        format_version: FORMAT_VERSION,
        checkpoint_id: CheckpointId(1),
        job_id: "job".into(),
        kind: SnapshotKind::Checkpoint,
        trigger_timestamp_ms: 1,
        completed_timestamp_ms: 2,
        operators: vec![op],
    }
}

/// A CRC-valid `_metadata` whose two file sizes are `2^63` each, so that their sum overflows
/// u64. Encoding refuses such metadata, so it is encoded with sizes `2^63 - 1` (which sum to
/// `2^64 - 2`), the sizes are patched in the uncompressed body (bincode, big-endian, fixed
/// width) and the checksum is recomputed: what a crafted file looks like.
fn crafted_overflowing_metadata() -> Vec<u8> {
    let fits = u64::MAX / 2;
    let mut bytes =
        codec::encode(&metadata_with_two_files_of(fits), MetadataCompression::None).unwrap();
    let (from, to) = (fits.to_be_bytes(), (fits + 1).to_be_bytes());
    let body_end = bytes.len() - 4;
    let mut patched = 0;
    let mut at = 0;
    while at + 8 <= body_end {
        if bytes[at..at + 8] == from {
            bytes[at..at + 8].copy_from_slice(&to);
            patched += 1;
            at += 8;
        } else {
            at += 1;
        }
    }
    assert_eq!(patched, 2, "both sizes are found in the body");
    let crc = crc32fast::hash(&bytes[..body_end]);
    bytes[body_end..].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn encode_refuses_sizes_that_overflow() {
    let err = codec::encode(
        &metadata_with_two_files_of(u64::MAX / 2 + 1),
        MetadataCompression::None,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn decode_rejects_sizes_that_overflow_as_corrupted() {
    let err = codec::decode(&crafted_overflowing_metadata()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("overflow"), "says why: {msg}");
    assert_eq!(err.context("operator"), Some("huge-uid"), "{msg}");
}

#[test]
fn state_size_saturates_instead_of_panicking() {
    let m = metadata_with_two_files_of(u64::MAX / 2 + 1);
    assert_eq!(m.state_size(), u64::MAX);
    assert_eq!(m.operators[0].state_size(), u64::MAX);
    assert_eq!(m.operators[0].subtasks[&0].state_size(), u64::MAX);
}

#[test]
fn list_reports_overflowing_metadata_as_corrupt_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let chk = dir.path().join("job").join("chk-1");
    std::fs::create_dir_all(&chk).unwrap();
    std::fs::write(chk.join("_metadata"), crafted_overflowing_metadata()).unwrap();

    // Anything but a panic: the entry is reported corrupt (or the listing fails).
    match inspect::list(&store, "job/") {
        Ok(entries) => {
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert!(
                matches!(&entries[0].status, SnapshotStatus::Corrupt(why) if why.contains("overflow")),
                "{entries:?}"
            );
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}"),
    }
}

/// Commits checkpoint 1 of `job` with one 64 KiB state file; returns its handle.
fn commit_one_state_file(store: &CheckpointStore) -> StreamStateHandle {
    let job = CompletedCheckpointStore::open(store, "job", CheckpointConfig::default()).unwrap();
    let mut pending = job.begin_checkpoint(CheckpointId(1)).unwrap();
    let streams = pending.stream_factory();
    let mut out = streams.create(StateScope::Exclusive).unwrap();
    out.write_all(&vec![7u8; 64 * 1024]).unwrap();
    let handle = out.close().unwrap();
    assert!(
        handle.file().is_some(),
        "64 KiB is above the inline threshold"
    );
    let state = SubtaskState {
        keyed: vec![],
        operator: vec![OperatorStateHandle {
            states: BTreeMap::new(),
            stream: handle.clone(),
        }],
    };
    pending
        .add_subtask_state(&OperatorSpec::new("source-uid", "Source", 1, 128), 0, state)
        .unwrap();
    pending.commit().unwrap();
    handle
}

// Needs `StoreStateReader::open_file` (checkpoint-store/src/store.rs) to wrap the reader it
// returns in `error::MapReadErrors`, so that OpenDAL's errors during reads are classified.
#[test]
fn truncated_state_file_is_corrupted_not_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let handle = commit_one_state_file(&store);
    let file = handle.file().unwrap().clone();

    let on_disk = dir.path().join("job").join(&file.path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&on_disk)
        .unwrap();
    f.set_len(file.size / 2).unwrap();
    drop(f);

    let reader = store.reader("job/");
    let err = read_stream(&handle, Some(&reader)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
    assert!(!err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&file.path), "names the file: {msg}");

    // The OpenDAL error stays reachable through the source chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = false;
    while let Some(c) = cause {
        found |= c.downcast_ref::<opendal::Error>().is_some();
        cause = c.source();
    }
    assert!(found, "the OpenDAL error is in the source chain: {err:?}");
}

#[test]
fn missing_metadata_error_has_the_opendal_error_as_source() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let err = store.resolve("job/chk-9/_metadata").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let source = std::error::Error::source(&err).expect("a source");
    let opendal_err = source
        .downcast_ref::<opendal::Error>()
        .expect("the source is the OpenDAL error");
    assert_eq!(opendal_err.kind(), opendal::ErrorKind::NotFound);
}

/// Options come from the URL's query too; unknown ones are named, a contradiction with an
/// explicit option is refused, and a local path keeps its `?`.
#[test]
fn url_query_options_are_options() {
    let err = CheckpointStore::from_url("memory://?region=x", Vec::<(String, String)>::new())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.context("option"), Some("region"), "{err}");
    let err = CheckpointStore::from_url("memory://x?a=1", [("a", "2")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("given twice"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("what?ever");
    let (_, path) =
        CheckpointStore::open_location(odd.to_str().unwrap(), Vec::<(String, String)>::new())
            .unwrap();
    assert!(path.ends_with("what?ever"), "{path}");
}
