//! Crafted `_metadata` files for what the Flink 2.3 fixtures do not hold: versions 3, 4, 5
//! and 7, channel state, finished operators and subtasks (the handles: `tests_handles`), and
//! the writer of such files.
#![allow(clippy::unwrap_used)]

use super::*;

/// Writes what Java's `DataOutputStream` would.
#[derive(Default)]
pub(super) struct W(pub(super) Vec<u8>);

impl W {
    pub(super) fn u8(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    pub(super) fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(super) fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// `writeUTF` of an ASCII string.
    pub(super) fn utf(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub(super) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub(super) fn byte_stream(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.u8(1).utf(name).i32(data.len() as i32).bytes(data)
    }
    pub(super) fn file(&mut self, path: &str, size: i64) -> &mut Self {
        self.u8(2).i64(size).utf(path)
    }
    pub(super) fn range(&mut self, start: i32, count: i32) -> &mut Self {
        self.i32(start).i32(count)
    }
}

/// The header up to the operator count (checkpoint id 9, no master states).
pub(super) fn header(version: i32) -> W {
    let mut w = W::default();
    w.i32(MAGIC as i32).i32(version).i64(9).i32(0);
    w
}

/// An operator with parallelism 2, no coordinator state and `subtasks` entries.
pub(super) fn operator(w: &mut W, version: i32, subtasks: i32) {
    if version >= 5 {
        w.utf("Map").utf("map-uid");
    }
    w.bytes(&[0xab; 16]).i32(2).i32(128).u8(0).i32(subtasks);
}

/// The end of a file: the properties of version 4 and later.
pub(super) fn finish(mut w: W, version: i32) -> Vec<u8> {
    if version >= 4 {
        w.bytes(&[0xac, 0xed, 0x00, 0x05, 0x73, 0x72]);
    }
    w.0
}

/// A file whose only subtask (index 0) has `keyed` as managed keyed state.
pub(super) fn with_keyed(version: i32, keyed: &W) -> Vec<u8> {
    let mut w = header(version);
    w.i32(1);
    operator(&mut w, version, 1);
    w.i32(0).i32(0).i32(0).bytes(&keyed.0).u8(0).i32(0).i32(0);
    if version >= 7 {
        w.u8(0);
    }
    finish(w, version)
}

/// A file whose only subtask (index 0) has `op` as managed operator state.
pub(super) fn with_operator_state(version: i32, op: &W) -> Vec<u8> {
    let mut w = header(version);
    w.i32(1);
    operator(&mut w, version, 1);
    w.i32(0)
        .i32(1)
        .bytes(&op.0)
        .i32(0)
        .u8(0)
        .u8(0)
        .i32(0)
        .i32(0);
    finish(w, version)
}

pub(super) fn managed_keyed(m: &FlinkMetadata) -> &KeyedStateHandle {
    m.operators[0].subtasks[0]
        .managed_keyed_state
        .as_deref()
        .unwrap()
}

#[test]
fn version_3_with_master_state_channels_and_trailing_bytes() {
    let mut w = W::default();
    w.i32(MAGIC as i32).i32(3).i64(5).i32(1);
    // A master state: magic, length, then version, name and payload.
    let mut inner = W::default();
    inner.i32(2).utf("hook").i32(3).bytes(b"abc");
    w.i32(0xc96b_1696_u32 as i32)
        .i32(inner.0.len() as i32)
        .bytes(&inner.0);
    w.i32(1);
    operator(&mut w, 3, 2);
    // Subtask 0 finished (stored as -1); subtask 1 with untagged (V1) channel state.
    w.i32(-1).i32(1).i32(0).i32(0).u8(0).u8(0);
    w.i32(1)
        .i32(1)
        .i32(0)
        .i32(3)
        .i32(2)
        .i64(10)
        .i64(20)
        .i64(99)
        .file("file:/c/in", 99);
    w.i32(1)
        .i32(1)
        .i32(4)
        .i32(5)
        .i32(0)
        .i64(0)
        .byte_stream("out", b"z");
    w.bytes(b"xyz");
    let m = read_flink_metadata(&w.0).unwrap();
    assert_eq!((m.version, m.checkpoint_id, m.trailing_bytes), (3, 5, 3));
    assert!(m.properties.is_none());
    assert_eq!(m.master_states[0].name, "hook");
    assert_eq!(m.master_states[0].version, 2);
    assert_eq!(m.master_states[0].bytes.as_slice(), b"abc");
    let op = &m.operators[0];
    assert_eq!(op.operator_id, "ab".repeat(16));
    assert_eq!((op.name.as_deref(), op.uid.as_deref()), (None, None));
    assert_eq!(op.subtasks[0], SubtaskState::empty(0, true));
    let s = &op.subtasks[1];
    let InputStateHandle::Channel(i) = &s.input_channel_state[0] else {
        panic!()
    };
    assert_eq!(
        (i.subtask_index, i.info.gate_idx, i.info.input_channel_idx),
        (1, 0, 3)
    );
    assert_eq!((i.offsets.clone(), i.state_size), (vec![10, 20], 99));
    let OutputStateHandle::Subpartition(o) = &s.result_subpartition_state[0] else {
        panic!()
    };
    assert_eq!((o.info.partition_idx, o.info.subpartition_idx), (4, 5));
    let files = m.referenced_files("file:/c").unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].path.as_str(), files[0].min_size),
        ("file:/c/in", 99)
    );

    // The master state must hold nothing after its payload.
    let mut bad = w.0.clone();
    let len_at = 4 + 4 + 8 + 4 + 4;
    bad[len_at + 3] += 1;
    bad.insert(len_at + 4 + inner.0.len(), 0);
    let e = read_flink_metadata(&bad).unwrap_err();
    assert_eq!(e.context("field"), Some("master state"), "{e}");
}

