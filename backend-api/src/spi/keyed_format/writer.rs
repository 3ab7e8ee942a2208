//! The writer of the stream ([`KeyedSnapshotWriter`]).

use std::io::Write;

use integer_encoding::VarInt;
use serde::Serialize;

use super::header::{
    BLOCK_HEADER_LEN, BLOCK_TARGET_SIZE, Compression, DELTA_VERSION, FLAG_ZSTD,
    KeyedSnapshotHeader, MAGIC, MAX_HEADER_LEN, PREAMBLE_LEN, VERSION, encode_header,
};
use crate::descriptor::StateKind;
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::spi::codec;

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
    /// A delta stream ([`DELTA_VERSION`]): record indexes carry the removal bit.
    delta: bool,
}

fn write_all<W: Write>(out: &mut W, bytes: &[u8], position: &mut u64) -> Result<()> {
    out.write_all(bytes)
        .map_err(|e| crate::stream::stream_write_error("write keyed snapshot", e))?;
    *position += bytes.len() as u64;
    Ok(())
}

impl<W: Write> KeyedSnapshotWriter<W> {
    /// Starts a full snapshot stream for the key groups of `range`, writing the header.
    ///
    /// # Errors
    /// Write errors of `out`.
    pub fn new(
        out: W,
        header: &KeyedSnapshotHeader,
        range: KeyGroupRange,
        compression: Compression,
    ) -> Result<Self> {
        Self::start(out, header, range, compression, false)
    }

    /// Starts a delta stream ([`DELTA_VERSION`]) for the key groups of `range`: records
    /// and [removals](Self::removal), applied in order over the snapshot before.
    ///
    /// # Errors
    /// Write errors of `out`.
    pub fn delta(
        out: W,
        header: &KeyedSnapshotHeader,
        range: KeyGroupRange,
        compression: Compression,
    ) -> Result<Self> {
        Self::start(out, header, range, compression, true)
    }

    fn start(
        mut out: W,
        header: &KeyedSnapshotHeader,
        range: KeyGroupRange,
        compression: Compression,
        delta: bool,
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
        let version = if delta { DELTA_VERSION } else { VERSION };
        preamble.extend_from_slice(&version.to_be_bytes());
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
            delta,
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

    fn start_record(&mut self, state: u16, has_user_key: bool, removed: bool) -> Result<()> {
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
        if self.delta {
            self.varint((u64::from(state) << 1) | u64::from(removed));
        } else if removed {
            return Err(Error::internal(
                "a removal written to a full snapshot stream",
            ));
        } else {
            self.varint(u64::from(state));
        }
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
        self.start_record(state, user_key.is_some(), false)?;
        self.encoded_field(key)?;
        self.encoded_field(ns)?;
        if let Some(uk) = user_key {
            self.encoded_field(uk)?;
        }
        self.encoded_field(value)?;
        self.maybe_flush()
    }

    /// Writes the removal of (`key`, `ns`) of a table state to a delta stream (a map
    /// state's record has an empty user key, every record an empty value).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Internal`] on a full snapshot stream; serialization and write
    /// errors.
    pub fn removal<K, N>(&mut self, state: u16, key: &K, ns: &N) -> Result<()>
    where
        K: Serialize + ?Sized,
        N: Serialize + ?Sized,
    {
        let is_map = self.kinds.get(state as usize) == Some(&StateKind::Map);
        self.start_record(state, is_map, true)?;
        self.encoded_field(key)?;
        self.encoded_field(ns)?;
        if is_map {
            self.field(&[]);
        }
        self.field(&[]);
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
        self.raw(state, key, ns, user_key, value, false)
    }

    /// Writes the removal of one record of already serialized fields to a delta stream (a
    /// timers state's value is the timestamp of the timer removed).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Internal`] on a full snapshot stream; write errors.
    pub fn raw_removal(
        &mut self,
        state: u16,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<()> {
        self.raw(state, key, ns, user_key, value, true)
    }

    fn raw(
        &mut self,
        state: u16,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        value: &[u8],
        removed: bool,
    ) -> Result<()> {
        self.start_record(state, user_key.is_some(), removed)?;
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
