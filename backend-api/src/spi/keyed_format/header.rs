//! The constants of the layout, the compression of blocks and the header that precedes the
//! blocks, with its encoding.

use serde::{Deserialize, Serialize};

use crate::descriptor::StateMeta;
use crate::error::{Error, Result};
use crate::spi::format::{self, Reader, handles};

/// The magic number of the stream.
pub const MAGIC: [u8; 4] = *b"CSKG";
/// The format version of full snapshots.
pub const VERSION: u16 = 2;
/// The format version of delta streams (a changelog checkpoint's changes): version 2 with
/// one more bit in each record's state index, which says whether the record is a removal.
pub const DELTA_VERSION: u16 = 3;
/// The oldest format version read.
pub const MIN_VERSION: u16 = 1;
/// A block is closed once its records reach this size.
pub const BLOCK_TARGET_SIZE: usize = 256 * 1024;
pub(super) const PREAMBLE_LEN: usize = 4 + 2 + 4 + 4;
pub(super) const BLOCK_HEADER_LEN: usize = 4 + 4 + 1 + 4 + 4;
pub(super) const FLAG_ZSTD: u8 = 1;
/// The largest block, stored or decompressed: a reader refuses a larger declared length
/// before allocating, so a block never makes a reader allocate more than this.
pub const MAX_BLOCK_LEN: u32 = 256 << 20;
/// The largest header: a reader refuses a larger declared length before reading.
pub const MAX_HEADER_LEN: u64 = 16 << 20;

/// Compression of snapshot blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// zstd at the given level.
    Zstd(i32),
}

/// What precedes the blocks: the key type and every state's meta, in the order that records
/// refer to them by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedSnapshotHeader {
    /// The backend that wrote the stream.
    pub backend: String,
    /// The key type.
    pub key_type: String,
    /// The states.
    pub states: Vec<StateMeta>,
}

impl KeyedSnapshotHeader {
    /// Checks that the stream was written with keys of `key_type` (a Rust type name), the
    /// key type of the backend restoring it.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming both types.
    pub fn check_key_type(&self, key_type: &str) -> Result<()> {
        if self.key_type == key_type {
            Ok(())
        } else {
            Err(Error::invalid_input(
                "the snapshot was written with another key type than the backend restoring it",
            )
            .with_context("stored", &self.key_type)
            .with_context("requested", key_type))
        }
    }
}

/// The header's encoding: the backend and key type as strings, then the count of states and
/// each state's meta (see [`crate::spi::format::handles`]).
pub(super) fn encode_header(header: &KeyedSnapshotHeader) -> Vec<u8> {
    let KeyedSnapshotHeader {
        backend,
        key_type,
        states,
    } = header;
    let mut out = Vec::new();
    format::put_str(&mut out, backend);
    format::put_str(&mut out, key_type);
    format::put_count(&mut out, states.len());
    for meta in states {
        handles::put_state_meta(&mut out, meta);
    }
    out
}

pub(super) fn decode_header(r: &mut Reader<'_>) -> Result<KeyedSnapshotHeader> {
    let header = KeyedSnapshotHeader {
        backend: r.string("backend")?,
        key_type: r.type_identity("key type")?,
        states: r.seq(handles::MIN_STATE_META, "states", handles::state_meta)?,
    };
    if header.states.len() > usize::from(u16::MAX) + 1 {
        return Err(r
            .error("keyed snapshot header has more states than records can name")
            .with_context("states", header.states.len()));
    }
    Ok(header)
}
