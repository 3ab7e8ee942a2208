//! The reader of the stream: its header ([`read_header`]) and the records of a range of key
//! groups ([`read_key_groups`]).

use std::io::Read;

use super::header::{
    BLOCK_HEADER_LEN, DELTA_VERSION, FLAG_ZSTD, KeyedSnapshotHeader, MAGIC, MAX_BLOCK_LEN,
    MAX_HEADER_LEN, MIN_VERSION, PREAMBLE_LEN, decode_header,
};
use super::span::{Block, Stored};
use crate::descriptor::StateKind;
use crate::error::{Error, Result};
use crate::handles::KeyGroupsStateHandle;
use crate::keygroup::{KeyGroupAssigner, KeyGroupRange};
use crate::spi::format::{self, Reader, describe};
use crate::stream::{StateReader, open_stream};

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
    /// Whether the record removes its (key, namespace) (of a timers state: its one timer)
    /// instead of writing it: only in a delta stream.
    pub removed: bool,
    /// Where the record lies in its block: a restore keeps it as stored
    /// ([`Span`](super::Span)) instead of copying its fields.
    pub stored: Stored<'a>,
}

/// The fields of one record.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Serialized key.
    pub key: &'a [u8],
    /// Serialized namespace.
    pub namespace: &'a [u8],
    /// Serialized map key (map state only).
    pub user_key: Option<&'a [u8]>,
    /// Serialized value.
    pub value: &'a [u8],
}

/// The fields of one record of a stream of `version` (lengths are varints from version 2,
/// u32s before).
#[inline]
pub(super) fn read_versioned_fields<'a>(
    r: &mut Reader<'a>,
    version: u16,
    has_user_key: bool,
) -> Result<Fields<'a>> {
    #[inline]
    fn field<'a>(r: &mut Reader<'a>, version: u16, what: &'static str) -> Result<&'a [u8]> {
        let len = if version >= 2 {
            r.varint(u64::from(u32::MAX), what)?
        } else {
            u64::from(r.u32(what)?)
        };
        r.bytes(len, what)
    }
    let key = field(r, version, "key")?;
    let namespace = field(r, version, "namespace")?;
    let user_key = if has_user_key {
        Some(field(r, version, "user key")?)
    } else {
        None
    };
    let value = field(r, version, "value")?;
    Ok(Fields {
        key,
        namespace,
        user_key,
        value,
    })
}

/// The state index of the record at `r` and whether it is a removal (only in delta streams).
#[inline]
pub(super) fn read_state(r: &mut Reader<'_>, version: u16) -> Result<(u16, bool)> {
    Ok(if version >= DELTA_VERSION {
        let tagged = r.varint((u64::from(u16::MAX) << 1) | 1, "state index")?;
        ((tagged >> 1) as u16, tagged & 1 == 1)
    } else if version >= 2 {
        (r.varint(u64::from(u16::MAX), "state index")? as u16, false)
    } else {
        (r.u16("state index")?, false)
    })
}

impl<'a> Record<'a> {
    /// The record's fields.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            key: self.key,
            namespace: self.namespace,
            user_key: self.user_key,
            value: self.value,
        }
    }

    /// Checks that the record's key hashes to its key group in `key_groups`: what
    /// every restore checks, so that a snapshot restored with another max parallelism (or
    /// a damaged key) is refused instead of putting keys where lookups never find them.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupted`] naming the key group and max parallelism.
    pub fn check_key_group(&self, key_groups: KeyGroupAssigner) -> Result<()> {
        if key_groups.of_bytes(self.key) == self.key_group {
            return Ok(());
        }
        Err(Error::corrupted(
            "a restored key does not hash to its key group (was the max parallelism changed?)",
        )
        .with_context("key_group", self.key_group)
        .with_context("max_parallelism", key_groups.max_parallelism()))
    }
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
        MIN_VERSION..=DELTA_VERSION,
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
    // Offsets ascend and stay inside the stream: a stream cut at a key group's start would
    // otherwise read as one whose later key groups are empty.
    let size = handle.stream.size();
    if let Some(at) = handle
        .offsets
        .windows(2)
        .position(|w| w[0] > w[1])
        .or_else(|| handle.offsets.iter().position(|&o| o > size))
    {
        return Err(
            Error::corrupted("keyed state handle offsets are inconsistent")
                .with_context("path", path)
                .with_context("key_group", handle.range.first() + at as u32)
                .with_context("offset", handle.offsets[at])
                .with_context("size", size),
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
        let records = if flags & FLAG_ZSTD != 0 {
            format::decompress_zstd(&stored, u64::from(raw_len), u64::from(MAX_BLOCK_LEN), &data)
                .map_err(|e| e.with_context("key_group", kg))?
        } else {
            if stored.len() != raw_len as usize {
                return Err(block_err("snapshot block has the wrong length")
                    .with_context("stored_len", stored_len)
                    .with_context("raw_len", raw_len));
            }
            stored
        };
        let block = Block::new(records, version);
        parse_records(&header, kg, &block, &path, visit).map_err(|e| {
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
    key_group: u32,
    block: &Block,
    path: &str,
    visit: &mut dyn FnMut(&KeyedSnapshotHeader, Record<'_>) -> Result<()>,
) -> Result<()> {
    let version = block.version();
    let bytes = block.bytes();
    let mut r = Reader::new(bytes, path);
    while !r.is_empty() {
        let at = r.clone();
        let start = bytes.len() - r.remaining();
        let (state, removed) = read_state(&mut r, version)?;
        let Some(meta) = header.states.get(usize::from(state)) else {
            return Err(at
                .error("snapshot record names an unknown state")
                .with_context("state", state));
        };
        let user_key = meta.kind == StateKind::Map;
        let fields = read_versioned_fields(&mut r, version, user_key)?;
        visit(
            header,
            Record {
                key_group,
                state,
                key: fields.key,
                namespace: fields.namespace,
                user_key: fields.user_key,
                value: fields.value,
                removed,
                stored: Stored {
                    block,
                    start,
                    end: bytes.len() - r.remaining(),
                    user_key,
                },
            },
        )
        .map_err(|e| at.locate(e))?;
    }
    Ok(())
}
