//! Crafted handles that the Flink 2.3 fixtures do not hold: key-group streams, incremental
//! handles of the first form, changelog and file-merging handles, and the errors of
//! misplaced and unknown type codes and invalid values.
#![allow(clippy::unwrap_used)]

use cornerstone_backend_api::ErrorKind;

use super::tests::{
    W, finish, header, managed_keyed, one, operator, with_keyed, with_operator_state,
};
use super::*;

#[test]
fn key_groups_forms_and_nested_streams() {
    // KEY_GROUPS_HANDLE (3): no id; its stream a KEY_GROUPS_HANDLE stream around a file.
    let mut k = W::default();
    k.u8(3).range(4, 2).i64(0).i64(8);
    k.u8(3).range(4, 1).i64(0).file("file:/kg", 16);
    let m = read_flink_metadata(&with_keyed(6, &k)).unwrap();
    let KeyedStateHandle::KeyGroups(h) = managed_keyed(&m) else {
        panic!()
    };
    assert_eq!(h.key_groups, KeyGroupRange { start: 4, count: 2 });
    assert_eq!(
        (h.offsets.clone(), h.state_handle_id.clone()),
        (vec![0, 8], None)
    );
    let StreamStateHandle::KeyGroups(inner) = &h.stream else {
        panic!()
    };
    assert_eq!(inner.stream.type_name(), "FILE_STREAM_STATE_HANDLE");
    assert_eq!(m.referenced_files("d").unwrap()[0].path, "file:/kg");

    // An empty range is allowed; a range past i32::MAX is not.
    let mut k = W::default();
    k.u8(12).range(0, 0).byte_stream("b", b"").utf("id");
    let m = read_flink_metadata(&with_keyed(6, &k)).unwrap();
    assert_eq!(managed_keyed(&m).key_groups().end_inclusive(), None);
    let mut k = W::default();
    k.u8(12).range(i32::MAX, 2);
    let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
    assert_eq!(e.context("field"), Some("key group range"), "{e}");
}

#[test]
fn incremental_version_1_and_relative_paths() {
    let mut k = W::default();
    k.u8(5).i64(3).utf("backend").range(0, 128);
    k.u8(6).utf("meta-file").i64(10);
    k.i32(1).utf("000001.sst").u8(6).utf("sst-file").i64(20);
    k.i32(1).utf("CURRENT").byte_stream("c", b"x");
    let m = read_flink_metadata(&with_keyed(6, &k)).unwrap();
    let KeyedStateHandle::Incremental(h) = managed_keyed(&m) else {
        panic!()
    };
    assert_eq!((h.checkpoint_id, h.backend_id.as_str()), (3, "backend"));
    assert_eq!(
        (h.checkpointed_size, h.state_handle_id.clone()),
        (None, None)
    );
    let files = m.referenced_files("file:/chk-3/").unwrap();
    let listed: Vec<_> = files
        .iter()
        .map(|f| (f.path.as_str(), f.min_size, f.shared))
        .collect();
    assert_eq!(
        listed,
        [
            ("file:/chk-3/meta-file", 10, false),
            ("file:/chk-3/sst-file", 20, true)
        ]
    );
    assert_eq!(files[0].relative_path.as_deref(), Some("meta-file"));

    // A relative path that leaves the directory decodes, but is refused by the listing.
    let mut k = W::default();
    k.u8(5)
        .i64(3)
        .utf("backend")
        .range(0, 128)
        .u8(6)
        .utf("../other/x")
        .i64(1)
        .i32(0)
        .i32(0);
    let m = read_flink_metadata(&with_keyed(6, &k)).unwrap();
    let e = m.referenced_files("file:/chk-3").unwrap_err();
    assert!(e.to_string().contains("../other/x"), "{e}");
}

