//! The key-group-indexed keyed-state stream: the format of full snapshots of every
//! backend, so that one restore path serves them all.
//!
//! ```text
//! stream  = magic "CSKG" | version u16 | header_len u32 | header_crc u32 | header | block*
//! header  = backend string | key_type string | states seq<StateMeta> (crate::format::handles)
//! block   = key_group u32 | stored_len u32 | flags u8 | crc32(stored) u32 | raw_len u32 | stored
//! stored  = records, zstd-compressed when flags & 1
//! record  = state | key | namespace | [user key, map state only] | value
//!           (a timers state's value is the timestamp, a big-endian i64)
//!           version 2: the state index and each field's length are LEB128 varints
//!           version 1: the state index a u16, each field's length a u32
//!           (each field is followed by its serialized bytes)
//! ```
//!
//! Version 2 (written since the filesystem backend) cuts a `ValueState<u64>` record of 16
//! payload bytes from 30 to 20 bytes; version 1 streams stay readable.
//!
//! Blocks come in ascending key-group order; a key group may span several blocks (a block
//! holds about [`BLOCK_TARGET_SIZE`] bytes, so writing needs bounded memory) and an empty key
//! group has none. The handle records where each key group starts, so a restore of a
//! sub-range reads one contiguous byte range. All integers are big-endian. The full layout,
//! the limits and the compatibility rules are in `docs/format.md` in the repository.

use std::io::{Read, Write};

use integer_encoding::VarInt;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::descriptor::{StateKind, StateMeta};
use crate::error::{Error, Result};
use crate::format::{self, Reader, describe, handles};
use crate::handles::KeyGroupsStateHandle;
use crate::keygroup::KeyGroupRange;
use crate::stream::{StateReader, open_stream};

/// The magic number of the stream.
pub const MAGIC: [u8; 4] = *b"CSKG";
/// The format version written.
pub const VERSION: u16 = 2;
/// The oldest format version read.
pub const MIN_VERSION: u16 = 1;
/// A block is closed once its records reach this size.
pub const BLOCK_TARGET_SIZE: usize = 256 * 1024;
const PREAMBLE_LEN: usize = 4 + 2 + 4 + 4;
const BLOCK_HEADER_LEN: usize = 4 + 4 + 1 + 4 + 4;
const FLAG_ZSTD: u8 = 1;
/// The largest block, stored or decompressed: a reader refuses a larger declared length
/// before allocating, so a block never makes a reader allocate more than this.
pub const MAX_BLOCK_LEN: u32 = 256 << 20;
/// The largest header: a reader refuses a larger declared length before reading.
pub const MAX_HEADER_LEN: u64 = 16 << 20;

/// Compression of snapshot blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// zstd at the given level.
    Zstd(i32),
}

/// What precedes the blocks: the key type and every state's meta, in the order that records
/// refer to them by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedSnapshotHeader {
    /// The backend that wrote the stream.
    pub backend: String,
    /// The key type.
    pub key_type: String,
    /// The states.
    pub states: Vec<StateMeta>,
}

impl KeyedSnapshotHeader {
    /// Checks that the stream was written with keys of `key_type` (a Rust type name), the
    /// key type of the backend restoring it.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming both types.
    pub fn check_key_type(&self, key_type: &str) -> Result<()> {
        if self.key_type == key_type {
            Ok(())
        } else {
            Err(Error::invalid_input(
                "the snapshot was written with another key type than the backend restoring it",
            )
            .with_context("stored", &self.key_type)
            .with_context("requested", key_type))
        }
    }
}

/// The header's encoding: the backend and key type as strings, then the count of states and
/// each state's meta (see [`crate::format::handles`]).
fn encode_header(header: &KeyedSnapshotHeader) -> Vec<u8> {
    let KeyedSnapshotHeader {
        backend,
        key_type,
        states,
    } = header;
    let mut out = Vec::new();
    format::put_str(&mut out, backend);
    format::put_str(&mut out, key_type);
    format::put_count(&mut out, states.len());
    for meta in states {
        handles::put_state_meta(&mut out, meta);
    }
    out
}

