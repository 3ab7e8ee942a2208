//! Records kept as the stream stored them: a block's bytes shared ([`Block`]), where each
//! record lies in it ([`Stored`]), and runs of one state's records ([`Span`]), which a
//! restore keeps until the state is registered instead of copying every record.

use std::sync::Arc;

use super::reader::{Fields, read_state, read_versioned_fields};
use crate::error::Result;
use crate::spi::format::Reader;

/// The records of one block as read from a stream (decompressed), shared by the [`Span`]s
/// kept of it.
#[derive(Debug, Clone)]
pub(super) struct Block {
    bytes: Arc<Vec<u8>>,
    version: u16,
}

impl Block {
    pub(super) fn new(mut bytes: Vec<u8>, version: u16) -> Self {
        // Kept as long as a span of it: no more capacity than bytes.
        bytes.shrink_to_fit();
        Block {
            bytes: Arc::new(bytes),
            version,
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(super) fn version(&self) -> u16 {
        self.version
    }
}

/// Where one record lies in the block it was read from: its state index, fields and all.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub(super) block: &'a Block,
    pub(super) start: usize,
    pub(super) end: usize,
    /// Whether the record has a user key (map state).
    pub(super) user_key: bool,
}

/// Records stored one after the other in one block, all of one state, kept without a copy:
/// read back by [`records`](Self::records).
#[derive(Debug, Clone)]
pub struct Span {
    block: Block,
    start: usize,
    end: usize,
    user_key: bool,
    records: usize,
}

impl Span {
    /// The span of one record.
    pub fn new(record: Stored<'_>) -> Self {
        Span {
            block: record.block.clone(),
            start: record.start,
            end: record.end,
            user_key: record.user_key,
            records: 1,
        }
    }

    /// Takes in `record` when it follows the span's last one in the same block (and is of a
    /// state of the same kind); `false` (and nothing changed) otherwise.
    pub fn extend(&mut self, record: Stored<'_>) -> bool {
        let follows =
            self.same_block(record) && self.end == record.start && self.user_key == record.user_key;
        if follows {
            self.end = record.end;
            self.records += 1;
        }
        follows
    }

    /// Whether `record` lies in the span's block.
    pub fn same_block(&self, record: Stored<'_>) -> bool {
        Arc::ptr_eq(&self.block.bytes, &record.block.bytes)
    }

