//! A bounded, panic-free reader of Apache Flink's own checkpoint and savepoint `_metadata`
//! files (what `Checkpoints.storeCheckpointMetadata` writes), format versions 3 to 7.
//!
//! ```no_run
//! use cornerstone_checkpoint_store::flink;
//!
//! let bytes = std::fs::read("chk-8/_metadata")?;
//! if flink::is_flink_metadata(&bytes) {
//!     let metadata = flink::read_flink_metadata(&bytes)?;
//!     for op in &metadata.operators {
//!         println!("{} {:?} parallelism {}", op.operator_id, op.uid, op.parallelism);
//!     }
//!     for file in metadata.referenced_files("chk-8")? {
//!         println!("{} >= {} bytes (shared: {})", file.path, file.min_size, file.shared);
//!     }
//! }
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Format
//! Java `DataOutputStream` conventions: big-endian `int` (4 bytes) and `long` (8), a byte for
//! each type code, `writeUTF` strings (a u16 length and modified UTF-8).
//! ```text
//! int   magic 0x4960672d           Checkpoints.HEADER_MAGIC_NUMBER
//! int   version                    3 (Flink 1.11+), 4 (1.16+: properties), 5 (2.x: operator
//!                                  name and uid), 6 (channel state serializer V2), 7 (the
//!                                  reference checkpoint id of a subtask)
//! long  checkpoint id              not negative
//! int   master state count, then each: int magic 0xc96b1696, int length > 0, and in that
//!       many bytes: int version, UTF name, int length, payload (nothing may follow)
//! int   operator count, then each:
//!       [v5+] UTF name, UTF uid    "" when Flink has none
//!       16 bytes operator id       lower long, upper long (= OperatorID.toHexString order)
//!       int parallelism, int max parallelism
//!       stream handle              coordinator state: null or BYTE_STREAM_STATE_HANDLE
//!       int subtask count          negative: the operator is fully finished (no entries)
//!       each subtask: int index    negative: finished subtask -(index + 1), nothing follows;
//!                                  else: int flag, [operator handle] (managed operator
//!                                  state), int flag, [operator handle] (raw), keyed handle
//!                                  (managed), keyed handle (raw), int count + input channel
//!                                  handles, int count + result subpartition handles,
//!                                  [v7] byte marker (1: a long reference checkpoint id)
//! [v4+] the Java-serialized CheckpointProperties (ObjectOutputStream, `ac ed 00 05`)
//! ```
//! The handles, by the type codes of `MetadataV2V3SerializerBase` ([`type_code_name`]):
//! `NULL_HANDLE` 0 (no handle), stream handles `BYTE_STREAM_STATE_HANDLE` 1 (UTF name, int
//! length, bytes), `FILE_STREAM_STATE_HANDLE` 2 (long size, UTF path),
//! `RELATIVE_STREAM_STATE_HANDLE` 6 (UTF relative path, long size), `SEGMENT_FILE_HANDLE` 15
//! (long start, long size, int scope, UTF physical path, UTF logical file id),
//! `EMPTY_SEGMENT_FILE_HANDLE` 16 (nothing) and, as a stream, `KEY_GROUPS_HANDLE` 3; keyed
//! handles `KEY_GROUPS_HANDLE` 3, `KEY_GROUPS_HANDLE_V2` 12 and `SAVEPOINT_KEY_GROUPS_HANDLE` 7
//! (int first key group, int count, a long offset per key group, stream handle; 12 adds a
//! UTF state handle id), `INCREMENTAL_KEY_GROUPS_HANDLE` 5 and `_V2` 11 (long checkpoint id,
//! UTF backend id, key groups, [11: long checkpointed size], meta stream handle, shared and
//! private lists of UTF local path + stream handle, [11: UTF state handle id]), the changelog
//! handles 8, 14 (nested keyed handles), 9 (inline changes) and 10, 13 (offsets + stream
//! handles); operator handles `PARTITIONABLE_OPERATOR_STATE_HANDLE` 4 (int count, each UTF
//! name, byte mode, int count + long offsets; stream handle) and
//! `SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE` 17 (the same plus two UTF directories and a
//! boolean before a segment handle). Channel state handles are untagged in versions 3 to 5
//! (`ChannelStateHandleSerializerV1`) and tagged in versions 6 and 7
//! (`ChannelStateHandleSerializerV2`: 1 input channel, 2 result subpartition, 3 and 4 their
//! merged forms). Every code is decoded; a code that is not allowed where it stands, or one
//! Flink does not define, is an error naming the code (and its name, when it has one) and
//! the byte offset.
//!
//! # Robustness
//! `_metadata` files are untrusted input. Decoding never panics, whatever the bytes: every
//! read is bounds-checked and every count and length is checked against the bytes that
//! remain (a count of N items of at least M bytes needs N × M bytes left) before anything is
//! allocated for it, and vectors are sized so that they never grow: the memory used stays
//! under 48 times the input's size (about 32 times for the worst crafted inputs, such as
//! 3-byte shared-file entries; about 1.1 to 1.6 times for real files; a test measures it).
//! Handles nest (a changelog handle holds keyed handles, a `KEY_GROUPS_HANDLE` stream holds a
//! stream) at most [`MAX_NESTING`] deep. Errors are
//! [`ErrorKind::Corrupted`](cornerstone_backend_api::ErrorKind) (an unsupported version:
//! [`ErrorKind::Unsupported`](cornerstone_backend_api::ErrorKind)) with a message and context
//! (`field`, `offset`, `value`, ...) that say what was read where and what was allowed.
//!
//! Where Flink's reader is lenient this one mostly follows it (a Java boolean is any
//! non-zero byte, the operator state flags any non-zero int, the version 7 marker anything
//! but 1 means "no id", overlong modified UTF-8 is read as Java reads it, null materialized
//! changelog handles are dropped). It refuses what Flink's own writer never produces and
//! what would make the result ambiguous: negative counts, sizes and positions, duplicate
//! subtask indices or operator state names, null delegate handles, a string with an unpaired
//! UTF-16 surrogate (a Rust string cannot hold it, and a replacement would change a file
//! name that a `gc` relies on).
//!
//! # Trailing bytes
//! Flink's reader stops after what it needs and ignores anything after it. Versions 4 and
//! later end with the Java-serialized `CheckpointProperties`, which this reader does not
//! deserialize: it keeps every byte after the body as the properties
//! ([`FlinkMetadata::properties`]), which must start with the Java serialization header as
//! Flink's `ObjectInputStream` requires. For version 3 the bytes after the body are ignored,
//! as Flink does, and counted in [`FlinkMetadata::trailing_bytes`] so that a `verify` can
//! report them.
//!
//! [`keyed`] ([`read_keyed_state`]) decodes the keyed state of full key-groups streams.

