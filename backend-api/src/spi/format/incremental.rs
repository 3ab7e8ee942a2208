//! `CSRI`: the meta stream of a RocksDB incremental snapshot, which names the key type, the
//! max parallelism and, for every state, its meta and column family.
//!
//! ```text
//! stream = magic "CSRI" | version u16 (1) | crc32(body) u32 | body
//! body   = key_type string | max_parallelism u32 | count u64 | (state_meta | column_family string)*
//! ```
//!
//! Strings and the state meta are encoded as in [`super::handles`]; all integers are
//! big-endian.

use super::handles::{MIN_STATE_META, put_state_meta, state_meta};
use super::{Reader, check_crc32, magic_and_version, put_count, put_str, put_u16, put_u32};
use crate::descriptor::StateMeta;
use crate::error::Result;

/// The magic number of the stream.
pub const MAGIC: [u8; 4] = *b"CSRI";
/// The format version written.
pub const VERSION: u16 = 1;
/// The oldest format version read.
pub const MIN_VERSION: u16 = 1;

/// One state of an incremental snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalState {
    /// The state's meta.
    pub meta: StateMeta,
    /// The RocksDB column family that holds it.
    pub column_family: String,
}

/// The content of the meta stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalMeta {
    /// The key type.
    pub key_type: String,
    /// The number of key groups.
    pub max_parallelism: u32,
    /// The states.
    pub states: Vec<IncrementalState>,
}

/// Encodes `meta` in the current version.
pub fn encode(meta: &IncrementalMeta) -> Vec<u8> {
    let IncrementalMeta {
        key_type,
        max_parallelism,
        states,
    } = meta;
    let mut body = Vec::new();
    put_str(&mut body, key_type);
    put_u32(&mut body, *max_parallelism);
    put_count(&mut body, states.len());
    for IncrementalState {
        meta,
        column_family,
    } in states
    {
        put_state_meta(&mut body, meta);
        put_str(&mut body, column_family);
    }
    let mut out = Vec::with_capacity(10 + body.len());
    out.extend_from_slice(&MAGIC);
    put_u16(&mut out, VERSION);
    put_u32(&mut out, crc32fast::hash(&body));
    out.extend_from_slice(&body);
    out
}

/// Decodes a meta stream; `name` (its path) names it in errors.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] naming the path and offset; [`crate::ErrorKind::Unsupported`]
/// for an unknown version.
pub fn decode(bytes: &[u8], name: &str) -> Result<IncrementalMeta> {
    let mut r = Reader::new(bytes, name);
    magic_and_version(
        &mut r,
        MAGIC,
        MIN_VERSION..=VERSION,
        "RocksDB incremental snapshot meta (CSRI)",
    )?;
    let crc = r.u32("body crc32")?;
    check_crc32(&bytes[10..], crc, &r, "body")?;
    let meta = IncrementalMeta {
        key_type: r.type_identity("key type")?,
        max_parallelism: r.u32("max parallelism")?,
        states: r.seq(MIN_STATE_META + 8, "states", |r| {
            Ok(IncrementalState {
                meta: state_meta(r)?,
                column_family: r.string("column family")?,
            })
        })?,
    };
    r.finish("the states")?;
    Ok(meta)
}
