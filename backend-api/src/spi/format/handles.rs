//! The explicit encoding of the state handles and state metas that stored formats embed:
//! section 2 of `_metadata` (every handle), the `CSKG` header and the `CSRI` body (state
//! metas).
//!
//! The encoding is that of bincode 1-style big-endian fixed-width integers, which is what
//! the first writers produced through serde: integers big-endian at their width, a string or
//! byte string as a u64 length and its bytes, a sequence or map as a u64 count and its
//! items, an enum as a u32 variant index and its fields, an option as a byte 0 or 1 and its
//! value, a boolean as a byte 0 or 1. Here it is written field by field, and every encoder
//! destructures its struct completely: a field added to a handle does not compile until its
//! encoding (and a format version) is decided, instead of silently changing stored bytes.
//!
//! Decoders take a [`Reader`], so every length and count is checked against the enclosing
//! frame before anything is allocated.

use std::collections::BTreeMap;

use super::{Reader, put_bool, put_bytes, put_count, put_str, put_u32, put_u64};
use crate::descriptor::{StateKind, StateMeta};
use crate::error::Result;
use crate::handles::{
    ChangelogSegment, ChangelogStateHandle, CheckpointId, Distribution, FileStateHandle,
    IncrementalStateHandle, KeyGroupsStateHandle, KeyedStateHandle, NamedStateFile,
    OperatorStateHandle, OperatorStateMeta, StateScope, StreamStateHandle, SubtaskState,
};
use crate::keygroup::KeyGroupRange;

/// The smallest encoding of a [`StreamStateHandle`]: a variant and an empty inline stream.
const MIN_STREAM: usize = 4 + 8;
/// The smallest encoding of a [`KeyedStateHandle`].
const MIN_KEYED: usize = 4 + 8 + 8 + MIN_STREAM;
/// The smallest encoding of an [`OperatorStateHandle`].
const MIN_OPERATOR: usize = 8 + MIN_STREAM;
/// The smallest encoding of a [`KeyGroupsStateHandle`].
const MIN_KEY_GROUPS: usize = 8 + 8 + MIN_STREAM;
/// The smallest encoding of a [`ChangelogSegment`].
const MIN_SEGMENT: usize = 8 + 8;
/// The smallest encoding of a [`NamedStateFile`].
const MIN_NAMED: usize = 8 + MIN_STREAM;
/// The smallest encoding of a [`StateMeta`].
pub const MIN_STATE_META: usize = 8 + 4 + 8 + 1 + 8 + 1;

/// Encodes a key-group range: its first key group and its exclusive end, two u32.
pub fn put_key_group_range(out: &mut Vec<u8>, range: KeyGroupRange) {
    let r = range.iter();
    put_u32(out, r.start);
    put_u32(out, r.end);
}

/// Decodes a key-group range.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] for a truncated range, an end before the start or beyond
/// the largest max parallelism.
pub fn key_group_range(r: &mut Reader<'_>) -> Result<KeyGroupRange> {
    let at = r.clone();
    let start = r.u32("key-group range start")?;
    let end = r.u32("key-group range end")?;
    KeyGroupRange::from_bounds(start, end).ok_or_else(|| {
        at.error("invalid key-group range")
            .with_context("range", format!("{start}..{end}"))
    })
}

/// Encodes a [`StreamStateHandle`].
pub fn put_stream(out: &mut Vec<u8>, stream: &StreamStateHandle) {
    match stream {
        StreamStateHandle::Inline(bytes) => {
            put_u32(out, 0);
            put_bytes(out, bytes);
        }
        StreamStateHandle::File(file) => {
            put_u32(out, 1);
            let FileStateHandle {
                path,
                scope,
                size,
                crc32,
            } = file;
            put_str(out, path);
            put_u32(
                out,
                match scope {
                    StateScope::Exclusive => 0,
                    StateScope::Shared => 1,
                    StateScope::TaskOwned => 2,
                },
            );
            put_u64(out, *size);
            put_u32(out, *crc32);
        }
    }
}

