//! The serialization of keys, namespaces and values: serde + bincode, big-endian,
//! fixed-width integers.
//!
//! Big-endian fixed-width integers make serialized unsigned keys sort like the numbers they
//! encode (RocksDB iterates in byte order) and make a key's bytes, and so its key group,
//! independent of the platform. The encoding is part of the on-storage contract.

use std::cell::RefCell;

use bincode::config::{BigEndian, Configuration, Fixint, Limit};
use integer_encoding::VarInt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod int;

use int::IntBytes;

/// The bincode configuration of every serialized key, namespace and value.
pub const CONFIG: Configuration<BigEndian, Fixint> = bincode::config::standard()
    .with_big_endian()
    .with_fixed_int_encoding();

/// The most memory that decoding one value may claim, 1 GiB: bincode checks each length
/// prefix against it before allocating, so a crafted length in stored bytes (a 4 GiB string
/// in a 20-byte value) is a [`crate::ErrorKind::Corrupted`] error, not an allocation of the
/// declared size or a panic. A value whose decoded form needs more cannot be read.
pub const MAX_DECODED_SIZE: usize = 1 << 30;

/// The configuration of decoding: [`CONFIG`] with the [`MAX_DECODED_SIZE`] limit (which
/// does not change the encoding).
const DECODE: Configuration<BigEndian, Fixint, Limit<MAX_DECODED_SIZE>> =
    CONFIG.with_limit::<MAX_DECODED_SIZE>();

/// Serializes `value` into a new buffer.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] when serde refuses the value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Serializes `value`, appending to `out`.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] when serde refuses the value.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, out, CONFIG)
        .map(|_| ())
        .map_err(|e| {
            Error::invalid_input("value cannot be serialized")
                .with_context("type", std::any::type_name::<T>())
                .with_source(e)
        })
}

/// Decodes a whole `T` from `bytes`; trailing bytes are an error.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the type when the bytes do not decode.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, DECODE) {
        Ok((value, read)) if read == bytes.len() => Ok(value),
        Ok((_, read)) => Err(Error::corrupted("trailing bytes after a serialized value")
            .with_context("type", std::any::type_name::<T>())
            .with_context("len", bytes.len())
            .with_context("read", read)),
        Err(e) => Err(Error::corrupted("bytes do not decode as the expected type")
            .with_context("type", std::any::type_name::<T>())
            .with_context("len", bytes.len())
            .with_context("max_decoded", MAX_DECODED_SIZE)
            .with_source(e)),
    }
}

/// Decodes one `T` from the start of `bytes` and returns it with the number of bytes it
/// took, for walking a sequence of encoded values (the elements of a stored list).
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the type when the bytes do not start with a `T`.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice::<T, _>(bytes, DECODE).map_err(|e| {
        Error::corrupted("bytes do not start with the expected type")
            .with_context("type", std::any::type_name::<T>())
            .with_context("len", bytes.len())
            .with_context("max_decoded", MAX_DECODED_SIZE)
            .with_source(e)
    })
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Serializes `value` onto `out` behind its length, a LEB128 varint, and returns where the
/// value's bytes start. The value is serialized in place behind a one-byte length, which is
/// widened (the bytes moved) only for values of 128 bytes or more. On error `out` is left
/// as it was. (How keyed snapshot records, RocksDB keys and timer entries store a key or
/// namespace.)
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] when serde refuses the value.
#[inline]
pub fn encode_len_prefixed<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<usize> {
    let at = out.len();
    out.push(0);
    if let Err(e) = encode_into(value, out) {
        out.truncate(at);
        return Err(e);
    }
    let len = (out.len() - at - 1) as u64;
    let mut head = [0u8; 10];
    let width = len.encode_var(&mut head);
    if width > 1 {
        out.splice(at + 1..at + 1, std::iter::repeat_n(0, width - 1));
    }
    out[at..at + width].copy_from_slice(&head[..width]);
    Ok(at + width)
}

