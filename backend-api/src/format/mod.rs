//! Every on-storage format of Cornerstone, and the one set of bounded primitives that their
//! encoders and decoders share.
//!
//! | magic  | what                                   | versions read | written | module |
//! |--------|----------------------------------------|---------------|---------|--------|
//! | `CSKG` | full keyed snapshot (every backend)    | 1, 2          | 2       | [`crate::keyed_format`] |
//! | `CSOP` | operator state of one subtask          | 1             | 1       | [`operator`] |
//! | `CSRI` | meta stream of a RocksDB incremental snapshot | 1      | 1       | [`incremental`] |
//! | `CSMD` | `_metadata` of a checkpoint or savepoint | 1           | 1       | `cornerstone_checkpoint_store::codec`, with [`handles`] |
//!
//! The byte layouts, the compatibility rules and what a reader does with a version it does
//! not know are in `docs/format.md` in the repository.
//!
//! # Bounds
//! Stored bytes are untrusted: a decoder never panics, never loops without consuming input
//! and never allocates more than its input justifies. The rules, which every decoder follows
//! through [`Reader`] and [`decompress_zstd`]:
//! - a length prefix is checked against the bytes left in its enclosing frame (`Reader`)
//!   before anything is allocated; a count of items is checked against the bytes left
//!   divided by the smallest encoding of one item;
//! - a decompression is given a declared output size, capped by a documented constant before
//!   anything is allocated, and fails when the data would produce more (or fewer) bytes;
//! - sums of sizes and offsets use checked arithmetic;
//! - any failure is [`ErrorKind::Corrupted`] naming the file (or what is read) and the byte
//!   offset; an unknown version is [`ErrorKind::Unsupported`] naming the versions read.

pub mod handles;
pub mod incremental;
pub mod operator;

use std::io::Read;
use std::ops::RangeInclusive;

use integer_encoding::VarInt;

use crate::error::{Error, ErrorKind, Result};
use crate::handles::StreamStateHandle;

