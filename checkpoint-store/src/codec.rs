//! Encoding and decoding of `_metadata` (the fuzz target).
//!
//! # Format, version 1
//! ```text
//! magic    4 bytes  b"CSMD"
//! version  u16 BE   1
//! flags    u8       bit 0: the body is zstd-compressed; other bits must be 0
//! reserved u8       0
//! length   u32 BE   length of the stored body
//! body     length bytes (zstd frame when flag bit 0 is set)
//! crc32    u32 BE   CRC32 (IEEE) of every byte before it
//! ```
//! The (decompressed) body is a sequence of sections, each `tag u16 BE | length u32 BE |
//! payload`. Tags with the high bit set are critical: a reader that does not know one fails
//! with [`ErrorKind::Unsupported`]; unknown tags without it are skipped, so newer optional
//! sections can be added without breaking older readers. Version 1 has two sections, both
//! required, each once: `1` header (checkpoint id, job id, kind, timestamps) and `2`
//! operators (uid, name, parallelism, max parallelism, per subtask handles). Payloads are
//! bincode (big-endian, fixed-width integers).
//!
//! Decoding never panics: every length is checked against the input, the decompressed size
//! is capped, and the decoded metadata is validated ([`CheckpointMetadata::validate`]),
//! including that the recorded state sizes sum without overflowing u64, so that nothing
//! computed from a decoded `_metadata` (such as [`CheckpointMetadata::state_size`]) can
//! overflow either.

use std::io::Read;

use bincode::config::{BigEndian, Configuration, Fixint, Limit};
use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::metadata::{CheckpointMetadata, FORMAT_VERSION, OperatorState, SnapshotKind};

/// The magic number at the start of every `_metadata` file.
pub const MAGIC: [u8; 4] = *b"CSMD";
/// The format versions this crate reads.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];
/// The largest body (after decompression) that decoding accepts: 256 MiB.
pub const MAX_BODY_SIZE: u64 = 256 << 20;

const FLAG_ZSTD: u8 = 1;
const HEADER_LEN: usize = 4 + 2 + 1 + 1 + 4;
const TRAILER_LEN: usize = 4;
const SECTION_HEADER: u16 = 1;
const SECTION_OPERATORS: u16 = 2;
const CRITICAL: u16 = 0x8000;

const BINCODE: Configuration<BigEndian, Fixint, Limit<{ MAX_BODY_SIZE as usize }>> =
    bincode::config::standard()
        .with_big_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ MAX_BODY_SIZE as usize }>();

/// How the body is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataCompression {
    /// Stored as is.
    None,
    /// zstd at the default level (the default: handles compress well).
    #[default]
    Zstd,
}

#[derive(Serialize, Deserialize)]
struct HeaderV1 {
    checkpoint_id: CheckpointId,
    job_id: String,
    kind: SnapshotKind,
    trigger_timestamp_ms: u64,
    completed_timestamp_ms: u64,
}

fn corrupted(msg: &'static str) -> Error {
    Error::corrupted(msg).with_context("file", "_metadata")
}

fn bincode_encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, out, BINCODE)
        .map(|_| ())
        .map_err(|e| Error::invalid_input("metadata cannot be serialized").with_source(e))
}

fn bincode_decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    section: &'static str,
) -> Result<T> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, BINCODE) {
        Ok((value, read)) if read == bytes.len() => Ok(value),
        Ok((_, read)) => Err(corrupted("trailing bytes in a _metadata section")
            .with_context("section", section)
            .with_context("len", bytes.len())
            .with_context("read", read)),
        Err(e) => Err(corrupted("a _metadata section does not decode")
            .with_context("section", section)
            .with_context("len", bytes.len())
            .with_source(e)),
    }
}

fn push_section(body: &mut Vec<u8>, tag: u16, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::invalid_input("a _metadata section exceeds 4 GiB").with_context("tag", tag)
    })?;
    body.extend_from_slice(&tag.to_be_bytes());
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(payload);
    Ok(())
}

