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
//! encoded field by field with big-endian fixed-width integers
//! ([`cornerstone_backend_api::spi::format`]; the handles by
//! [`cornerstone_backend_api::spi::format::handles`]), byte for byte what the first writer
//! produced through serde and bincode. The layout is in `docs/format.md`.
//!
//! Decoding never panics: every length is checked against the input, the decompressed size
//! is capped, and the decoded metadata is validated ([`CheckpointMetadata::validate`]),
//! including that the recorded state sizes sum without overflowing u64, so that nothing
//! computed from a decoded `_metadata` (such as [`CheckpointMetadata::state_size`]) can
//! overflow either.

use std::collections::BTreeMap;

use cornerstone_backend_api::spi::format::{self, Reader, handles};
use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};

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
/// The smallest encoding of an operator: two empty strings, two u32 and an empty map.
const MIN_OPERATOR: usize = 8 + 8 + 4 + 4 + 8;
/// The smallest encoding of a subtask entry: its index and two empty sequences.
const MIN_SUBTASK: usize = 4 + 8 + 8;

/// How the body is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataCompression {
    /// Stored as is.
    None,
    /// zstd at the default level (the default: handles compress well).
    #[default]
    Zstd,
}

/// Section 1: checkpoint id u64, job id string, kind u32 (0 checkpoint, 1 savepoint),
/// trigger and completion timestamps u64.
fn put_header(out: &mut Vec<u8>, m: &CheckpointMetadata) {
    format::put_u64(out, m.checkpoint_id.0);
    format::put_str(out, &m.job_id);
    format::put_u32(
        out,
        match m.kind {
            SnapshotKind::Checkpoint => 0,
            SnapshotKind::Savepoint => 1,
        },
    );
    format::put_u64(out, m.trigger_timestamp_ms);
    format::put_u64(out, m.completed_timestamp_ms);
}

struct Header {
    checkpoint_id: CheckpointId,
    job_id: String,
    kind: SnapshotKind,
    trigger_timestamp_ms: u64,
    completed_timestamp_ms: u64,
}

fn header(r: &mut Reader<'_>) -> Result<Header> {
    Ok(Header {
        checkpoint_id: CheckpointId(r.u64("checkpoint id")?),
        job_id: r.string("job id")?,
        kind: match r.variant("snapshot kind", 2)? {
            0 => SnapshotKind::Checkpoint,
            _ => SnapshotKind::Savepoint,
        },
        trigger_timestamp_ms: r.u64("trigger timestamp")?,
        completed_timestamp_ms: r.u64("completed timestamp")?,
    })
}

/// Section 2: the count of operators, then each operator's uid and name (strings),
/// parallelism and max parallelism (u32) and its subtasks: a count, then each subtask's index
/// (u32, ascending) and handles ([`handles::put_subtask`]).
fn put_operators(out: &mut Vec<u8>, operators: &[OperatorState]) {
    format::put_count(out, operators.len());
    for op in operators {
        let OperatorState {
            uid,
            name,
            parallelism,
            max_parallelism,
            subtasks,
        } = op;
        format::put_str(out, uid);
        format::put_str(out, name);
        format::put_u32(out, *parallelism);
        format::put_u32(out, *max_parallelism);
        format::put_count(out, subtasks.len());
        for (index, state) in subtasks {
            format::put_u32(out, *index);
            handles::put_subtask(out, state);
        }
    }
}