    /// Whether the span covers every byte of its block.
    fn whole_block(&self) -> bool {
        self.start == 0 && self.end == self.block.bytes.len()
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether the span holds no record (never, as spans are made of one and grow).
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The records, each with whether it is a removal (of a delta stream).
    ///
    /// The bytes were parsed when the span was made, so an error here means that memory was
    /// damaged; it is reported (and ends the iteration), not ignored.
    pub fn records(&self) -> impl Iterator<Item = Result<(Fields<'_>, bool)>> + '_ {
        let version = self.block.version;
        let user_key = self.user_key;
        let bytes = self.block.bytes.get(self.start..self.end).unwrap_or(&[]);
        let mut r = Reader::new(bytes, "restored records").with_key("buffer");
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || r.is_empty() {
                return None;
            }
            let record = read_state(&mut r, version).and_then(|(_, removed)| {
                Ok((read_versioned_fields(&mut r, version, user_key)?, removed))
            });
            failed = record.is_err();
            Some(record)
        })
    }
}

/// `spans` holding no byte of other records: a span that covers only part of its block
/// (which also holds records of other states, or of the same state kept in another span)
/// is copied, with the partial spans next to it of the same version and kind, into a block
/// of its own; spans that cover their whole block stay shared.
///
/// A restore calls it on the spans of each block once the block is parsed, so that what it
/// keeps pins no bytes of states it drops or never decodes (a state that is never registered
/// keeps its own bytes alive, not the blocks of every state beside it), and a restore holds
/// each byte once.
pub fn unshare(spans: Vec<Span>) -> Vec<Span> {
    /// Partial spans being copied into one block.
    struct Copy {
        bytes: Vec<u8>,
        version: u16,
        user_key: bool,
        records: usize,
    }
    fn flush(copy: &mut Option<Copy>, out: &mut Vec<Span>) {
        out.extend(copy.take().map(|c| Span {
            start: 0,
            end: c.bytes.len(),
            block: Block::new(c.bytes, c.version),
            user_key: c.user_key,
            records: c.records,
        }));
    }
    if spans.iter().all(Span::whole_block) {
        return spans;
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut copy: Option<Copy> = None;
    for span in spans {
        if span.whole_block() {
            flush(&mut copy, &mut out);
            out.push(span);
            continue;
        }
        let bytes = span.block.bytes.get(span.start..span.end).unwrap_or(&[]);
        match &mut copy {
            Some(c) if c.version == span.block.version && c.user_key == span.user_key => {
                c.bytes.extend_from_slice(bytes);
                c.records += span.records;
            }
            _ => {
                flush(&mut copy, &mut out);
                copy = Some(Copy {
                    bytes: bytes.to_vec(),
                    version: span.block.version,
                    user_key: span.user_key,
                    records: span.records,
                });
            }
        }
    }
    flush(&mut copy, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::descriptor::{StateKind, StateMeta};
    use crate::handles::{KeyGroupsStateHandle, StreamStateHandle};
    use crate::keygroup::KeyGroupRange;
    use crate::spi::keyed_format::read_key_groups;
    use crate::spi::keyed_format::{Compression, KeyedSnapshotHeader, KeyedSnapshotWriter};

    /// A record read back: key, user key, value, whether a removal.
    type Seen = (String, Option<String>, String, bool);

    fn meta(name: &str, kind: StateKind, user_key: Option<&str>) -> StateMeta {
        StateMeta {
            name: name.into(),
            kind,
            namespace_type: "()".into(),
            user_key_type: user_key.map(Into::into),
            value_type: "u64".into(),
            ttl: false,
        }
    }

    /// What a restore keeps: per state, spans that grow while its records follow one
    /// another in a block and start anew after another state's record or in the next
    /// block; read back, they give every record with its removal flag, in order.
    #[test]
    fn spans_keep_runs_of_one_state_and_give_back_their_records() {
        let header = KeyedSnapshotHeader {
            backend: "test".into(),
            key_type: "u64".into(),
            states: vec![
                meta("v", StateKind::Value, None),
                meta("m", StateKind::Map, Some("u64")),
            ],
        };
        let range = KeyGroupRange::all(2);
        for compression in [Compression::None, Compression::Zstd(1)] {
            let mut w =
                KeyedSnapshotWriter::delta(Vec::new(), &header, range, compression).unwrap();
            w.begin_key_group(0).unwrap();
            w.raw_record(0, b"a", b"", None, b"1").unwrap();
            w.raw_removal(0, b"b", b"", None, b"").unwrap();
            w.raw_record(1, b"c", b"", Some(b"x"), b"2").unwrap();
            w.raw_record(0, b"d", b"", None, b"3").unwrap();
            w.begin_key_group(1).unwrap();
            w.raw_record(0, b"e", b"", None, b"4").unwrap();
            let (bytes, offsets) = w.finish().unwrap();
            let handle = KeyGroupsStateHandle {
                range,
                offsets,
                stream: StreamStateHandle::Inline(bytes),
            };
            let mut spans: [Vec<Span>; 2] = Default::default();
            read_key_groups(&handle, None, range, &mut |_, r| {
                let kept = &mut spans[usize::from(r.state)];
                if !kept.last_mut().is_some_and(|s| s.extend(r.stored)) {
                    kept.push(Span::new(r.stored));
                }
                Ok(())
            })
            .unwrap();
            let read = |spans: &[Span]| -> Vec<Vec<Seen>> {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                spans
                    .iter()
                    .map(|s| {
                        let records: Vec<_> = s
                            .records()
                            .map(|r| {
                                let (f, removed) = r.unwrap();
                                (text(f.key), f.user_key.map(text), text(f.value), removed)
                            })
                            .collect();
                        assert_eq!(records.len(), s.len());
                        records
                    })
                    .collect()
            };
            let own = |k: &str, uk: Option<&str>, v: &str, removed| {
                (k.to_owned(), uk.map(str::to_owned), v.to_owned(), removed)
            };
            assert_eq!(
                read(&spans[0]),
                [
                    vec![own("a", None, "1", false), own("b", None, "", true)],
                    vec![own("d", None, "3", false)],
                    vec![own("e", None, "4", false)],
                ],
                "{compression:?}"
            );
            assert_eq!(read(&spans[1]), [vec![own("c", Some("x"), "2", false)]]);

            // Unshared, the parts of key group 0's block are copied (those of one state into
            // one block), and key group 1's block, all of state 0, stays shared.
            let block_of = |s: &Span| Arc::clone(&s.block.bytes);
            let (first, last) = (block_of(&spans[0][0]), block_of(&spans[0][2]));
            let values = unshare(spans[0].clone());
            assert_eq!(
                read(&values),
                [
                    vec![
                        own("a", None, "1", false),
                        own("b", None, "", true),
                        own("d", None, "3", false)
                    ],
                    vec![own("e", None, "4", false)],
                ]
            );
            assert!(!Arc::ptr_eq(&values[0].block.bytes, &first));
            assert!(values[0].whole_block());
            assert!(Arc::ptr_eq(&values[1].block.bytes, &last));
            let maps = unshare(spans[1].clone());
            assert_eq!(read(&maps), read(&spans[1]));
            assert!(!Arc::ptr_eq(&maps[0].block.bytes, &first));
            let again = unshare(values.clone());
            assert!(Arc::ptr_eq(&again[0].block.bytes, &values[0].block.bytes));
        }
    }
}