mod channel;
mod decode;
mod files;
mod handles;
mod input;
pub mod keyed;
mod model;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_handles;

use std::ops::RangeInclusive;

use cornerstone_backend_api::Result;

pub use channel::{
    ChannelStateHandle, InputChannelInfo, InputStateHandle, MergedChannelStateHandle,
    OutputStateHandle, ResultSubpartitionInfo,
};
pub use files::ReferencedFile;
pub use keyed::{KeyedRead, KeyedState, read_keyed_state};
pub use model::{
    ChangelogBytesHandle, ChangelogFileHandle, ChangelogHandle, DistributionMode, FlinkMetadata,
    HandleAndLocalPath, IncrementalHandle, InlineBytes, JavaSerialized, KeyGroupRange,
    KeyGroupsHandle, KeyedStateHandle, MasterState, NamedOperatorState, OffsetHandle,
    OperatorState, OperatorStateHandle, SegmentScope, StateChange, StreamStateHandle, SubtaskState,
};

/// The magic number at the start of every Flink `_metadata` file
/// (`Checkpoints.HEADER_MAGIC_NUMBER`), a big-endian `int`.
pub const MAGIC: u32 = 0x4960_672d;

/// The format versions this reader decodes.
pub const SUPPORTED_VERSIONS: RangeInclusive<u32> = 3..=7;

/// How deep handles may nest (changelog handles in changelog handles, key-group streams in
/// key-group streams): far deeper than the handles Flink writes, shallow enough for the
/// stack.
pub const MAX_NESTING: u32 = 16;

/// Whether `bytes` start with Flink's `_metadata` magic number: a cheap check that tells
/// Flink's `_metadata` from Cornerstone's own (which starts with `CSMD`).
pub fn is_flink_metadata(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC.to_be_bytes())
}

/// Decodes a Flink `_metadata` file (versions [`SUPPORTED_VERSIONS`]). Never panics, and
/// allocates less than 48 times the input's size (see [Robustness](self#robustness)).
///
/// # Errors
/// [`ErrorKind::Corrupted`](cornerstone_backend_api::ErrorKind) naming what is wrong, where
/// (`offset`), the value read and what was allowed: another magic number, a truncated
/// field, an unknown or misplaced type code, a count that cannot fit in the bytes left,
/// a negative size, missing properties; [`ErrorKind::Unsupported`](cornerstone_backend_api::ErrorKind)
/// for a version outside [`SUPPORTED_VERSIONS`].
pub fn read_flink_metadata(bytes: &[u8]) -> Result<FlinkMetadata> {
    decode::read(bytes)
}

/// The name of the constant of `MetadataV2V3SerializerBase` for a handle type code, or `None`
/// for a code Flink does not define.
pub fn type_code_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "NULL_HANDLE",
        1 => "BYTE_STREAM_STATE_HANDLE",
        2 => "FILE_STREAM_STATE_HANDLE",
        3 => "KEY_GROUPS_HANDLE",
        4 => "PARTITIONABLE_OPERATOR_STATE_HANDLE",
        5 => "INCREMENTAL_KEY_GROUPS_HANDLE",
        6 => "RELATIVE_STREAM_STATE_HANDLE",
        7 => "SAVEPOINT_KEY_GROUPS_HANDLE",
        8 => "CHANGELOG_HANDLE",
        9 => "CHANGELOG_BYTE_INCREMENT_HANDLE",
        10 => "CHANGELOG_FILE_INCREMENT_HANDLE",
        11 => "INCREMENTAL_KEY_GROUPS_HANDLE_V2",
        12 => "KEY_GROUPS_HANDLE_V2",
        13 => "CHANGELOG_FILE_INCREMENT_HANDLE_V2",
        14 => "CHANGELOG_HANDLE_V2",
        15 => "SEGMENT_FILE_HANDLE",
        16 => "EMPTY_SEGMENT_FILE_HANDLE",
        17 => "SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE",
        _ => return None,
    })
}

impl StreamStateHandle {
    /// The name of Flink's constant for the type code.
    pub fn type_name(&self) -> &'static str {
        type_code_name(self.type_code()).unwrap_or("?")
    }
}

impl OperatorStateHandle {
    /// The name of Flink's constant for the type code.
    pub fn type_name(&self) -> &'static str {
        type_code_name(self.type_code()).unwrap_or("?")
    }
}
