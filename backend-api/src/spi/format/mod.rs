//! Every on-storage format of Cornerstone, and the one set of bounded primitives that their
//! encoders and decoders share.
//!
//! | magic  | what                                   | versions read | written | module |
//! |--------|----------------------------------------|---------------|---------|--------|
//! | `CSKG` | keyed snapshot (every backend): full, or a changelog delta | 1, 2, 3 | 2 (full), 3 (delta) | [`crate::spi::keyed_format`] |
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
mod reader;

pub use reader::{Reader, magic_and_version};

use std::io::Read;

use integer_encoding::VarInt;

use crate::error::{Error, ErrorKind, Result};
use crate::handles::StreamStateHandle;

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
