//! `CSOP`: the operator-state stream of one subtask.
//!
//! ```text
//! stream  = magic "CSOP" | version u16 (1) | element*
//! element = length u32 | bytes (the element serialized with crate::spi::codec)
//! ```
//!
//! The stream has no index of its own: the [`OperatorStateHandle`] in `_metadata` records,
//! per state name, the offset of each of its elements, so a rescale can hand out elements
//! without rewriting the stream. All integers are big-endian.

use super::{Reader, magic_and_version};
use crate::error::{Error, Result};
use crate::handles::{OperatorStateHandle, OperatorStateMeta};

/// The magic number of an operator-state stream.
pub const MAGIC: [u8; 4] = *b"CSOP";
/// The format version written.
pub const VERSION: u16 = 1;
/// The oldest format version read.
pub const MIN_VERSION: u16 = 1;
/// The length of the preamble (magic and version) that precedes the first element.
pub const PREAMBLE_LEN: u64 = 6;

/// The preamble of a stream in the current version.
pub fn preamble() -> [u8; PREAMBLE_LEN as usize] {
    let v = VERSION.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1]]
}

/// The length prefix of an element of `len` bytes.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] for an element of 4 GiB or more.
pub fn element_prefix(len: usize) -> Result<[u8; 4]> {
    u32::try_from(len).map(u32::to_be_bytes).map_err(|_| {
        Error::invalid_input("an operator state element is 4 GiB or larger")
            .with_context("len", len)
    })
}

/// A whole operator-state stream whose preamble was checked; elements are read by offset.
#[derive(Debug, Clone, Copy)]
pub struct OperatorStream<'a> {
    bytes: &'a [u8],
    name: &'a str,
}

impl<'a> OperatorStream<'a> {
    /// Checks the preamble of `bytes`, the stream called `name` (its path, for errors).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupted`] for a wrong magic or a short stream;
    /// [`crate::ErrorKind::Unsupported`] for an unknown version.
    pub fn parse(bytes: &'a [u8], name: &'a str) -> Result<Self> {
        magic_and_version(
            &mut Reader::new(bytes, name),
            MAGIC,
            MIN_VERSION..=VERSION,
            "operator state (CSOP)",
        )?;
        Ok(OperatorStream { bytes, name })
    }

    /// The serialized element that starts at `offset`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupted`] naming the path and offset when the offset is inside
    /// the preamble or the element runs past the end of the stream.
    pub fn element_at(&self, offset: u64) -> Result<&'a [u8]> {
        let start = usize::try_from(offset)
            .ok()
            .filter(|&s| offset >= PREAMBLE_LEN && s <= self.bytes.len());
        let Some(start) = start else {
            return Err(Error::corrupted(
                "operator state element offset outside the stream's elements",
            )
            .with_context("path", self.name)
            .with_context("offset", offset)
            .with_context("stream_len", self.bytes.len()));
        };
        let mut r = Reader::new(&self.bytes[start..], self.name).at_offset(offset);
        let len = r.u32("element length")?;
        r.bytes(u64::from(len), "element")
    }

    /// The elements of one state, in order.
    ///
    /// # Errors
    /// As [`element_at`](Self::element_at), naming the state.
    pub fn elements(&self, name: &str, meta: &OperatorStateMeta) -> Result<Vec<&'a [u8]>> {
        meta.offsets
            .iter()
            .map(|&o| {
                self.element_at(o)
                    .map_err(|e| e.with_context("state", name))
            })
            .collect()
    }
}

/// Checks every element offset of `handle` against `bytes`, its stream: the whole check a
/// reader of the stream makes (used by the fuzz target and by `verify`-style tools).
///
/// # Errors
/// As [`OperatorStream::parse`] and [`OperatorStream::elements`].
pub fn check(handle: &OperatorStateHandle, bytes: &[u8], name: &str) -> Result<usize> {
    let stream = OperatorStream::parse(bytes, name)?;
    let mut n = 0;
    for (state, meta) in &handle.states {
        n += stream.elements(state, meta)?.len();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn elements_are_bounded_by_the_stream() {
        let mut bytes = preamble().to_vec();
        bytes.extend_from_slice(&element_prefix(2).unwrap());
        bytes.extend_from_slice(b"ab");
        let s = OperatorStream::parse(&bytes, "p").unwrap();
        assert_eq!(s.element_at(6).unwrap(), b"ab");
        for offset in [0, 5, 7, 12, u64::MAX - 2, u64::MAX] {
            let e = s.element_at(offset).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupted, "{offset}: {e}");
            assert_eq!(e.context("path"), Some("p"));
        }
        bytes[7] = 0xff; // the length now runs past the end
        let e = OperatorStream::parse(&bytes, "p")
            .unwrap()
            .element_at(6)
            .unwrap_err();
        assert_eq!(e.context("offset"), Some("10"), "{e}");
        assert_eq!(
            OperatorStream::parse(b"CSOP\0\x02", "p")
                .unwrap_err()
                .kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            OperatorStream::parse(b"CSO", "p").unwrap_err().kind(),
            ErrorKind::Corrupted
        );
    }
}