/// Encodes `metadata` in the current format ([`FORMAT_VERSION`]).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] when the metadata is invalid
/// ([`CheckpointMetadata::validate`]) or too large.
pub fn encode(metadata: &CheckpointMetadata, compression: MetadataCompression) -> Result<Vec<u8>> {
    metadata
        .validate()
        .map_err(|e| Error::invalid_input("refusing to write invalid metadata").with_source(e))?;
    let mut body = Vec::new();
    let mut payload = Vec::new();
    bincode_encode(
        &HeaderV1 {
            checkpoint_id: metadata.checkpoint_id,
            job_id: metadata.job_id.clone(),
            kind: metadata.kind,
            trigger_timestamp_ms: metadata.trigger_timestamp_ms,
            completed_timestamp_ms: metadata.completed_timestamp_ms,
        },
        &mut payload,
    )?;
    push_section(&mut body, SECTION_HEADER, &payload)?;
    payload.clear();
    bincode_encode(&metadata.operators, &mut payload)?;
    push_section(&mut body, SECTION_OPERATORS, &payload)?;
    if body.len() as u64 > MAX_BODY_SIZE {
        return Err(
            Error::invalid_input("_metadata body exceeds the maximum size")
                .with_context("size", body.len())
                .with_context("max", MAX_BODY_SIZE),
        );
    }

    let (flags, stored) = match compression {
        MetadataCompression::None => (0, body),
        MetadataCompression::Zstd => (
            FLAG_ZSTD,
            zstd::bulk::compress(&body, 0).map_err(|e| Error::io("compress _metadata", e))?,
        ),
    };
    let len =
        u32::try_from(stored.len()).map_err(|_| Error::invalid_input("_metadata exceeds 4 GiB"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + stored.len() + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.push(flags);
    out.push(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&stored);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a `_metadata` file. Never panics, whatever the input.
///
/// # Errors
/// [`ErrorKind::Corrupted`] naming what is wrong (magic, length, checksum, section,
/// decoding, invariant, such as state sizes that overflow u64 when summed, naming the
/// operator and the sum); [`ErrorKind::Unsupported`] for an unknown version or a critical
/// section this version does not know, naming the supported versions.
pub fn decode(bytes: &[u8]) -> Result<CheckpointMetadata> {
    if bytes.len() < 6 {
        return Err(corrupted("_metadata is too short for magic and version")
            .with_context("len", bytes.len()));
    }
    if bytes[..4] != MAGIC {
        return Err(corrupted("_metadata has a wrong magic number")
            .with_context("expected", "CSMD")
            .with_context("actual", format!("{:02x?}", &bytes[..4])));
    }
    let version = be_u16(bytes, 4);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "unsupported _metadata format version",
        )
        .with_context("format", "cornerstone _metadata")
        .with_context("supported", format!("{SUPPORTED_VERSIONS:?}"))
        .with_context("actual", version));
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupted("_metadata is truncated").with_context("len", bytes.len()));
    }
    let stored_len = be_u32(bytes, 8) as usize;
    let expected_len = HEADER_LEN
        .checked_add(stored_len)
        .and_then(|n| n.checked_add(TRAILER_LEN));
    if expected_len != Some(bytes.len()) {
        return Err(corrupted("_metadata length does not match its header")
            .with_context("body_len", stored_len)
            .with_context("file_len", bytes.len()));
    }
    let crc_at = bytes.len() - TRAILER_LEN;
    let expected_crc = be_u32(bytes, crc_at);
    let actual_crc = crc32fast::hash(&bytes[..crc_at]);
    if expected_crc != actual_crc {
        return Err(corrupted("_metadata checksum mismatch")
            .with_context("expected_crc32", format!("{expected_crc:08x}"))
            .with_context("actual_crc32", format!("{actual_crc:08x}")));
    }
    let flags = bytes[6];
    if flags & !FLAG_ZSTD != 0 || bytes[7] != 0 {
        return Err(
            corrupted("_metadata has unknown flags").with_context("flags", format!("{flags:#04x}"))
        );
    }
    let stored = &bytes[HEADER_LEN..crc_at];
    let decompressed;
    let body: &[u8] = if flags & FLAG_ZSTD != 0 {
        decompressed = decompress(stored)?;
        &decompressed
    } else {
        stored
    };
    decode_body(version, body)
}