#[test]
fn changelog_handles() {
    let mut k = W::default();
    k.u8(14).range(0, 2).i64(100);
    // Materialized: a null handle (dropped) and key groups.
    k.i32(2)
        .u8(0)
        .u8(12)
        .range(0, 2)
        .i64(0)
        .i64(4)
        .file("file:/m", 8)
        .utf("mid");
    // Non-materialized: inline changes and changes in files (both forms).
    k.i32(3);
    k.u8(9)
        .range(0, 2)
        .i64(1)
        .i64(3)
        .i32(2)
        .i32(-1)
        .i32(1)
        .u8(7)
        .i32(1)
        .i32(0)
        .utf("bid");
    k.u8(10)
        .range(0, 2)
        .i32(1)
        .i64(5)
        .file("file:/log1", 50)
        .i64(45)
        .i64(45)
        .utf("f1");
    k.u8(13)
        .range(0, 2)
        .i32(1)
        .i64(0)
        .file("file:/log2", 9)
        .i64(9)
        .i64(9)
        .utf("f2")
        .utf("dstl");
    k.i64(77).i64(78).utf("cid");
    let m = read_flink_metadata(&with_keyed(6, &k)).unwrap();
    let KeyedStateHandle::ChangelogV2(h) = managed_keyed(&m) else {
        panic!()
    };
    assert_eq!((h.materialization_id, h.checkpoint_id), (77, Some(78)));
    assert_eq!(h.materialized.len(), 1);
    let codes: Vec<u8> = h
        .non_materialized
        .iter()
        .map(KeyedStateHandle::type_code)
        .collect();
    assert_eq!(codes, [9, 10, 13]);
    let KeyedStateHandle::ChangelogByteIncrement(b) = &h.non_materialized[0] else {
        panic!()
    };
    assert_eq!(
        (b.changes[0].key_group, b.changes[1].data.as_slice()),
        (-1, &[][..])
    );
    let KeyedStateHandle::ChangelogFileIncrementV2(f) = &h.non_materialized[2] else {
        panic!()
    };
    assert_eq!(f.storage_identifier.as_deref(), Some("dstl"));
    let paths: Vec<String> = m
        .referenced_files("d")
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(paths, ["file:/log1", "file:/log2", "file:/m"]);
    let json = serde_json::to_value(&m).unwrap();
    let keyed = &json["operators"][0]["subtasks"][0]["managed_keyed_state"];
    assert_eq!(keyed["type"], "CHANGELOG_HANDLE_V2");
    assert_eq!(
        keyed["non_materialized"][0]["changes"][0]["data"]["hex"],
        "07"
    );

    // Only changelog increments may be non-materialized.
    let mut k = W::default();
    k.u8(8).range(0, 2).i64(1).i32(0).i32(1);
    k.u8(12).range(0, 0).byte_stream("b", b"").utf("id");
    let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
    assert!(e.message().contains("KEY_GROUPS_HANDLE_V2 (12)"), "{e}");

    // Changelog handles nested beyond MAX_NESTING.
    let mut k = W::default();
    for _ in 0..=MAX_NESTING {
        k.u8(8).range(0, 1).i64(0).i32(1);
    }
    let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
    assert!(e.message().contains("nested deeper"), "{e}");
}

#[test]
fn file_merging_operator_state_and_segments() {
    let mut o = W::default();
    o.u8(17).i32(2);
    o.utf("a").u8(2).i32(1).i64(0);
    o.utf("b").u8(1).i32(0);
    o.utf("file:/taskowned").utf("file:/shared").u8(0);
    o.u8(15)
        .i64(100)
        .i64(50)
        .i32(1)
        .utf("file:/shared/merged")
        .utf("logical-1");
    let m = read_flink_metadata(&with_operator_state(6, &o)).unwrap();
    let h = m.operators[0].subtasks[0]
        .managed_operator_state
        .as_deref()
        .unwrap();
    assert_eq!(h.type_name(), "SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE");
    let modes: Vec<_> = h.states().iter().map(|s| s.mode).collect();
    assert_eq!(
        modes,
        [DistributionMode::Broadcast, DistributionMode::Union]
    );
    let StreamStateHandle::Segment {
        scope, start_pos, ..
    } = h.stream()
    else {
        panic!()
    };
    assert_eq!((*scope, *start_pos), (SegmentScope::Shared, 100));
    let files = m.referenced_files("d").unwrap();
    assert_eq!((files[0].min_size, files[0].shared), (150, true));

    // The empty form, with the empty segment: no file.
    let mut o = W::default();
    o.u8(17).i32(0).utf("t").utf("s").u8(1).u8(16);
    let m = read_flink_metadata(&with_operator_state(6, &o)).unwrap();
    let h = m.operators[0].subtasks[0]
        .managed_operator_state
        .as_deref()
        .unwrap();
    assert!(matches!(
        h,
        OperatorStateHandle::FileMerging { empty: true, .. }
    ));
    assert!(m.referenced_files("d").unwrap().is_empty());

    // A file-merging handle must hold a segment; modes are 0 to 2; names are unique.
    let mut o = W::default();
    o.u8(17).i32(0).utf("t").utf("s").u8(0).file("file:/f", 1);
    let e = read_flink_metadata(&with_operator_state(6, &o)).unwrap_err();
    assert!(e.message().contains("requires a segment"), "{e}");
    let mut o = W::default();
    o.u8(4).i32(1).utf("a").u8(3).i32(0).byte_stream("b", b"");
    let e = read_flink_metadata(&with_operator_state(6, &o)).unwrap_err();
    assert_eq!(e.context("value"), Some("3"), "{e}");
    let mut o = W::default();
    o.u8(4)
        .i32(2)
        .utf("a")
        .u8(0)
        .i32(0)
        .utf("a")
        .u8(0)
        .i32(0)
        .byte_stream("b", b"");
    let e = read_flink_metadata(&with_operator_state(6, &o)).unwrap_err();
    assert!(e.message().contains("appears twice"), "{e}");
    // A segment scope other than 0 or 1.
    let mut o = W::default();
    o.u8(17)
        .i32(0)
        .utf("t")
        .utf("s")
        .u8(0)
        .u8(15)
        .i64(0)
        .i64(0)
        .i32(2);
    let e = read_flink_metadata(&with_operator_state(6, &o)).unwrap_err();
    assert_eq!(e.context("field"), Some("segment scope"), "{e}");
}

