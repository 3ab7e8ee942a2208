//! The RocksDB key layout of keyed state, as Flink's:
//!
//! ```text
//! key = key_group (big-endian, 1 byte when max parallelism <= 128, else 2)
//!     | varint(len) serialized key | varint(len) serialized namespace
//!     | serialized map key (map state only: the rest of the key)
//! ```
//!
//! A key group is one contiguous range of keys; the entries of one map are one contiguous
//! range (the prefix up to the namespace), and lengths make every prefix unambiguous, so
//! keys can be split without knowing their types (restores and full snapshots of states
//! that were not registered again).

use cornerstone_backend_api::{Error, Result};

/// The width of the key-group prefix for `max_parallelism` key groups.
pub(crate) fn prefix_len(max_parallelism: u32) -> usize {
    if max_parallelism <= 128 { 1 } else { 2 }
}

/// Appends the key-group prefix.
#[inline]
pub(crate) fn push_key_group(out: &mut Vec<u8>, key_group: u32, prefix_len: usize) {
    if prefix_len == 1 {
        out.push(key_group as u8);
    } else {
        out.extend_from_slice(&(key_group as u16).to_be_bytes());
    }
}

/// The key group of a stored key (its prefix), if the key is long enough to hold one.
pub(crate) fn key_group_of(raw: &[u8], prefix_len: usize) -> Option<u32> {
    if prefix_len == 1 {
        raw.first().map(|b| u32::from(*b))
    } else {
        raw.first_chunk::<2>()
            .map(|b| u32::from(u16::from_be_bytes(*b)))
    }
}

/// The key-group prefix alone, as a range bound (`key_group` may be the max parallelism,
/// as the exclusive end of the last key group).
pub(crate) fn key_group_bound(key_group: u32, prefix_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    push_key_group(&mut out, key_group, prefix_len);
    out
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut n: usize = 0;
    for (i, b) in bytes.iter().enumerate().take(5) {
        n |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// Appends `bytes` with their length.
#[inline]
pub(crate) fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    push_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Takes one length-prefixed field off the front of `rest`.
fn take_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let bytes: &'a [u8] = rest;
    let (len, n) = read_varint(bytes)?;
    let end = n.checked_add(len).filter(|e| *e <= bytes.len())?;
    *rest = &bytes[end..];
    Some(&bytes[n..end])
}

/// A stored key split into its parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitKey<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) namespace: &'a [u8],
    /// The map key (empty for value and list state).
    pub(crate) rest: &'a [u8],
}

/// Splits a stored key.
///
/// # Errors
/// [`cornerstone_backend_api::ErrorKind::Corrupted`] when the key is malformed.
pub(crate) fn split(raw: &[u8], prefix_len: usize) -> Result<SplitKey<'_>> {
    let bad =
        || Error::corrupted("malformed key in the RocksDB state").with_context("len", raw.len());
    if raw.len() < prefix_len {
        return Err(bad());
    }
    let mut rest = &raw[prefix_len..];
    let key = take_field(&mut rest).ok_or_else(bad)?;
    let namespace = take_field(&mut rest).ok_or_else(bad)?;
    Ok(SplitKey {
        key,
        namespace,
        rest,
    })
}

/// The key-group prefix and the length-prefixed key of a stored key: the prefix that
/// RocksDB hashes into the buckets of the memtable (every namespace and map entry of one
/// key shares it). A key too short to hold one is its own prefix.
#[inline]
fn key_part(raw: &[u8], prefix_len: usize) -> &[u8] {
    let Some(rest) = raw.get(prefix_len..) else {
        return raw;
    };
    read_varint(rest)
        .and_then(|(len, n)| raw.get(..prefix_len + n + len))
        .unwrap_or(raw)
}

/// [`key_part`] with a 1-byte key-group prefix (a RocksDB prefix extractor).
pub(crate) fn key_part_1(raw: &[u8]) -> &[u8] {
    key_part(raw, 1)
}

/// [`key_part`] with a 2-byte key-group prefix (a RocksDB prefix extractor).
pub(crate) fn key_part_2(raw: &[u8]) -> &[u8] {
    key_part(raw, 2)
}

/// The smallest key above every key that starts with `prefix`, if any.
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last != 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cornerstone_backend_api::spi::codec;

    #[test]
    fn keys_split_back_into_their_parts() {
        for prefix in [1usize, 2] {
            let mut out = Vec::new();
            push_key_group(&mut out, 77, prefix);
            let long = "x".repeat(300);
            codec::encode_len_prefixed(&long, &mut out).unwrap();
            codec::encode_len_prefixed(&5u64, &mut out).unwrap();
            out.extend_from_slice(b"uk");
            let s = split(&out, prefix).unwrap();
            assert_eq!(&out[..prefix], &key_group_bound(77, prefix)[..]);
            assert_eq!(key_group_of(&out, prefix), Some(77));
            assert_eq!(key_group_of(&out[..prefix - 1], prefix), None);
            assert_eq!(s.key, codec::encode(&long).unwrap());
            assert_eq!(s.namespace, 5u64.to_be_bytes());
            assert_eq!(s.rest, b"uk");
        }
        assert!(split(&[1, 9, 0], 1).is_err());
        assert!(split(&[], 2).is_err());
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
    }

    #[test]
    fn the_key_part_is_the_key_group_and_the_key() {
        for prefix in [1usize, 2] {
            let mut out = Vec::new();
            push_key_group(&mut out, 77, prefix);
            let long = "y".repeat(200);
            codec::encode_len_prefixed(&long, &mut out).unwrap();
            let key_end = out.len();
            codec::encode_len_prefixed(&5u64, &mut out).unwrap();
            out.extend_from_slice(b"uk");
            let part = if prefix == 1 { key_part_1 } else { key_part_2 };
            assert_eq!(part(&out), &out[..key_end]);
            assert_eq!(part(&out[..key_end]), &out[..key_end]);
            // Too short to hold a key: the whole slice (a key-group bound, a cut key).
            assert_eq!(part(&out[..prefix]), &out[..prefix]);
            assert_eq!(part(&out[..key_end - 1]), &out[..key_end - 1]);
        }
    }
}