fn operators(r: &mut Reader<'_>) -> Result<Vec<OperatorState>> {
    r.seq(MIN_OPERATOR, "operators", |r| {
        let mut op = OperatorState::new(
            r.string("operator uid")?,
            r.string("operator name")?,
            r.u32("parallelism")?,
            r.u32("max parallelism")?,
        );
        let n = r.count(MIN_SUBTASK, "subtasks")?;
        let mut subtasks = BTreeMap::new();
        for _ in 0..n {
            let at = r.clone();
            let index = r.u32("subtask index")?;
            if subtasks
                .last_key_value()
                .is_some_and(|(&last, _)| last >= index)
            {
                return Err(at
                    .error("subtask indices are not in ascending order")
                    .with_context("subtask", index));
            }
            subtasks.insert(index, handles::subtask(r)?);
        }
        op.subtasks = subtasks;
        Ok(op)
    })
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
    put_header(&mut payload, metadata);
    push_section(&mut body, SECTION_HEADER, &payload)?;
    payload.clear();
    put_operators(&mut payload, &metadata.operators);
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
            // One-shot compression records the body's size in the zstd frame, which the
            // decoder requires (it is the only bound of the decompression).
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

/// Decodes a `_metadata` file. Never panics, whatever the input, and allocates at most
/// about the input's size plus the decompressed body's size, which the zstd frame must
/// record and which is refused above [`MAX_BODY_SIZE`] before anything is allocated.
///
/// # Errors
/// [`ErrorKind::Corrupted`] naming what is wrong (magic, length, checksum, section,
/// decoding, invariant, such as state sizes that overflow u64 when summed, naming the
/// operator and the sum) and the offset; [`ErrorKind::Unsupported`] for an unknown version
/// or a critical section this version does not know, naming the supported versions.
pub fn decode(bytes: &[u8]) -> Result<CheckpointMetadata> {
    let mut r = Reader::new(bytes, "_metadata").with_key("file");
    let first = SUPPORTED_VERSIONS
        .first()
        .copied()
        .unwrap_or(FORMAT_VERSION);
    let last = SUPPORTED_VERSIONS.last().copied().unwrap_or(FORMAT_VERSION);
    let version = format::magic_and_version(&mut r, MAGIC, first..=last, "cornerstone _metadata")?;
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(r
            .error("_metadata is truncated")
            .with_context("len", bytes.len()));
    }
    let flags = r.u8("flags")?;
    let reserved = r.u8("reserved")?;
    let stored_len = u64::from(r.u32("body length")?);
    let expected_len = (HEADER_LEN + TRAILER_LEN) as u64 + stored_len;
    if expected_len != bytes.len() as u64 {
        return Err(r
            .error("_metadata length does not match its header")
            .with_context("body_len", stored_len)
            .with_context("file_len", bytes.len()));
    }
    let stored = r.bytes(stored_len, "body")?;
    let crc_at = r.clone();
    let expected_crc = r.u32("crc32")?;
    format::check_crc32(
        &bytes[..HEADER_LEN + stored.len()],
        expected_crc,
        &crc_at,
        "_metadata",
    )?;
    if flags & !FLAG_ZSTD != 0 || reserved != 0 {
        return Err(Reader::new(bytes, "_metadata")
            .with_key("file")
            .at_offset(6)
            .error("_metadata has unknown flags")
            .with_context("flags", format!("{flags:#04x}"))
            .with_context("reserved", reserved));
    }
    let at = Reader::new(stored, "_metadata")
        .with_key("file")
        .at_offset(HEADER_LEN as u64);
    let decompressed;
    let body: &[u8] = if flags & FLAG_ZSTD != 0 {
        let raw_len = format::zstd_recorded_size(stored, MAX_BODY_SIZE, &at)?;
        decompressed = format::decompress_zstd(stored, raw_len, MAX_BODY_SIZE, &at)?;
        &decompressed
    } else {
        stored
    };
    decode_body(version, body)
}

fn decode_body(version: u16, body: &[u8]) -> Result<CheckpointMetadata> {
    // Offsets of errors count from the start of the (decompressed) body.
    let mut r = Reader::new(body, "_metadata body").with_key("file");
    let mut head: Option<Header> = None;
    let mut ops: Option<Vec<OperatorState>> = None;
    while !r.is_empty() {
        let at = r.clone();
        let tag = r.u16("section tag")?;
        let len = r.u32("section length")?;
        let base = r.offset();
        let payload = r.bytes(u64::from(len), "section")?;
        let mut p = Reader::new(payload, "_metadata body")
            .with_key("file")
            .at_offset(base);
        match tag {
            SECTION_HEADER if head.is_some() => {
                return Err(at.error("duplicate _metadata header section"));
            }
            SECTION_HEADER => {
                head = Some(header(&mut p)?);
                p.finish("the header section")?;
            }
            SECTION_OPERATORS if ops.is_some() => {
                return Err(at.error("duplicate _metadata operators section"));
            }
            SECTION_OPERATORS => {
                ops = Some(operators(&mut p)?);
                p.finish("the operators section")?;
            }
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
    }
    let head = head.ok_or_else(|| r.error("_metadata has no header section"))?;
    let operators = ops.ok_or_else(|| r.error("_metadata has no operators section"))?;
    let metadata = CheckpointMetadata {
        format_version: version,
        checkpoint_id: head.checkpoint_id,
        job_id: head.job_id,
        kind: head.kind,
        trigger_timestamp_ms: head.trigger_timestamp_ms,
        completed_timestamp_ms: head.completed_timestamp_ms,
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

    /// The explicit encoding is byte for byte the serde + bincode encoding that version 1
    /// was first written with: section 1 as the struct (a tuple of the same fields encodes the
    /// same), section 2 as `Vec<OperatorState>` through its serde derives.
    #[test]
    fn explicit_encoding_equals_the_first_serde_encoding() {
        use cornerstone_backend_api::spi::codec as serde_codec;
        let mut m = sample();
        let mut subtask = cornerstone_backend_api::SubtaskState::default();
        subtask
            .operator
            .push(cornerstone_backend_api::OperatorStateHandle {
                states: Default::default(),
                stream: cornerstone_backend_api::StreamStateHandle::Inline(vec![9; 3]),
            });
        m.operators[0].subtasks.insert(0, subtask);
        let head = serde_codec::encode(&(
            m.checkpoint_id,
            m.job_id.clone(),
            m.kind,
            m.trigger_timestamp_ms,
            m.completed_timestamp_ms,
        ))
        .unwrap();
        let ops = serde_codec::encode(&m.operators).unwrap();
        let mut body = Vec::new();
        push_section(&mut body, SECTION_HEADER, &head).unwrap();
        push_section(&mut body, SECTION_OPERATORS, &ops).unwrap();
        let bytes = encode(&m, MetadataCompression::None).unwrap();
        assert_eq!(&bytes[HEADER_LEN..bytes.len() - TRAILER_LEN], &body[..]);
        assert_eq!(decode(&bytes).unwrap(), m);
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
