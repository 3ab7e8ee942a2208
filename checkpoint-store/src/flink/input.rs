//! The bounded reader of what Java's `DataOutputStream` wrote: big-endian integers, Java
//! booleans and `writeUTF` strings (modified UTF-8 behind a u16 length).
//!
//! Every read checks the bytes that remain before it slices or allocates, and every count is
//! checked against the smallest encoding of one item times the count (see
//! [`Input::count`]). Errors are [`ErrorKind::Corrupted`](cornerstone_backend_api::ErrorKind)
//! and name the field, the byte offset (from the start of the `_metadata` file), the value read
//! and what was allowed.

use cornerstone_backend_api::{Error, Result};

/// A [`ErrorKind::Corrupted`](cornerstone_backend_api::ErrorKind) error about `field` at
/// `offset` (counted from the start of the file).
pub(crate) fn corrupt(message: String, field: &'static str, offset: usize) -> Error {
    Error::corrupted(message)
        .with_context("format", "flink _metadata")
        .with_context("field", field)
        .with_context("offset", offset)
}

/// Reads Java `DataInputStream` data from a byte slice that is a part of the file starting at
/// `base`.
#[derive(Debug, Clone)]
pub(crate) struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Input<'a> {
    /// A reader of the whole file.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Input {
            bytes,
            pos: 0,
            base: 0,
        }
    }

    /// A reader of `bytes`, which start at `base` in the file.
    pub(crate) fn part(bytes: &'a [u8], base: usize) -> Self {
        Input {
            bytes,
            pos: 0,
            base,
        }
    }

    /// The offset of the next byte, counted from the start of the file.
    pub(crate) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// The number of bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The bytes left, without consuming them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end));
        match slice {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(corrupt(
                format!(
                    "{field} needs {n} bytes, {} remain at offset {}",
                    self.remaining(),
                    self.offset()
                ),
                field,
                self.offset(),
            )
            .with_context("needed", n)
            .with_context("remaining", self.remaining())),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let at = self.offset();
        let slice = self.take(N, field)?;
        <[u8; N]>::try_from(slice)
            .map_err(|_| corrupt(format!("{field} is not {N} bytes long"), field, at))
    }

    /// A byte (`readByte`, `read`), unsigned.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    /// A Java boolean (`readBoolean`): any byte but 0 is true, as Java reads it.
    pub(crate) fn java_bool(&mut self, field: &'static str) -> Result<bool> {
        Ok(self.u8(field)? != 0)
    }

    /// A big-endian u32 (the bits of a Java `int`).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A Java `int`.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// A Java `long`.
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// A Java `long` that must not be negative (a size, a position).
    pub(crate) fn size(&mut self, field: &'static str) -> Result<u64> {
        let at = self.offset();
        let v = self.i64(field)?;
        u64::try_from(v).map_err(|_| {
            corrupt(format!("{field} {v} at offset {at} is negative"), field, at)
                .with_context("value", v)
        })
    }

    /// A count (a Java `int`) of items that each take at least `min_item` bytes: negative
    /// counts and counts whose items cannot fit in the bytes that remain are refused before
    /// anything is allocated for them.
    pub(crate) fn count(&mut self, field: &'static str, min_item: usize) -> Result<usize> {
        let at = self.offset();
        let n = self.i32(field)?;
        self.check_count(n, at, field, min_item)
    }

    /// Checks a count `n` read at `at` as [`count`](Self::count) does.
    pub(crate) fn check_count(
        &self,
        n: i32,
        at: usize,
        field: &'static str,
        min_item: usize,
    ) -> Result<usize> {
        let Ok(count) = usize::try_from(n) else {
            return Err(
                corrupt(format!("{field} {n} at offset {at} is negative"), field, at)
                    .with_context("value", n),
            );
        };
        let per_item = min_item.max(1) as u64;
        let needed = (count as u64).saturating_mul(per_item);
        if needed > self.remaining() as u64 {
            return Err(corrupt(
                format!(
                    "{field} {count} at offset {at} needs at least {needed} bytes, {} remain \
                     at offset {}",
                    self.remaining(),
                    self.offset()
                ),
                field,
                at,
            )
            .with_context("value", count)
            .with_context("needed", needed)
            .with_context("remaining", self.remaining()));
        }
        Ok(count)
    }

    /// A byte array behind a Java `int` length.
    pub(crate) fn int_len_bytes(&mut self, field: &'static str) -> Result<&'a [u8]> {
        let n = self.count(field, 1)?;
        self.take(n, field)
    }

    /// A string written by `DataOutputStream.writeUTF`: a u16 length and that many bytes of
    /// modified UTF-8, decoded as Java's `readUTF` does (overlong forms included), then
    /// converted to a Rust string: an unpaired UTF-16 surrogate is refused, since a Rust string
    /// cannot hold it and replacing it would change the name.
    pub(crate) fn utf(&mut self, field: &'static str) -> Result<String> {
        let at = self.offset();
        let len = usize::from(u16::from_be_bytes(self.array(field)?));
        let data_at = self.offset();
        let bytes = self.take(len, field)?;
        decode_modified_utf8(bytes).map_err(|(problem, index)| {
            let offset = data_at.saturating_add(index);
            corrupt(
                format!(
                    "{field} (a string of {len} bytes at offset {at}) {problem} at offset {offset}"
                ),
                field,
                offset,
            )
            .with_context("string_offset", at)
        })
    }
}

