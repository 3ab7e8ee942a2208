//! Fuzzes the reader of Apache Flink's own `_metadata` files
//! (`cornerstone_checkpoint_store::flink`): the input is the file. Whatever the bytes, the
//! reader returns a value or an error that names an offset, never panics, and what decodes
//! keeps the invariants the reader promises; the listing of referenced files never panics.
#![no_main]

use cornerstone_checkpoint_store::flink::{self, KeyedStateHandle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let metadata = match flink::read_flink_metadata(data) {
        Ok(m) => m,
        Err(e) => {
            assert!(e.context("offset").is_some(), "{e}");
            return;
        }
    };
    assert!(flink::is_flink_metadata(data));
    assert!(flink::SUPPORTED_VERSIONS.contains(&metadata.version));
    match &metadata.properties {
        Some(p) => assert_eq!(p.offset + p.len, data.len() as u64),
        None => assert!(metadata.trailing_bytes <= data.len() as u64),
    }
    for op in &metadata.operators {
        assert!(op.parallelism <= op.max_parallelism);
        assert!(!op.fully_finished || op.subtasks.is_empty());
        for s in &op.subtasks {
            assert!(s.index < op.parallelism);
            for k in [&s.managed_keyed_state, &s.raw_keyed_state] {
                if let Some(
                    KeyedStateHandle::KeyGroups(h)
                    | KeyedStateHandle::KeyGroupsV2(h)
                    | KeyedStateHandle::SavepointKeyGroups(h),
                ) = k.as_deref()
                {
                    assert_eq!(h.offsets.len(), h.key_groups.count as usize);
                }
            }
        }
    }
    let _ = metadata.referenced_files("file:/fuzz/chk-1");
    // The same bytes decode to the same value.
    assert_eq!(flink::read_flink_metadata(data).ok(), Some(metadata));
});