#[test]
fn misplaced_and_unknown_type_codes_are_named_with_their_offset() {
    let base = with_keyed(6, &one(0)).len();
    // The keyed handle's code is 1 + 4 + 4 + 4 bytes after the subtask index.
    let keyed_at = {
        let mut w = header(6);
        w.i32(1);
        operator(&mut w, 6, 1);
        w.0.len() + 4 + 4 + 4
    };
    for (code, expected) in [
        (4u8, "type code 4 (PARTITIONABLE_OPERATOR_STATE_HANDLE)"),
        (15, "type code 15 (SEGMENT_FILE_HANDLE)"),
        (99, "unknown keyed state handle type code 99 (0x63)"),
        (0xff, "unknown keyed state handle type code 255 (0xff)"),
    ] {
        let bytes = with_keyed(6, &one(code));
        let e = read_flink_metadata(&bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert!(e.message().contains(expected), "{e}");
        assert_eq!(
            e.context("offset"),
            Some(keyed_at.to_string().as_str()),
            "{e}"
        );
        assert_eq!(e.context("type_code"), Some(code.to_string().as_str()));
        assert_eq!(bytes.len(), base);
    }
    // Stream positions: operator handle code 4 and an unknown code.
    for (code, expected) in [
        (4u8, "is not a stream state handle"),
        (42, "unknown stream"),
    ] {
        let mut k = W::default();
        k.u8(12).range(0, 0).u8(code);
        let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
        assert!(e.message().contains(expected), "{e}");
        assert_eq!(
            e.context("offset"),
            Some((keyed_at + 9).to_string().as_str())
        );
    }
    // Coordinator state must be inline.
    let mut w = header(6);
    w.i32(1)
        .utf("")
        .utf("")
        .bytes(&[0; 16])
        .i32(1)
        .i32(1)
        .file("file:/c", 1)
        .i32(0);
    let e = read_flink_metadata(&finish(w, 6)).unwrap_err();
    assert!(e.message().contains("coordinator state"), "{e}");
}

#[test]
fn invalid_values_are_refused() {
    // A negative checkpoint id.
    let mut w = W::default();
    w.i32(MAGIC as i32).i32(6).i64(-1);
    let e = read_flink_metadata(&w.0).unwrap_err();
    assert_eq!(e.context("field"), Some("checkpoint id"));
    // Subtask index at the parallelism, and twice the same index.
    for indices in [&[2][..], &[1, 1]] {
        let mut w = header(6);
        w.i32(1);
        operator(&mut w, 6, indices.len() as i32);
        for &i in indices {
            w.i32(-(i + 1));
        }
        let e = read_flink_metadata(&finish(w, 6)).unwrap_err();
        assert_eq!(e.context("field"), Some("subtask index"), "{e}");
    }
    // Parallelism above the max parallelism.
    let mut w = header(6);
    w.i32(1)
        .utf("")
        .utf("")
        .bytes(&[0; 16])
        .i32(3)
        .i32(2)
        .u8(0)
        .i32(0);
    let e = read_flink_metadata(&finish(w, 6)).unwrap_err();
    assert_eq!(e.context("field"), Some("parallelism"), "{e}");
    // A negative file size.
    let mut k = W::default();
    k.u8(12).range(0, 0).file("file:/x", -3);
    let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
    assert_eq!(e.context("value"), Some("-3"), "{e}");
    // A null delegate stream.
    let mut k = W::default();
    k.u8(12).range(0, 0).u8(0);
    let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
    assert!(e.message().contains("null handle"), "{e}");
    // A byte stream longer than the file.
    let mut k = W::default();
    k.u8(12).range(0, 0).u8(1).utf("n").i32(i32::MAX);
    let e = read_flink_metadata(&with_keyed(6, &k)).unwrap_err();
    assert_eq!(e.context("value"), Some("2147483647"), "{e}");
}