/// Reads the fields of a stored frame from a byte slice, checking every length against the
/// bytes that are left before allocating or slicing.
///
/// Errors are [`ErrorKind::Corrupted`] with the name of what is read (under the context key
/// `path`, or the one given to [`with_key`](Self::with_key)), the offset of the field
/// (counted from the start of the file when the slice is a part of it, see
/// [`at_offset`](Self::at_offset)) and what was read.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    base: u64,
    key: &'static str,
    name: &'a str,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`, which are the file (or stream) called `name`.
    pub fn new(bytes: &'a [u8], name: &'a str) -> Self {
        Reader {
            bytes,
            at: 0,
            base: 0,
            key: "path",
            name,
        }
    }

    /// The same reader, whose offsets start at `base`: `bytes` is the part of the file that
    /// starts there (or the decompressed content of a part: then `base` is that part's
    /// offset, and the offsets of errors count from the part's start).
    #[must_use]
    pub fn at_offset(mut self, base: u64) -> Self {
        self.base = base;
        self
    }

    /// The same reader, naming what it reads under the context key `key` instead of `path`.
    #[must_use]
    pub fn with_key(mut self, key: &'static str) -> Self {
        self.key = key;
        self
    }

    /// The offset of the next byte, counted from the start of the file.
    pub fn offset(&self) -> u64 {
        self.base + self.at as u64
    }

    /// The number of bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// A [`ErrorKind::Corrupted`] error about the data at the current offset, naming the
    /// file.
    pub fn error(&self, message: &'static str) -> Error {
        Error::corrupted(message)
            .with_context(self.key, self.name)
            .with_context("offset", self.offset())
    }

    /// Adds the file's name and the current offset to an error raised while reading it.
    pub fn locate(&self, e: Error) -> Error {
        e.with_context(self.key, self.name)
            .with_context("offset", self.offset())
    }

    /// The next `len` bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] naming `field` when fewer bytes are left.
    pub fn bytes(&mut self, len: u64, field: &'static str) -> Result<&'a [u8]> {
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                self.error("a length runs past the end of its frame")
                    .with_context("field", field)
                    .with_context("length", len)
                    .with_context("remaining", self.remaining())
            })?;
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    /// The next `N` bytes.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N as u64, field)?);
        Ok(out)
    }

    /// A byte.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian u16.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn u16(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian u32.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian u64.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn u64(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A boolean: one byte, 0 or 1.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes); [`ErrorKind::Corrupted`] for another byte.
    pub fn bool(&mut self, field: &'static str) -> Result<bool> {
        let at = self.clone();
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(at
                .error("a boolean is neither 0 nor 1")
                .with_context("field", field)
                .with_context("byte", b)),
        }
    }

    /// The index of an enum variant (a big-endian u32), which must be below `variants`.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes); [`ErrorKind::Corrupted`] for an unknown variant.
    pub fn variant(&mut self, field: &'static str, variants: u32) -> Result<u32> {
        let at = self.clone();
        let v = self.u32(field)?;
        if v >= variants {
            return Err(at
                .error("unknown variant")
                .with_context("field", field)
                .with_context("variant", v)
                .with_context("variants", variants));
        }
        Ok(v)
    }

    /// A count of items (a big-endian u64) of which each takes at least `min_item_len`
    /// bytes (at least 1 is assumed), checked against the bytes left: a count that cannot
    /// fit is an error before anything is allocated for it.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] naming `field`, the count and the bytes left.
    pub fn count(&mut self, min_item_len: usize, field: &'static str) -> Result<usize> {
        let at = self.clone();
        let n = self.u64(field)?;
        let fits = usize::try_from(n).ok().filter(|&n| {
            n.checked_mul(min_item_len.max(1))
                .is_some_and(|b| b <= self.remaining())
        });
        fits.ok_or_else(|| {
            at.error("a count of items cannot fit in the rest of its frame")
                .with_context("field", field)
                .with_context("count", n)
                .with_context("remaining", self.remaining())
        })
    }

    /// A length-prefixed byte string: a big-endian u64 length and the bytes.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn byte_string(&mut self, field: &'static str) -> Result<&'a [u8]> {
        let len = self.count(1, field)?;
        self.bytes(len as u64, field)
    }

    /// A length-prefixed UTF-8 string.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes); [`ErrorKind::Corrupted`] when not UTF-8.
    pub fn string(&mut self, field: &'static str) -> Result<String> {
        let at = self.clone();
        let bytes = self.byte_string(field)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| {
            at.error("a string is not UTF-8")
                .with_context("field", field)
                .with_source(e)
        })
    }

    /// A stored type name, as the identity it stands for
    /// ([`canonical_identity`](crate::identity::canonical_identity): the
    /// `std::any::type_name` output of earlier releases is mapped to identities).
    ///
    /// # Errors
    /// As [`string`](Self::string).
    pub fn type_identity(&mut self, field: &'static str) -> Result<String> {
        let stored = self.string(field)?;
        Ok(match crate::identity::canonical_identity(&stored) {
            std::borrow::Cow::Borrowed(_) => stored,
            std::borrow::Cow::Owned(identity) => identity,
        })
    }

    /// An optional value: a byte 0 (none) or 1 followed by the value.
    ///
    /// # Errors
    /// As [`bool`](Self::bool); errors of `read`.
    pub fn option<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.bool(field)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A sequence: a count (each item at least `min_item_len` bytes) and the items.
    ///
    /// # Errors
    /// As [`count`](Self::count); errors of `read`.
    pub fn seq<T>(
        &mut self,
        min_item_len: usize,
        field: &'static str,
        mut read: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let n = self.count(min_item_len, field)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(read(self)?);
        }
        Ok(out)
    }

    /// An unsigned LEB128 varint of at most `max`.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] for a truncated or overlong varint, or one above `max`.
    pub fn varint(&mut self, max: u64, field: &'static str) -> Result<u64> {
        let at = self.clone();
        let Some((n, len)) = u64::decode_var(&self.bytes[self.at..]) else {
            return Err(at.error("a bad varint").with_context("field", field));
        };
        self.at += len;
        if n > max {
            return Err(at
                .error("a number out of bounds")
                .with_context("field", field)
                .with_context("value", n)
                .with_context("max", max));
        }
        Ok(n)
    }

    /// Checks that every byte was read.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] naming how many bytes are left.
    pub fn finish(self, what: &'static str) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self
                .error("trailing bytes")
                .with_context("after", what)
                .with_context("trailing", self.remaining()))
        }
    }
}

/// Checks a frame's magic number and version and returns the version.
///
/// # Errors
/// [`ErrorKind::Corrupted`] for a short input or another magic number;
/// [`ErrorKind::Unsupported`] for a version outside `versions`, naming it and the versions
/// read.
pub fn magic_and_version(
    r: &mut Reader<'_>,
    magic: [u8; 4],
    versions: RangeInclusive<u16>,
    format: &'static str,
) -> Result<u16> {
    let found: [u8; 4] = r.array("magic")?;
    if found != magic {
        return Err(r
            .error("wrong magic number")
            .with_context("format", format)
            .with_context("expected", String::from_utf8_lossy(&magic))
            .with_context("actual", format!("{found:02x?}")));
    }
    let version = r.u16("version")?;
    if !versions.contains(&version) {
        return Err(
            Error::new(ErrorKind::Unsupported, "unsupported format version")
                .with_context(r.key, r.name)
                .with_context("format", format)
                .with_context("actual", version)
                .with_context(
                    "supported",
                    format!("{}..={}", versions.start(), versions.end()),
                ),
        );
    }
    Ok(version)
}