/// Decodes a [`StreamStateHandle`].
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the field and offset.
pub fn stream(r: &mut Reader<'_>) -> Result<StreamStateHandle> {
    Ok(match r.variant("stream handle", 2)? {
        0 => StreamStateHandle::Inline(r.byte_string("inline stream")?.to_vec()),
        _ => StreamStateHandle::File(FileStateHandle {
            path: r.string("file path")?,
            scope: match r.variant("file scope", 3)? {
                0 => StateScope::Exclusive,
                1 => StateScope::Shared,
                _ => StateScope::TaskOwned,
            },
            size: r.u64("file size")?,
            crc32: r.u32("file crc32")?,
        }),
    })
}

fn put_named(out: &mut Vec<u8>, file: &NamedStateFile) {
    let NamedStateFile { local_name, handle } = file;
    put_str(out, local_name);
    put_stream(out, handle);
}

fn named(r: &mut Reader<'_>) -> Result<NamedStateFile> {
    Ok(NamedStateFile {
        local_name: r.string("local file name")?,
        handle: stream(r)?,
    })
}

fn put_key_groups(out: &mut Vec<u8>, h: &KeyGroupsStateHandle) {
    let KeyGroupsStateHandle {
        range,
        offsets,
        stream,
    } = h;
    put_key_group_range(out, *range);
    put_count(out, offsets.len());
    for &o in offsets {
        put_u64(out, o);
    }
    put_stream(out, stream);
}

fn key_groups(r: &mut Reader<'_>) -> Result<KeyGroupsStateHandle> {
    Ok(KeyGroupsStateHandle {
        range: key_group_range(r)?,
        offsets: r.seq(8, "key-group offsets", |r| r.u64("key-group offset"))?,
        stream: stream(r)?,
    })
}

fn put_segment(out: &mut Vec<u8>, segment: &ChangelogSegment) {
    let ChangelogSegment {
        checkpoint_id,
        parts,
    } = segment;
    put_u64(out, checkpoint_id.0);
    put_count(out, parts.len());
    for p in parts {
        put_key_groups(out, p);
    }
}

fn segment(r: &mut Reader<'_>) -> Result<ChangelogSegment> {
    Ok(ChangelogSegment {
        checkpoint_id: CheckpointId(r.u64("segment checkpoint id")?),
        parts: r.seq(MIN_KEY_GROUPS, "segment parts", key_groups)?,
    })
}

/// Encodes a [`KeyedStateHandle`].
pub fn put_keyed(out: &mut Vec<u8>, handle: &KeyedStateHandle) {
    match handle {
        KeyedStateHandle::KeyGroups(h) => {
            put_u32(out, 0);
            put_key_groups(out, h);
        }
        KeyedStateHandle::Incremental(h) => {
            put_u32(out, 1);
            let IncrementalStateHandle {
                range,
                checkpoint_id,
                backend_id,
                shared,
                private,
                meta,
            } = h;
            put_key_group_range(out, *range);
            put_u64(out, checkpoint_id.0);
            put_str(out, backend_id);
            for files in [shared, private] {
                put_count(out, files.len());
                for f in files {
                    put_named(out, f);
                }
            }
            put_stream(out, meta);
        }
        KeyedStateHandle::Changelog(h) => {
            put_u32(out, 2);
            let ChangelogStateHandle {
                range,
                base,
                deltas,
            } = h;
            put_key_group_range(out, *range);
            put_segment(out, base);
            put_count(out, deltas.len());
            for d in deltas {
                put_segment(out, d);
            }
        }
    }
}

/// Decodes a [`KeyedStateHandle`].
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the field and offset.
pub fn keyed(r: &mut Reader<'_>) -> Result<KeyedStateHandle> {
    Ok(match r.variant("keyed state handle", 3)? {
        0 => KeyedStateHandle::KeyGroups(key_groups(r)?),
        2 => KeyedStateHandle::Changelog(ChangelogStateHandle {
            range: key_group_range(r)?,
            base: segment(r)?,
            deltas: r.seq(MIN_SEGMENT, "changelog deltas", segment)?,
        }),
        _ => KeyedStateHandle::Incremental(IncrementalStateHandle {
            range: key_group_range(r)?,
            checkpoint_id: CheckpointId(r.u64("checkpoint id")?),
            backend_id: r.string("backend id")?,
            shared: r.seq(MIN_NAMED, "shared files", named)?,
            private: r.seq(MIN_NAMED, "private files", named)?,
            meta: stream(r)?,
        }),
    })
}

