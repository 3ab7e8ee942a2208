//! The implementor interface: what a state backend, a snapshot format or checkpoint storage
//! is built from. Engines and jobs use the crate root; this module is for the crates that
//! implement backends and storage (and for tests), and it is less stable than the root: it
//! may change in a minor release.
//!
//! - [`table`]: the three storage primitives (value, list, map tables) a keyed backend
//!   implements, on which the typed states of the crate root are built;
//! - [`keyed_format`] and [`format`](mod@format): the canonical snapshot formats every backend writes
//!   and reads (keyed key-group blocks, operator state, incremental handles);
//! - [`codec`]: the length-checked serialization under those formats;
//! - stream helpers for storage implementations ([`CountingReader`], [`InlineStreamFactory`],
//!   [`open_stream`], [`read_stream`], [`copy_stream`], [`stream_write_error`]) and an
//!   in-memory storage for tests ([`MemoryCheckpointStorage`]).

pub mod codec;
pub mod format;
pub mod keyed_format;
pub mod table;

pub use crate::stream::{
    CountingReader, InlineStreamFactory, MemoryCheckpointStorage, MemoryStreamFactory, copy_stream,
    open_stream, read_stream, stream_write_error,
};