/// Checks the CRC32 (IEEE) of `bytes` against `expected`; `at` names where they are.
///
/// # Errors
/// [`ErrorKind::Corrupted`] with both checksums.
pub fn check_crc32(bytes: &[u8], expected: u32, at: &Reader<'_>, what: &'static str) -> Result<()> {
    let actual = crc32fast::hash(bytes);
    if actual != expected {
        return Err(at
            .error("checksum mismatch")
            .with_context("of", what)
            .with_context("expected_crc32", format!("{expected:08x}"))
            .with_context("actual_crc32", format!("{actual:08x}")));
    }
    Ok(())
}

/// Decompresses the zstd data `stored`, which must produce exactly `raw_len` bytes, where
/// `raw_len` is at most `cap` (checked before anything is allocated). zstd decompresses in
/// one pass straight into the output buffer (no window buffer), and refuses data that would
/// produce more than the buffer holds.
///
/// The buffer starts at 1 MiB (or `raw_len` when smaller, or when the frame records its size)
/// and grows fourfold, up to `raw_len`, only when the data fills it: data that declares a
/// large size but does not produce it costs little memory. The worst case, data that really
/// produces its declared size or more, allocates `raw_len` bytes and decompresses at most
/// about 4/3 of it again.
///
/// `at` locates `stored` in errors.
///
/// # Errors
/// [`ErrorKind::Corrupted`] when `raw_len` exceeds `cap`, when `stored` is not zstd, or
/// produces another number of bytes than `raw_len`.
pub fn decompress_zstd(stored: &[u8], raw_len: u64, cap: u64, at: &Reader<'_>) -> Result<Vec<u8>> {
    const FIRST: usize = 1 << 20;
    let len = usize::try_from(raw_len)
        .ok()
        .filter(|_| raw_len <= cap)
        .ok_or_else(|| {
            at.error("declared decompressed size exceeds the cap")
                .with_context("declared", raw_len)
                .with_context("cap", cap)
        })?;
    let recorded = zstd::zstd_safe::get_frame_content_size(stored)
        .ok()
        .flatten();
    if recorded.is_some_and(|r| r != raw_len) {
        return Err(at
            .error("zstd frame records another size than declared")
            .with_context("declared", raw_len)
            .with_context("recorded", recorded.unwrap_or_default()));
    }
    let too_small = |e: &std::io::Error| e.to_string() == "Destination buffer is too small";
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| Error::io("create a zstd decompressor", e))?;
    // A frame that records its size makes zstd refuse any smaller buffer up front.
    let mut size = if recorded.is_some() {
        len
    } else {
        len.min(FIRST)
    };
    let mut out;
    loop {
        // A new buffer, not a grown one: a reallocation would hold both for a moment.
        out = Vec::new();
        out.try_reserve_exact(size).map_err(|_| {
            Error::new(
                ErrorKind::LimitExceeded,
                "cannot allocate the declared decompressed size",
            )
            .with_context("declared", raw_len)
        })?;
        match decompressor.decompress_to_buffer(stored, &mut out) {
            Ok(n) if n == len => return Ok(out),
            Ok(n) => {
                return Err(at
                    .error("zstd data decompresses to another size than declared")
                    .with_context("declared", raw_len)
                    .with_context("actual", n));
            }
            Err(e) if size < len && too_small(&e) => size = size.saturating_mul(4).min(len),
            Err(e) => {
                return Err(at
                    .error("zstd data does not decompress to the declared size")
                    .with_context("declared", raw_len)
                    .with_source(e));
            }
        }
    }
}

/// The decompressed size that the first zstd frame of `stored` records, which must be
/// present and at most `cap`: for formats whose frame header records no raw length
/// (`_metadata`) and whose writer always records the size in the zstd frame.
///
/// # Errors
/// [`ErrorKind::Corrupted`] when `stored` is not a zstd frame, records no size or a size
/// above `cap`.
pub fn zstd_recorded_size(stored: &[u8], cap: u64, at: &Reader<'_>) -> Result<u64> {
    match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n <= cap => Ok(n),
        Ok(Some(n)) => Err(at
            .error("zstd frame records a size above the cap")
            .with_context("recorded", n)
            .with_context("cap", cap)),
        Ok(None) => Err(at.error("zstd frame does not record its decompressed size")),
        Err(e) => Err(at
            .error("not a zstd frame")
            .with_source(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("zstd: {e}"),
            ))),
    }
}