/// Decodes Java's modified UTF-8 (as `DataInputStream.readUTF`), returning what is wrong and
/// the index of the byte where it is on failure.
pub(crate) fn decode_modified_utf8(
    bytes: &[u8],
) -> std::result::Result<String, (&'static str, usize)> {
    if bytes.is_ascii() {
        // ASCII (including a raw 0 byte, which Java accepts) is valid UTF-8 as is.
        return std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| ("is not valid ASCII", e.valid_up_to()));
    }
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut starts: Vec<usize> = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        let unit = match b >> 4 {
            0..=7 => {
                i += 1;
                u16::from(b)
            }
            12 | 13 => {
                let b2 = continuation(bytes, i, 1)?;
                i += 2;
                (u16::from(b & 0x1f) << 6) | u16::from(b2 & 0x3f)
            }
            14 => {
                let b2 = continuation(bytes, i, 1)?;
                let b3 = continuation(bytes, i, 2)?;
                i += 3;
                (u16::from(b & 0x0f) << 12) | (u16::from(b2 & 0x3f) << 6) | u16::from(b3 & 0x3f)
            }
            _ => return Err(("has a malformed byte (not a valid first byte)", i)),
        };
        starts.push(i);
        units.push(unit);
    }
    let mut out = String::with_capacity(bytes.len());
    // The index of the next UTF-16 unit: `starts[k]` is where the unit after unit `k` starts.
    let mut unit = 0usize;
    for decoded in char::decode_utf16(units.iter().copied()) {
        match decoded {
            Ok(c) => {
                out.push(c);
                unit += c.len_utf16();
            }
            Err(_) => {
                let index = unit
                    .checked_sub(1)
                    .and_then(|p| starts.get(p))
                    .copied()
                    .unwrap_or(0);
                return Err(("holds an unpaired UTF-16 surrogate", index));
            }
        }
    }
    Ok(out)
}

