//! The bounded reader of stored frames ([`Reader`]) and the check of a frame's magic number
//! and version ([`magic_and_version`]).

use std::ops::RangeInclusive;

use integer_encoding::VarInt;

use crate::error::{Error, ErrorKind, Result};

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
    #[inline]
    pub fn bytes(&mut self, len: u64, field: &'static str) -> Result<&'a [u8]> {
        let at = self.at;
        let end = usize::try_from(len).ok().and_then(|n| at.checked_add(n));
        match end.and_then(|end| self.bytes.get(at..end)) {
            Some(out) => {
                self.at += out.len();
                Ok(out)
            }
            None => Err(self.past_end(len, field)),
        }
    }

    #[cold]
    #[inline(never)]
    fn past_end(&self, len: u64, field: &'static str) -> Error {
        self.error("a length runs past the end of its frame")
            .with_context("field", field)
            .with_context("length", len)
            .with_context("remaining", self.remaining())
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
    #[inline]
    pub fn varint(&mut self, max: u64, field: &'static str) -> Result<u64> {
        // One byte (below 128) is the common case: record lengths, state indexes.
        match self.bytes.get(self.at) {
            Some(&b) if b < 0x80 && u64::from(b) <= max => {
                self.at += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(max, field),
        }
    }

    /// [`varint`](Self::varint) of more than one byte, and its errors.
    #[inline(never)]
    fn varint_long(&mut self, max: u64, field: &'static str) -> Result<u64> {
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

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn varints_of_one_and_more_bytes_are_bounded() {
        // 5, 127, 128 (two bytes), 300 (two bytes), 7 above its max, a truncated varint.
        let bytes = [5, 127, 0x80, 0x01, 0xac, 0x02, 7, 0x80];
        let mut r = Reader::new(&bytes, "f");
        assert_eq!(r.varint(5, "a").unwrap(), 5);
        assert_eq!(r.varint(127, "b").unwrap(), 127);
        assert_eq!(r.varint(128, "c").unwrap(), 128);
        assert_eq!(r.offset(), 4);
        let e = r.clone().varint(299, "d").unwrap_err();
        assert!(e.to_string().contains("out of bounds"), "{e}");
        assert!(e.to_string().contains("max=299"), "{e}");
        assert_eq!(r.varint(300, "d").unwrap(), 300);
        let e = r.varint(6, "e").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert!(e.to_string().contains("value=7"), "{e}");
        assert!(e.to_string().contains("offset=6"), "{e}");
        let mut r = Reader::new(&bytes[7..], "f");
        let e = r.varint(u64::MAX, "f").unwrap_err();
        assert!(e.to_string().contains("bad varint"), "{e}");
    }

    #[test]
    fn bytes_stop_at_the_end_of_the_frame() {
        let bytes = [1, 2, 3];
        let mut r = Reader::new(&bytes, "f").at_offset(10);
        assert_eq!(r.bytes(2, "a").unwrap(), &[1, 2]);
        assert_eq!(r.rest(), &[3]);
        for len in [2, u64::MAX] {
            let e = r.bytes(len, "b").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupted);
            let text = e.to_string();
            assert!(
                text.contains("field=b") && text.contains("offset=12"),
                "{text}"
            );
            assert!(text.contains("remaining=1"), "{text}");
        }
        assert_eq!(r.bytes(1, "c").unwrap(), &[3]);
        assert!(r.is_empty());
    }
}