/// Reads `len` bytes from `r` into a buffer that grows with the bytes that arrive (not with
/// the declared length), and checks that all came; `at` locates them in errors.
///
/// # Errors
/// [`ErrorKind::Corrupted`] naming `what`, the file and the offset when fewer bytes come;
/// read errors.
pub fn read_exactly(
    r: &mut dyn Read,
    len: u64,
    at: &Reader<'_>,
    what: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len.min(64 << 10) as usize);
    r.take(len)
        .read_to_end(&mut out)
        .map_err(|e| at.locate(Error::io("read stored bytes", e)))?;
    if out.len() as u64 != len {
        return Err(at
            .error("stored data is truncated")
            .with_context("reading", what)
            .with_context("expected", len)
            .with_context("actual", out.len()));
    }
    Ok(out)
}

/// The path of a stream's file, or `<inline>`, to name it in errors.
pub fn describe(stream: &StreamStateHandle) -> String {
    match stream {
        StreamStateHandle::Inline(_) => "<inline>".to_owned(),
        StreamStateHandle::File(f) => f.path.clone(),
    }
}

/// Appends a big-endian u16.
pub fn put_u16(out: &mut Vec<u8>, n: u16) {
    out.extend_from_slice(&n.to_be_bytes());
}

/// Appends a big-endian u32.
pub fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_be_bytes());
}

/// Appends a big-endian u64.
pub fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_be_bytes());
}

/// Appends a count of items (a big-endian u64).
pub fn put_count(out: &mut Vec<u8>, n: usize) {
    put_u64(out, n as u64);
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a length-prefixed UTF-8 string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// Appends a boolean (one byte, 0 or 1).
pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// Appends an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 10];
    let len = n.encode_var(&mut buf);
    out.extend_from_slice(&buf[..len]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lengths_are_checked_before_slicing() {
        let mut bytes = Vec::new();
        put_u64(&mut bytes, u64::MAX);
        let e = Reader::new(&bytes, "f").string("name").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert_eq!(e.context("path"), Some("f"));
        assert_eq!(e.context("offset"), Some("0"));
        assert_eq!(e.context("count"), Some(&*u64::MAX.to_string()));
        // A count whose items cannot fit, even though the count itself is small.
        let mut bytes = Vec::new();
        put_u64(&mut bytes, 3);
        bytes.extend_from_slice(&[0; 20]);
        let e = Reader::new(&bytes, "f").count(8, "offsets").unwrap_err();
        assert_eq!(e.context("remaining"), Some("20"));
        assert_eq!(Reader::new(&bytes, "f").count(6, "x").unwrap(), 3);
    }

    #[test]
    fn offsets_count_from_the_base() {
        let bytes = [0u8, 2];
        let mut r = Reader::new(&bytes, "f").at_offset(100);
        assert!(!r.bool("a").unwrap());
        let e = r.bool("b").unwrap_err();
        assert_eq!(e.context("offset"), Some("101"));
        assert_eq!(e.context("byte"), Some("2"));
    }

    #[test]
    fn decompression_is_capped_and_exact() {
        let raw = vec![7u8; 100_000];
        let stored = zstd::stream::encode_all(&raw[..], 3).unwrap();
        let at = Reader::new(&[], "f");
        assert_eq!(
            decompress_zstd(&stored, 100_000, 1 << 20, &at).unwrap(),
            raw
        );
        for (declared, cap) in [(99_999, 1 << 20), (100_001, 1 << 20), (100_000, 99_999)] {
            let e = decompress_zstd(&stored, declared, cap, &at).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupted, "{declared} {cap}: {e}");
        }
        let e = decompress_zstd(b"not zstd", 8, 8, &at).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        // Larger than the first buffer: the buffer grows to the declared size.
        let raw: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let stored = zstd::stream::encode_all(&raw[..], 1).unwrap();
        assert_eq!(
            decompress_zstd(&stored, 5_000_000, 1 << 30, &at).unwrap(),
            raw
        );
        let e = decompress_zstd(&stored, 4_999_999, 1 << 30, &at).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        let e = decompress_zstd(&stored, 5_000_001, 1 << 30, &at).unwrap_err();
        assert_eq!(e.context("actual"), Some("5000000"), "{e}");
    }
}