fn decode_header(r: &mut Reader<'_>) -> Result<KeyedSnapshotHeader> {
    let header = KeyedSnapshotHeader {
        backend: r.string("backend")?,
        key_type: r.type_identity("key type")?,
        states: r.seq(handles::MIN_STATE_META, "states", handles::state_meta)?,
    };
    if header.states.len() > usize::from(u16::MAX) + 1 {
        return Err(r
            .error("keyed snapshot header has more states than records can name")
            .with_context("states", header.states.len()));
    }
    Ok(header)
}

/// Writes a keyed-state stream.
#[derive(Debug)]
pub struct KeyedSnapshotWriter<W: Write> {
    out: W,
    position: u64,
    range: KeyGroupRange,
    offsets: Vec<u64>,
    kinds: Vec<StateKind>,
    current: Option<u32>,
    block: Vec<u8>,
    compressed: Vec<u8>,
    compression: Compression,
}

fn write_all<W: Write>(out: &mut W, bytes: &[u8], position: &mut u64) -> Result<()> {
    out.write_all(bytes)
        .map_err(|e| crate::stream::stream_write_error("write keyed snapshot", e))?;
    *position += bytes.len() as u64;
    Ok(())
}

impl<W: Write> KeyedSnapshotWriter<W> {
    /// Starts a stream for the key groups of `range`, writing the header.
    ///
    /// # Errors
    /// Write errors of `out`.
    pub fn new(
        mut out: W,
        header: &KeyedSnapshotHeader,
        range: KeyGroupRange,
        compression: Compression,
    ) -> Result<Self> {
        let header_bytes = encode_header(header);
        let header_len = u32::try_from(header_bytes.len())
            .ok()
            .filter(|&n| u64::from(n) <= MAX_HEADER_LEN)
            .ok_or_else(|| {
                Error::invalid_input("keyed snapshot header exceeds its maximum size")
                    .with_context("size", header_bytes.len())
                    .with_context("max", MAX_HEADER_LEN)
            })?;
        let mut preamble = Vec::with_capacity(PREAMBLE_LEN + header_bytes.len());
        preamble.extend_from_slice(&MAGIC);
        preamble.extend_from_slice(&VERSION.to_be_bytes());
        preamble.extend_from_slice(&header_len.to_be_bytes());
        preamble.extend_from_slice(&crc32fast::hash(&header_bytes).to_be_bytes());
        preamble.extend_from_slice(&header_bytes);
        let mut position = 0;
        write_all(&mut out, &preamble, &mut position)?;
        Ok(KeyedSnapshotWriter {
            out,
            position,
            range,
            offsets: Vec::with_capacity(range.len() as usize),
            kinds: header.states.iter().map(|s| s.kind).collect(),
            current: None,
            block: Vec::new(),
            compressed: Vec::new(),
            compression,
        })
    }

    /// Starts the records of `key_group`; key groups must come in ascending order.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when `key_group` is outside the range or not
    /// ascending; write errors.
    pub fn begin_key_group(&mut self, key_group: u32) -> Result<()> {
        let Some(index) = self.range.index_of(key_group) else {
            return Err(
                Error::invalid_input("key group outside the snapshot's range")
                    .with_context("key_group", key_group)
                    .with_context("range", self.range),
            );
        };
        if index < self.offsets.len() {
            return Err(
                Error::invalid_input("key groups must be written in ascending order")
                    .with_context("key_group", key_group),
            );
        }
        self.flush_block()?;
        while self.offsets.len() <= index {
            self.offsets.push(self.position);
        }
        self.current = Some(key_group);
        Ok(())
    }

    fn varint(&mut self, n: u64) {
        let mut buf = [0u8; 10];
        let len = n.encode_var(&mut buf);
        self.block.extend_from_slice(&buf[..len]);
    }

    fn field(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.block.extend_from_slice(bytes);
    }