#[test]
fn version_4_needs_its_properties() {
    let mut w = header(4);
    w.i32(0);
    let body = w.0.clone();
    let e = read_flink_metadata(&body).unwrap_err();
    assert_eq!(e.context("field"), Some("checkpoint properties"), "{e}");
    assert_eq!(e.context("offset"), Some("24"));
    let m = read_flink_metadata(&finish(w, 4)).unwrap();
    let p = m.properties.unwrap();
    assert_eq!((p.offset, p.len), (24, 6));
}

#[test]
fn version_5_names_and_uids_and_fully_finished_operators() {
    let mut w = header(5);
    w.i32(2);
    operator(&mut w, 5, -1);
    w.utf("").utf("").bytes(&[1; 16]).i32(1).i32(1).u8(0).i32(0);
    let m = read_flink_metadata(&finish(w, 5)).unwrap();
    let op = &m.operators[0];
    assert_eq!(
        (op.name.as_deref(), op.uid.as_deref()),
        (Some("Map"), Some("map-uid"))
    );
    assert!(op.fully_finished && op.subtasks.is_empty());
    assert_eq!(
        (m.operators[1].name.clone(), m.operators[1].uid.clone()),
        (None, None)
    );

    // A fully finished operator has no coordinator state.
    let mut w = header(5);
    w.i32(1).utf("n").utf("u").bytes(&[1; 16]).i32(1).i32(1);
    w.byte_stream("c", b"x").i32(-1);
    let e = read_flink_metadata(&finish(w, 5)).unwrap_err();
    assert!(e.message().contains("fully finished"), "{e}");
}

#[test]
fn version_6_tagged_channel_state() {
    let mut w = header(6);
    w.i32(1);
    operator(&mut w, 6, 1);
    w.i32(0).i32(0).i32(0).u8(0).u8(0);
    w.i32(2);
    w.u8(3)
        .i32(0)
        .i64(7)
        .byte_stream("m", b"1234567")
        .i32(2)
        .bytes(b"ok");
    w.u8(1)
        .i32(0)
        .i32(1)
        .i32(2)
        .i32(0)
        .i64(0)
        .file("file:/x", 1);
    w.i32(1).u8(4).i32(0).i64(3).file("file:/y", 3).i32(0);
    let m = read_flink_metadata(&finish(w, 6)).unwrap();
    let s = &m.operators[0].subtasks[0];
    let InputStateHandle::Merged(h) = &s.input_channel_state[0] else {
        panic!()
    };
    assert_eq!(
        (h.state_size, h.serialized_channel_offsets.as_slice()),
        (7, &b"ok"[..])
    );
    assert!(matches!(
        s.input_channel_state[1],
        InputStateHandle::Channel(_)
    ));
    assert!(matches!(
        s.result_subpartition_state[0],
        OutputStateHandle::Merged(_)
    ));

    // An output handle code in an input position.
    let mut w = header(6);
    w.i32(1);
    operator(&mut w, 6, 1);
    w.i32(0).i32(0).i32(0).u8(0).u8(0).i32(1);
    let at = w.0.len();
    w.u8(2).bytes(&[0; 64]);
    let e = read_flink_metadata(&finish(w, 6)).unwrap_err();
    assert!(
        e.message().contains("RESULT_SUBPARTITION_STATE_HANDLE"),
        "{e}"
    );
    assert_eq!(e.context("offset"), Some(at.to_string().as_str()));
}

#[test]
fn version_7_reference_checkpoint_ids() {
    let mut w = header(7);
    w.i32(1);
    operator(&mut w, 7, 2);
    w.i32(-2); // finished subtask 1: no marker
    w.i32(0)
        .i32(0)
        .i32(0)
        .u8(0)
        .u8(0)
        .i32(0)
        .i32(0)
        .u8(1)
        .i64(42);
    let m = read_flink_metadata(&finish(w, 7)).unwrap();
    let subtasks = &m.operators[0].subtasks;
    assert!(subtasks[0].finished && subtasks[0].index == 1);
    assert_eq!(subtasks[1].ref_checkpoint_id, Some(42));
    let m = read_flink_metadata(&with_keyed(7, &one(0))).unwrap();
    assert_eq!(m.operators[0].subtasks[0].ref_checkpoint_id, None);
}

/// A single byte (a type code).
pub(super) fn one(b: u8) -> W {
    W(vec![b])
}

#[test]
fn type_code_names() {
    assert_eq!(type_code_name(0), Some("NULL_HANDLE"));
    assert_eq!(type_code_name(11), Some("INCREMENTAL_KEY_GROUPS_HANDLE_V2"));
    assert_eq!(
        type_code_name(17),
        Some("SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE")
    );
    assert_eq!(type_code_name(18), None);
    assert!(is_flink_metadata(&MAGIC.to_be_bytes()));
    assert!(!is_flink_metadata(b"CSMD"));
}