/// The `k`-th continuation byte of the character at `i`.
fn continuation(
    bytes: &[u8],
    i: usize,
    k: usize,
) -> std::result::Result<u8, (&'static str, usize)> {
    let at = i.saturating_add(k);
    match bytes.get(at) {
        None => Err(("ends with a partial character", i)),
        Some(&b) if b & 0xc0 == 0x80 => Ok(b),
        Some(_) => Err(("has a malformed character (bad continuation byte)", at)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use cornerstone_backend_api::ErrorKind;

    fn utf_input(data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn modified_utf8_ascii_two_and_three_byte_forms() {
        assert_eq!(decode_modified_utf8(b"abc").unwrap(), "abc");
        assert_eq!(decode_modified_utf8(b"").unwrap(), "");
        // NUL as Java writes it (0xc0 0x80) and as a raw byte (which Java also reads).
        assert_eq!(decode_modified_utf8(&[0xc0, 0x80]).unwrap(), "\0");
        assert_eq!(decode_modified_utf8(&[0x00]).unwrap(), "\0");
        // é (U+00E9) and € (U+20AC).
        assert_eq!(decode_modified_utf8(&[0xc3, 0xa9]).unwrap(), "é");
        assert_eq!(decode_modified_utf8(&[0xe2, 0x82, 0xac]).unwrap(), "€");
        // A supplementary character is a surrogate pair, each unit in 3 bytes (CESU-8).
        let pair = [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80];
        assert_eq!(decode_modified_utf8(&pair).unwrap(), "\u{1F600}");
        // Overlong forms are read as Java reads them.
        assert_eq!(decode_modified_utf8(&[0xc1, 0x81]).unwrap(), "A");
    }

    #[test]
    fn modified_utf8_errors_name_the_byte() {
        assert_eq!(decode_modified_utf8(&[b'a', 0x80]).unwrap_err().1, 1);
        assert_eq!(decode_modified_utf8(&[0xf0, 0x80]).unwrap_err().1, 0);
        assert_eq!(
            decode_modified_utf8(&[b'a', 0xc3]).unwrap_err(),
            ("ends with a partial character", 1)
        );
        assert_eq!(
            decode_modified_utf8(&[0xe2, 0x82]).unwrap_err().0,
            "ends with a partial character"
        );
        assert_eq!(decode_modified_utf8(&[0xc3, 0x29]).unwrap_err().1, 1);
        // A lone high surrogate, then 'x'.
        let lone = [b'a', 0xed, 0xa0, 0xbd, b'x'];
        assert_eq!(
            decode_modified_utf8(&lone).unwrap_err(),
            ("holds an unpaired UTF-16 surrogate", 1)
        );
    }

    #[test]
    fn utf_reads_the_length_and_reports_offsets() {
        let bytes = utf_input("héllo".as_bytes());
        let mut r = Input::new(&bytes);
        assert_eq!(r.utf("name").unwrap(), "héllo");
        assert!(r.rest().is_empty());

        // A length beyond the input.
        let mut r = Input::new(&[0x00, 0x10, b'a']);
        let e = r.utf("state name").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert_eq!(e.context("field"), Some("state name"));
        assert_eq!(e.context("needed"), Some("16"));
        assert_eq!(e.context("remaining"), Some("1"));

        // A bad byte: the offset is the byte's, in the file (base 100).
        let bytes = utf_input(&[b'a', b'b', 0xff]);
        let mut r = Input::part(&bytes, 100);
        let e = r.utf("path").unwrap_err();
        assert_eq!(e.context("offset"), Some("104"));
        assert_eq!(e.context("string_offset"), Some("100"));
    }

    #[test]
    fn integers_are_big_endian_and_bounded() {
        let bytes = [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 7, 1];
        let mut r = Input::new(&bytes);
        assert_eq!(r.i32("a").unwrap(), -2);
        assert_eq!(r.i64("b").unwrap(), 7);
        assert_eq!(r.remaining(), 1);
        let e = r.i32("c").unwrap_err();
        assert_eq!(e.context("offset"), Some("12"));
        assert_eq!(e.context("needed"), Some("4"));
        assert_eq!(r.u8("d").unwrap(), 1);
        assert!(r.u8("e").is_err());
        assert_eq!(r.offset(), 13);
    }

    #[test]
    fn sizes_must_not_be_negative() {
        let bytes = (-5i64).to_be_bytes();
        let e = Input::new(&bytes).size("file size").unwrap_err();
        assert_eq!(e.context("value"), Some("-5"));
    }

    #[test]
    fn counts_are_checked_before_allocation() {
        // i32::MAX items of 8 bytes with 4 bytes left.
        let mut bytes = i32::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 4]);
        let e = Input::new(&bytes).count("offset count", 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert_eq!(e.context("value"), Some("2147483647"));
        assert_eq!(e.context("needed"), Some("17179869176"));
        assert_eq!(e.context("remaining"), Some("4"));
        assert!(
            e.message()
                .contains("offset count 2147483647 at offset 0 needs at least 17179869176 bytes, 4 remain at offset 4"),
            "{e}"
        );
        // Negative counts.
        let e = Input::new(&(-1i32).to_be_bytes())
            .count("operator count", 1)
            .unwrap_err();
        assert!(e.message().contains("-1"), "{e}");
        // A count that fits.
        let mut bytes = 2i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(Input::new(&bytes).count("n", 8).unwrap(), 2);
        // Zero items always fit.
        assert_eq!(Input::new(&0i32.to_be_bytes()).count("n", 1000).unwrap(), 0);
    }

    #[test]
    fn int_length_byte_arrays() {
        let mut bytes = 3i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"xyz!");
        let mut r = Input::new(&bytes);
        assert_eq!(r.int_len_bytes("data").unwrap(), b"xyz");
        assert_eq!(r.rest(), b"!");
        let mut bytes = 9i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"xyz");
        assert!(Input::new(&bytes).int_len_bytes("data").is_err());
    }

    #[test]
    fn java_booleans_are_any_non_zero_byte() {
        let mut r = Input::new(&[0, 1, 7]);
        assert!(!r.java_bool("a").unwrap());
        assert!(r.java_bool("b").unwrap());
        assert!(r.java_bool("c").unwrap());
    }
}