/// Runs `f` with a cleared, reused thread-local buffer: the allocation-free path of
/// serializing on every state access. A re-entrant call (a `Serialize` impl that itself
/// serializes through here) gets a new buffer instead.
///
/// # Errors
/// The errors of `f`.
#[inline]
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            f(&mut buf)
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Serializes `value` into a reused thread-local buffer ([`with_scratch`]) and passes the
/// bytes to `f`.
///
/// This is the allocation-free path used on every state access to compute key groups.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] when serde refuses the value.
#[inline]
pub fn with_encoded<T: Serialize + ?Sized, R>(value: &T, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    // An integer key (or a newtype of one) without the encoder; other small keys (short
    // tuples and strings) on the stack; larger ones, or those the slice encoder refuses,
    // in the thread's scratch buffer.
    if let Some(int) = IntBytes::of(value) {
        return Ok(f(int.as_slice()));
    }
    let mut stack = [0u8; 64];
    match bincode::serde::encode_into_slice(value, &mut stack, CONFIG) {
        Ok(len) => return Ok(f(&stack[..len])),
        // Dropped out of line: the drop glue of `Result<usize, EncodeError>` is otherwise
        // an out-of-line call on every access, a few percent of a state lookup.
        Err(e) => discard(e),
    }
    with_scratch(|buf| {
        encode_into(value, buf)?;
        Ok(f(buf))
    })
}

/// Drops the slice encoder's error, off the hot path (the caller retries on the heap).
#[cold]
#[inline(never)]
fn discard(e: bincode::error::EncodeError) {
    drop(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_fixed_width() {
        assert_eq!(encode(&1u64).unwrap(), 1u64.to_be_bytes());
        assert_eq!(encode(&-1i32).unwrap(), (-1i32).to_be_bytes());
        assert_eq!(encode(&()).unwrap(), Vec::<u8>::new());
        let s = encode("ab").unwrap();
        assert_eq!(s, [0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn decode_rejects_garbage_and_trailing_bytes() {
        assert_eq!(decode::<u64>(&7u64.to_be_bytes()).unwrap(), 7);
        let err = decode::<u64>(&[1, 2, 3]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupted);
        assert!(decode::<u32>(&[0, 0, 0, 1, 9]).is_err());
        assert!(decode::<String>(&[0, 0, 0, 0, 0, 0, 0, 9, b'x']).is_err());
    }

    /// Length prefixes far beyond the input are errors, not allocations or panics.
    #[test]
    fn crafted_lengths_are_corrupted() {
        for len in [u64::MAX, 1 << 62, 1 << 40, (1 << 30) + 1] {
            let bytes = len.to_be_bytes();
            for e in [
                decode::<Vec<u8>>(&bytes).unwrap_err(),
                decode::<String>(&bytes).unwrap_err(),
                decode::<Vec<String>>(&bytes).unwrap_err(),
                decode::<std::collections::HashMap<u64, u64>>(&bytes).unwrap_err(),
                decode_prefix::<Vec<u64>>(&bytes).unwrap_err(),
            ] {
                assert_eq!(e.kind(), crate::ErrorKind::Corrupted, "{len}: {e}");
            }
        }
        let big = vec![7u8; 1 << 20];
        assert_eq!(decode::<Vec<u8>>(&encode(&big).unwrap()).unwrap(), big);
    }

    #[test]
    fn decode_prefix_reports_the_length_taken() {
        let mut bytes = encode("ab").unwrap();
        bytes.extend_from_slice(&encode(&5u32).unwrap());
        let (s, n) = decode_prefix::<String>(&bytes).unwrap();
        assert_eq!((s.as_str(), n), ("ab", 10));
        assert_eq!(decode_prefix::<u32>(&bytes[n..]).unwrap(), (5, 4));
        let err = decode_prefix::<u64>(&bytes[n..]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupted);
    }
}