    /// Serializes `value` straight into the block behind its length
    /// ([`codec::encode_len_prefixed`]).
    fn encoded_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        codec::encode_len_prefixed(value, &mut self.block).map(|_| ())
    }

    fn start_record(&mut self, state: u16, has_user_key: bool) -> Result<()> {
        if self.current.is_none() {
            return Err(Error::internal("record written before begin_key_group"));
        }
        let is_map = self.kinds.get(state as usize).map(|k| *k == StateKind::Map);
        match is_map {
            Some(is_map) if is_map == has_user_key => {}
            Some(_) => {
                return Err(Error::internal(
                    "a user key is written for map state and only for map state",
                )
                .with_context("state", state));
            }
            None => {
                return Err(Error::internal("record of a state missing from the header")
                    .with_context("state", state));
            }
        }
        self.varint(u64::from(state));
        Ok(())
    }

    /// Writes one record, serializing its fields.
    ///
    /// # Errors
    /// Serialization and write errors.
    pub fn record<K, N, U, V>(
        &mut self,
        state: u16,
        key: &K,
        ns: &N,
        user_key: Option<&U>,
        value: &V,
    ) -> Result<()>
    where
        K: Serialize + ?Sized,
        N: Serialize + ?Sized,
        U: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        self.start_record(state, user_key.is_some())?;
        self.encoded_field(key)?;
        self.encoded_field(ns)?;
        if let Some(uk) = user_key {
            self.encoded_field(uk)?;
        }
        self.encoded_field(value)?;
        self.maybe_flush()
    }

    /// Writes one record of already serialized fields.
    ///
    /// # Errors
    /// Write errors.
    pub fn raw_record(
        &mut self,
        state: u16,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<()> {
        self.start_record(state, user_key.is_some())?;
        self.field(key);
        self.field(ns);
        if let Some(uk) = user_key {
            self.field(uk);
        }
        self.field(value);
        self.maybe_flush()
    }

    fn maybe_flush(&mut self) -> Result<()> {
        if self.block.len() >= BLOCK_TARGET_SIZE {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        let Some(key_group) = self.current else {
            return Ok(());
        };
        if self.block.is_empty() {
            return Ok(());
        }
        let (flags, stored): (u8, &[u8]) = match self.compression {
            Compression::None => (0, &self.block),
            Compression::Zstd(level) => {
                self.compressed.clear();
                zstd::stream::copy_encode(&self.block[..], &mut self.compressed, level)
                    .map_err(|e| Error::io("compress snapshot block", e))?;
                (FLAG_ZSTD, &self.compressed)
            }
        };
        let mut head = [0u8; BLOCK_HEADER_LEN];
        head[0..4].copy_from_slice(&key_group.to_be_bytes());
        head[4..8].copy_from_slice(&(stored.len() as u32).to_be_bytes());
        head[8] = flags;
        head[9..13].copy_from_slice(&crc32fast::hash(stored).to_be_bytes());
        head[13..17].copy_from_slice(&(self.block.len() as u32).to_be_bytes());
        write_all(&mut self.out, &head, &mut self.position)?;
        write_all(&mut self.out, stored, &mut self.position)?;
        self.block.clear();
        Ok(())
    }

    /// Finishes the stream: returns the output and the offset of every key group.
    ///
    /// # Errors
    /// Write errors.
    pub fn finish(mut self) -> Result<(W, Vec<u64>)> {
        self.flush_block()?;
        while self.offsets.len() < self.range.len() as usize {
            self.offsets.push(self.position);
        }
        self.out
            .flush()
            .map_err(|e| crate::stream::stream_write_error("flush keyed snapshot", e))?;
        Ok((self.out, self.offsets))
    }
}

/// One record read back.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Its key group.
    pub key_group: u32,
    /// The index of its state in the header.
    pub state: u16,
    /// Serialized key.
    pub key: &'a [u8],
    /// Serialized namespace.
    pub namespace: &'a [u8],
    /// Serialized map key (map state only).
    pub user_key: Option<&'a [u8]>,
    /// Serialized value (a list state's value is its serialized `Vec`).
    pub value: &'a [u8],
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], what: &'static str, path: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        let err = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupted("keyed snapshot stream is truncated")
        } else {
            Error::io("read keyed snapshot", e)
        };
        err.with_context("path", path).with_context("reading", what)
    })
}