fn decompress(stored: &[u8]) -> Result<Vec<u8>> {
    let decoder = zstd::stream::read::Decoder::new(stored)
        .map_err(|e| corrupted("_metadata body is not a zstd frame").with_source(e))?;
    let mut out = Vec::new();
    decoder
        .take(MAX_BODY_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupted("_metadata body does not decompress").with_source(e))?;
    if out.len() as u64 > MAX_BODY_SIZE {
        return Err(
            corrupted("_metadata body exceeds the maximum size").with_context("max", MAX_BODY_SIZE)
        );
    }
    Ok(out)
}

fn decode_body(version: u16, body: &[u8]) -> Result<CheckpointMetadata> {
    let mut header: Option<HeaderV1> = None;
    let mut operators: Option<Vec<OperatorState>> = None;
    let mut at = 0usize;
    while at < body.len() {
        if body.len() - at < 6 {
            return Err(corrupted("truncated _metadata section header").with_context("offset", at));
        }
        let tag = be_u16(body, at);
        let len = be_u32(body, at + 2) as usize;
        let start = at + 6;
        if body.len() - start < len {
            return Err(corrupted("_metadata section runs past the body")
                .with_context("tag", tag)
                .with_context("section_len", len)
                .with_context("remaining", body.len() - start));
        }
        let payload = &body[start..start + len];
        match tag {
            SECTION_HEADER if header.is_some() => {
                return Err(corrupted("duplicate _metadata header section"));
            }
            SECTION_HEADER => header = Some(bincode_decode(payload, "header")?),
            SECTION_OPERATORS if operators.is_some() => {
                return Err(corrupted("duplicate _metadata operators section"));
            }
            SECTION_OPERATORS => operators = Some(bincode_decode(payload, "operators")?),
            t if t & CRITICAL != 0 => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "_metadata has a critical section this version does not know",
                )
                .with_context("tag", t)
                .with_context("version", version));
            }
            _ => {} // an optional section of a newer writer: skipped
        }
        at = start + len;
    }
    let header = header.ok_or_else(|| corrupted("_metadata has no header section"))?;
    let operators = operators.ok_or_else(|| corrupted("_metadata has no operators section"))?;
    let metadata = CheckpointMetadata {
        format_version: version,
        checkpoint_id: header.checkpoint_id,
        job_id: header.job_id,
        kind: header.kind,
        trigger_timestamp_ms: header.trigger_timestamp_ms,
        completed_timestamp_ms: header.completed_timestamp_ms,
        operators,
    };
    metadata.validate()?;
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> CheckpointMetadata {
        CheckpointMetadata {
            format_version: FORMAT_VERSION,
            checkpoint_id: CheckpointId(7),
            job_id: "job".into(),
            kind: SnapshotKind::Checkpoint,
            trigger_timestamp_ms: 1,
            completed_timestamp_ms: 2,
            operators: vec![OperatorState::new("u", "n", 1, 128)],
        }
    }

    #[test]
    fn roundtrip_both_compressions() {
        for c in [MetadataCompression::None, MetadataCompression::Zstd] {
            let bytes = encode(&sample(), c).unwrap();
            assert_eq!(decode(&bytes).unwrap(), sample());
        }
    }

    #[test]
    fn unknown_optional_section_is_skipped_and_critical_is_refused() {
        let bytes = encode(&sample(), MetadataCompression::None).unwrap();
        let rebuild = |tag: u16| {
            let mut body = bytes[HEADER_LEN..bytes.len() - 4].to_vec();
            push_section(&mut body, tag, b"future").unwrap();
            let mut out = bytes[..HEADER_LEN].to_vec();
            out[8..12].copy_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
            let crc = crc32fast::hash(&out);
            out.extend_from_slice(&crc.to_be_bytes());
            out
        };
        assert_eq!(decode(&rebuild(9)).unwrap(), sample());
        assert_eq!(
            decode(&rebuild(CRITICAL | 9)).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn version_error_names_versions() {
        let mut bytes = encode(&sample(), MetadataCompression::None).unwrap();
        bytes[5] = 9;
        let e = decode(&bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(e.context("actual"), Some("9"));
    }
}