/// Encodes an [`OperatorStateHandle`].
pub fn put_operator(out: &mut Vec<u8>, handle: &OperatorStateHandle) {
    let OperatorStateHandle { states, stream } = handle;
    put_count(out, states.len());
    for (name, meta) in states {
        put_str(out, name);
        let OperatorStateMeta {
            mode,
            element_type,
            offsets,
        } = meta;
        put_u32(
            out,
            match mode {
                Distribution::Split => 0,
                Distribution::Union => 1,
                Distribution::Broadcast => 2,
            },
        );
        put_str(out, element_type);
        put_count(out, offsets.len());
        for &o in offsets {
            put_u64(out, o);
        }
    }
    put_stream(out, stream);
}

/// Decodes an [`OperatorStateHandle`]. State names must come in strictly ascending order
/// (as they are written).
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the field and offset.
pub fn operator(r: &mut Reader<'_>) -> Result<OperatorStateHandle> {
    let n = r.count(8 + 4 + 8 + 8, "operator states")?;
    let mut states = BTreeMap::new();
    for _ in 0..n {
        let at = r.clone();
        let name = r.string("operator state name")?;
        if states
            .last_key_value()
            .is_some_and(|(last, _)| *last >= name)
        {
            return Err(at
                .error("operator state names are not in ascending order")
                .with_context("state", name));
        }
        let mode = match r.variant("distribution", 3)? {
            0 => Distribution::Split,
            1 => Distribution::Union,
            _ => Distribution::Broadcast,
        };
        let meta = OperatorStateMeta {
            mode,
            element_type: r.type_identity("element type")?,
            offsets: r.seq(8, "element offsets", |r| r.u64("element offset"))?,
        };
        states.insert(name, meta);
    }
    Ok(OperatorStateHandle {
        states,
        stream: stream(r)?,
    })
}

/// Encodes a [`SubtaskState`].
pub fn put_subtask(out: &mut Vec<u8>, state: &SubtaskState) {
    let SubtaskState { keyed, operator } = state;
    put_count(out, keyed.len());
    for h in keyed {
        put_keyed(out, h);
    }
    put_count(out, operator.len());
    for h in operator {
        put_operator(out, h);
    }
}

/// Decodes a [`SubtaskState`].
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the field and offset.
pub fn subtask(r: &mut Reader<'_>) -> Result<SubtaskState> {
    Ok(SubtaskState {
        keyed: r.seq(MIN_KEYED, "keyed state handles", keyed)?,
        operator: r.seq(MIN_OPERATOR, "operator state handles", operator)?,
    })
}

/// Encodes a [`StateMeta`].
pub fn put_state_meta(out: &mut Vec<u8>, meta: &StateMeta) {
    let StateMeta {
        name,
        kind,
        namespace_type,
        user_key_type,
        value_type,
        ttl,
    } = meta;
    put_str(out, name);
    put_u32(
        out,
        match kind {
            StateKind::Value => 0,
            StateKind::List => 1,
            StateKind::Map => 2,
            StateKind::Reducing => 3,
            StateKind::Aggregating => 4,
            StateKind::Timers => 5,
        },
    );
    put_str(out, namespace_type);
    match user_key_type {
        None => put_bool(out, false),
        Some(t) => {
            put_bool(out, true);
            put_str(out, t);
        }
    }
    put_str(out, value_type);
    put_bool(out, *ttl);
}