/// Reads the header of a keyed-state stream.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the path when the magic, version, length or
/// checksum is wrong; read errors.
pub fn read_header(
    handle: &KeyGroupsStateHandle,
    reader: Option<&dyn StateReader>,
) -> Result<KeyedSnapshotHeader> {
    read_versioned_header(handle, reader).map(|(_, header)| header)
}

/// The format version and the header of a stream.
fn read_versioned_header(
    handle: &KeyGroupsStateHandle,
    reader: Option<&dyn StateReader>,
) -> Result<(u16, KeyedSnapshotHeader)> {
    let path = describe(&handle.stream);
    let end = handle
        .offsets
        .first()
        .copied()
        .unwrap_or(handle.stream.size());
    if end < PREAMBLE_LEN as u64 || end > handle.stream.size() {
        return Err(
            Error::corrupted("keyed snapshot header offsets are inconsistent")
                .with_context("path", path)
                .with_context("first_offset", end)
                .with_context("size", handle.stream.size()),
        );
    }
    let mut r = open_stream(&handle.stream, reader, 0..end)?;
    let mut pre = [0u8; PREAMBLE_LEN];
    read_exact(&mut r, &mut pre, "preamble", &path)?;
    let mut p = Reader::new(&pre, &path);
    let version = format::magic_and_version(
        &mut p,
        MAGIC,
        MIN_VERSION..=VERSION,
        "keyed snapshot (CSKG)",
    )?;
    let len = u64::from(p.u32("header length")?);
    let crc = p.u32("header crc32")?;
    if len > MAX_HEADER_LEN || PREAMBLE_LEN as u64 + len != end {
        return Err(p
            .error("keyed snapshot header length is inconsistent")
            .with_context("header_len", len)
            .with_context("first_offset", end)
            .with_context("max", MAX_HEADER_LEN));
    }
    let bytes = format::read_exactly(&mut r, len, &p, "keyed snapshot header")?;
    let mut h = Reader::new(&bytes, &path).at_offset(PREAMBLE_LEN as u64);
    format::check_crc32(&bytes, crc, &h, "keyed snapshot header")?;
    let header = decode_header(&mut h)?;
    h.finish("the keyed snapshot header")?;
    Ok((version, header))
}

