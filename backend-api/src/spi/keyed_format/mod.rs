//! The key-group-indexed keyed-state stream: the format of full snapshots of every
//! backend, so that one restore path serves them all.
//!
//! ```text
//! stream  = magic "CSKG" | version u16 | header_len u32 | header_crc u32 | header | block*
//! header  = backend string | key_type string | states seq<StateMeta> (crate::spi::format::handles)
//! block   = key_group u32 | stored_len u32 | flags u8 | crc32(stored) u32 | raw_len u32 | stored
//! stored  = records, zstd-compressed when flags & 1
//! record  = state | key | namespace | [user key, map state only] | value
//!           (a timers state's value is the timestamp, a big-endian i64)
//!           version 3 (delta streams): as version 2, with the state index shifted left
//!             by one and its low bit set on a removal
//!           version 2: the state index and each field's length are LEB128 varints
//!           version 1: the state index a u16, each field's length a u32
//!           (each field is followed by its serialized bytes)
//! ```
//!
//! A **delta stream** (version 3, [`KeyedSnapshotWriter::delta`]) holds the changes of one
//! changelog checkpoint, applied in order over a full snapshot and the deltas before it: a
//! removal deletes the (key, namespace) of its state (for a timers state, the one timer of
//! its timestamp); any other record is written as in a full snapshot (a value or list
//! replaces the (key, namespace)'s, a map record puts one map entry: a changed map comes as
//! its removal, then its entries).
//!
//! Version 2 (written since the filesystem backend) cuts a `ValueState<u64>` record of 16
//! payload bytes from 30 to 20 bytes; version 1 streams stay readable.
//!
//! Blocks come in ascending key-group order; a key group may span several blocks (a block
//! holds about [`BLOCK_TARGET_SIZE`] bytes, so writing needs bounded memory) and an empty key
//! group has none. The handle records where each key group starts, so a restore of a
//! sub-range reads one contiguous byte range. All integers are big-endian. The full layout,
//! the limits and the compatibility rules are in `docs/format.md` in the repository.

mod changes;
mod header;
mod reader;
mod span;
mod writer;

pub use changes::{ChangelogRecord, live_records};
pub use header::{
    BLOCK_TARGET_SIZE, Compression, DELTA_VERSION, KeyedSnapshotHeader, MAGIC, MAX_BLOCK_LEN,
    MAX_HEADER_LEN, MIN_VERSION, VERSION,
};
pub use reader::{Fields, Record, read_header, read_key_groups};
pub use span::{Span, Stored, unshare};
pub use writer::KeyedSnapshotWriter;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::{StateKind, StateMeta};
    use crate::handles::{KeyGroupsStateHandle, StreamStateHandle};
    use crate::keygroup::KeyGroupRange;
    use crate::spi::codec;

    /// Fields of every varint width (around 127/128 and 16383/16384 bytes), serialized and
    /// raw, come back byte for byte.
    #[test]
    fn fields_of_every_length_round_trip() {
        let header = KeyedSnapshotHeader {
            backend: "test".into(),
            key_type: "u64".into(),
            states: vec![StateMeta {
                name: "v".into(),
                kind: StateKind::Value,
                namespace_type: "()".into(),
                user_key_type: None,
                value_type: "Vec<u8>".into(),
                ttl: false,
            }],
        };
        let range = KeyGroupRange::all(1);
        let lengths = [
            0usize, 1, 118, 119, 120, 127, 128, 300, 16_383, 16_384, 70_000,
        ];
        for compression in [Compression::None, Compression::Zstd(1)] {
            let mut writer =
                KeyedSnapshotWriter::new(Vec::new(), &header, range, compression).expect("header");
            writer.begin_key_group(0).expect("key group 0");
            for (i, len) in lengths.iter().enumerate() {
                let key = i as u64;
                let value = vec![i as u8; *len];
                writer
                    .record(0, &key, &(), None::<&()>, &value)
                    .expect("record");
                writer
                    .raw_record(0, &key.to_be_bytes(), &[], None, &value)
                    .expect("raw record");
            }
            let (bytes, offsets) = writer.finish().expect("finish");
            let handle = KeyGroupsStateHandle {
                range,
                offsets,
                stream: StreamStateHandle::Inline(bytes),
            };
            let mut seen = Vec::new();
            read_key_groups(&handle, None, range, &mut |_, r| {
                seen.push((r.key.to_vec(), r.namespace.len(), r.value.to_vec()));
                Ok(())
            })
            .expect("read back");
            assert_eq!(seen.len(), 2 * lengths.len());
            for (i, len) in lengths.iter().enumerate() {
                let key = (i as u64).to_be_bytes().to_vec();
                let mut encoded = Vec::new();
                codec::encode_into(&vec![i as u8; *len], &mut encoded).expect("encode");
                assert_eq!(
                    seen[2 * i],
                    (key.clone(), 0, encoded),
                    "serialized, {len} bytes"
                );
                assert_eq!(
                    seen[2 * i + 1],
                    (key, 0, vec![i as u8; *len]),
                    "raw, {len} bytes"
                );
            }
        }
    }
}