/// Decodes a [`StateMeta`].
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the field and offset.
pub fn state_meta(r: &mut Reader<'_>) -> Result<StateMeta> {
    Ok(StateMeta {
        name: r.string("state name")?,
        kind: match r.variant("state kind", 6)? {
            0 => StateKind::Value,
            1 => StateKind::List,
            2 => StateKind::Map,
            3 => StateKind::Reducing,
            4 => StateKind::Aggregating,
            _ => StateKind::Timers,
        },
        namespace_type: r.type_identity("namespace type")?,
        user_key_type: r.option("user key type", |r| r.type_identity("user key type"))?,
        value_type: r.type_identity("value type")?,
        ttl: r.bool("ttl")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::spi::codec;

    /// A subtask state with every kind of handle and field.
    pub(crate) fn sample() -> SubtaskState {
        let file = |path: &str, scope| {
            StreamStateHandle::File(FileStateHandle {
                path: path.into(),
                scope,
                size: 1234,
                crc32: 0xdead_beef,
            })
        };
        SubtaskState {
            keyed: vec![
                KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
                    range: KeyGroupRange::new(3, 5),
                    offsets: vec![10, 20, 30],
                    stream: file("chk-1/a", StateScope::Exclusive),
                }),
                KeyedStateHandle::Incremental(IncrementalStateHandle {
                    range: KeyGroupRange::EMPTY,
                    checkpoint_id: CheckpointId(9),
                    backend_id: "b".into(),
                    shared: vec![NamedStateFile {
                        local_name: "1.sst".into(),
                        handle: file("shared/x", StateScope::Shared),
                    }],
                    private: vec![NamedStateFile {
                        local_name: "CURRENT".into(),
                        handle: StreamStateHandle::Inline(b"M".to_vec()),
                    }],
                    meta: file("taskowned/m", StateScope::TaskOwned),
                }),
                KeyedStateHandle::Changelog(ChangelogStateHandle {
                    range: KeyGroupRange::new(0, 1),
                    base: ChangelogSegment {
                        checkpoint_id: CheckpointId(4),
                        parts: vec![KeyGroupsStateHandle {
                            range: KeyGroupRange::new(0, 1),
                            offsets: vec![7, 9],
                            stream: file("shared/base", StateScope::Shared),
                        }],
                    },
                    deltas: vec![ChangelogSegment {
                        checkpoint_id: CheckpointId(5),
                        parts: vec![KeyGroupsStateHandle {
                            range: KeyGroupRange::new(0, 1),
                            offsets: vec![7, 7],
                            stream: StreamStateHandle::Inline(b"delta".to_vec()),
                        }],
                    }],
                }),
            ],
            operator: vec![OperatorStateHandle {
                states: BTreeMap::from([
                    (
                        "a".to_owned(),
                        OperatorStateMeta {
                            mode: Distribution::Broadcast,
                            element_type: "(u8, u8)".into(),
                            offsets: vec![6],
                        },
                    ),
                    (
                        "b".to_owned(),
                        OperatorStateMeta {
                            mode: Distribution::Union,
                            element_type: "u64".into(),
                            offsets: vec![],
                        },
                    ),
                ]),
                stream: StreamStateHandle::Inline(vec![1, 2, 3]),
            }],
        }
    }

    /// The explicit encoding is byte for byte what serde + bincode wrote for the same value
    /// (how `_metadata` v1, `CSKG` headers and `CSRI` bodies were first written), and decodes
    /// back to it.
    #[test]
    fn explicit_encoding_equals_the_serde_encoding() {
        let state = sample();
        let mut explicit = Vec::new();
        put_subtask(&mut explicit, &state);
        assert_eq!(explicit, codec::encode(&state).unwrap());
        let mut r = Reader::new(&explicit, "sample");
        assert_eq!(subtask(&mut r).unwrap(), state);
        r.finish("subtask").unwrap();

        for kind in [
            StateKind::Value,
            StateKind::List,
            StateKind::Map,
            StateKind::Reducing,
            StateKind::Aggregating,
            StateKind::Timers,
        ] {
            let meta = StateMeta {
                name: "s".into(),
                kind,
                namespace_type: "()".into(),
                user_key_type: (kind == StateKind::Map).then(|| "u32".to_owned()),
                value_type: "u64".into(),
                ttl: kind == StateKind::List,
            };
            let mut explicit = Vec::new();
            put_state_meta(&mut explicit, &meta);
            assert_eq!(explicit, codec::encode(&meta).unwrap(), "{kind:?}");
            assert!(explicit.len() >= MIN_STATE_META);
            assert_eq!(state_meta(&mut Reader::new(&explicit, "m")).unwrap(), meta);
        }
    }

    #[test]
    fn every_truncation_and_bad_variant_is_corrupted() {
        let mut bytes = Vec::new();
        put_subtask(&mut bytes, &sample());
        for len in 0..bytes.len() {
            let e = subtask(&mut Reader::new(&bytes[..len], "t")).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupted, "{len}");
            assert!(e.context("offset").is_some(), "{e}");
        }
        // The first keyed handle's variant (after the count) set to 7.
        bytes[8..12].copy_from_slice(&7u32.to_be_bytes());
        let e = subtask(&mut Reader::new(&bytes, "t")).unwrap_err();
        assert_eq!(e.context("variant"), Some("7"), "{e}");
        assert_eq!(e.context("offset"), Some("8"), "{e}");
    }
}