/// Reads the records of the key groups of `handle` inside `range`, reading only their
/// bytes (one range read), and passes each to `visit`.
///
/// Returns the header, or `None` when the handle holds none of `range`.
///
/// Memory is bounded by the data: a block is read into a buffer that grows with the bytes
/// that arrive, and decompressed by [`format::decompress_zstd`] into a buffer of at most its
/// declared raw length, which is refused above [`MAX_BLOCK_LEN`] before anything is
/// allocated; data that decompresses to more is refused when the buffer is full.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the path, offset and key group for a bad block;
/// read errors; errors of `visit`.
pub fn read_key_groups(
    handle: &KeyGroupsStateHandle,
    reader: Option<&dyn StateReader>,
    range: KeyGroupRange,
    visit: &mut dyn FnMut(&KeyedSnapshotHeader, Record<'_>) -> Result<()>,
) -> Result<Option<KeyedSnapshotHeader>> {
    let wanted = handle.range.intersection(&range);
    if wanted.is_empty() {
        return Ok(None);
    }
    let path = describe(&handle.stream);
    if handle.offsets.len() != handle.range.len() as usize {
        return Err(
            Error::corrupted("keyed state handle has the wrong number of offsets")
                .with_context("path", path)
                .with_context("offsets", handle.offsets.len())
                .with_context("key_groups", handle.range.len()),
        );
    }
    let (version, header) = read_versioned_header(handle, reader)?;
    let index = |kg: u32| (kg - handle.range.first()) as usize;
    let start = handle.offsets[index(wanted.first())];
    let end = if wanted.last() < handle.range.last() {
        handle.offsets[index(wanted.last() + 1)]
    } else {
        handle.stream.size()
    };
    if start > end || end > handle.stream.size() {
        return Err(
            Error::corrupted("keyed state handle offsets are inconsistent")
                .with_context("path", path)
                .with_context("start", start)
                .with_context("end", end),
        );
    }
    let mut r = open_stream(&handle.stream, reader, start..end)?;
    let mut at = start;
    let mut last_kg = None;
    while at < end {
        let mut head = [0u8; BLOCK_HEADER_LEN];
        read_exact(&mut r, &mut head, "block header", &path)?;
        let mut b = Reader::new(&head, &path).at_offset(at);
        let kg = b.u32("key group")?;
        let stored_len = b.u32("stored length")?;
        let flags = b.u8("flags")?;
        let crc = b.u32("block crc32")?;
        let raw_len = b.u32("raw length")?;
        let block = Reader::new(&[], &path).at_offset(at);
        let block_err = |msg: &'static str| block.error(msg).with_context("key_group", kg);
        if !wanted.contains(kg) || last_kg.is_some_and(|l| kg < l) {
            return Err(block_err("snapshot block of an unexpected key group"));
        }
        let block_end = at
            .checked_add(BLOCK_HEADER_LEN as u64)
            .and_then(|n| n.checked_add(u64::from(stored_len)));
        if stored_len > MAX_BLOCK_LEN
            || raw_len > MAX_BLOCK_LEN
            || block_end.is_none_or(|e| e > end)
            || flags & !FLAG_ZSTD != 0
        {
            return Err(block_err("snapshot block header is invalid")
                .with_context("stored_len", stored_len)
                .with_context("raw_len", raw_len)
                .with_context("flags", flags)
                .with_context("max_len", MAX_BLOCK_LEN)
                .with_context("range_end", end));
        }
        let stored = format::read_exactly(&mut r, u64::from(stored_len), &b, "block")?;
        let data = Reader::new(&stored, &path).at_offset(at + BLOCK_HEADER_LEN as u64);
        format::check_crc32(&stored, crc, &data, "snapshot block")
            .map_err(|e| e.with_context("key_group", kg))?;
        let raw;
        let records: &[u8] = if flags & FLAG_ZSTD != 0 {
            raw = format::decompress_zstd(
                &stored,
                u64::from(raw_len),
                u64::from(MAX_BLOCK_LEN),
                &data,
            )
            .map_err(|e| e.with_context("key_group", kg))?;
            &raw
        } else {
            if stored.len() != raw_len as usize {
                return Err(block_err("snapshot block has the wrong length")
                    .with_context("stored_len", stored_len)
                    .with_context("raw_len", raw_len));
            }
            &stored
        };
        parse_records(&header, version, kg, Reader::new(records, &path), visit).map_err(|e| {
            e.with_context("key_group", kg)
                .with_context("block_offset", at)
        })?;
        last_kg = Some(kg);
        at = block_end.unwrap_or(end);
    }
    Ok(Some(header))
}

/// Parses the records of one block; offsets in errors count from the start of the block's
/// (decompressed) records.
fn parse_records(
    header: &KeyedSnapshotHeader,
    version: u16,
    key_group: u32,
    mut r: Reader<'_>,
    visit: &mut dyn FnMut(&KeyedSnapshotHeader, Record<'_>) -> Result<()>,
) -> Result<()> {
    /// A field: its length (a varint in version 2, a u32 in version 1) and its bytes.
    fn field<'a>(r: &mut Reader<'a>, version: u16, what: &'static str) -> Result<&'a [u8]> {
        let len = if version >= 2 {
            r.varint(u64::from(u32::MAX), what)?
        } else {
            u64::from(r.u32(what)?)
        };
        r.bytes(len, what)
    }
    while !r.is_empty() {
        let at = r.clone();
        let state = if version >= 2 {
            r.varint(u64::from(u16::MAX), "state index")? as u16
        } else {
            r.u16("state index")?
        };
        let Some(meta) = header.states.get(usize::from(state)) else {
            return Err(at
                .error("snapshot record names an unknown state")
                .with_context("state", state));
        };
        let key = field(&mut r, version, "key")?;
        let namespace = field(&mut r, version, "namespace")?;
        let user_key = if meta.kind == StateKind::Map {
            Some(field(&mut r, version, "user key")?)
        } else {
            None
        };
        let value = field(&mut r, version, "value")?;
        visit(
            header,
            Record {
                key_group,
                state,
                key,
                namespace,
                user_key,
                value,
            },
        )
        .map_err(|e| at.locate(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handles::StreamStateHandle;

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
