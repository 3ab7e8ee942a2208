//! A bounded, panic-free reader of the keyed state in Flink's full key-groups snapshots: what
//! the heap backend (`HashMapStateBackend`) writes for checkpoints and native savepoints
//! (`KEY_GROUPS_HANDLE`, `KEY_GROUPS_HANDLE_V2`), and the canonical savepoint format of
//! `FullSnapshotAsyncWriter` (`SAVEPOINT_KEY_GROUPS_HANDLE`).
//!
//! # Format
//! Both start with the `KeyedBackendSerializationProxy` (version 6):
//! ```text
//! int     version                6
//! bool    key-group compression  (compressed key groups are refused)
//! snapshot key serializer        int proxy version 2, UTF class, int version, data
//! short   state count, then each (StateMetaInfoSnapshotReadersWriters):
//!         UTF name, int backend state type (0 KEY_VALUE, 3 PRIORITY_QUEUE, ...),
//!         int option count + UTF key/value pairs (KEYED_STATE_TYPE=VALUE|LIST|MAP|...),
//!         int serializer count + (UTF key, snapshot) pairs
//! ```
//! A snapshot's data is empty for the simple serializers (`LongSerializerSnapshot`, ...);
//! a composite one (`ListSerializerSnapshot`, `MapSerializerSnapshot`,
//! `TimerSerializerSnapshot`, `TtlSerializerSnapshot`) writes int magic 911108, int outer
//! version, int magic 1333245, int version, int count and the nested versioned snapshots.
//!
//! Heap (`HeapSnapshotStrategy`), at each key group's offset: int key group, then for every
//! state: short state index, int entry count, and each entry as namespace, key, value
//! (`CopyOnWriteStateMapSnapshot`), or for a timer queue each timer (`TimerSerializer`: long
//! timestamp with its sign bit flipped, key, namespace).
//!
//! Canonical (`FullSnapshotAsyncWriter`, fed by `HeapKeyValueStateIterator`), at each
//! non-zero offset: short state index, then pairs of int-length key and value byte arrays;
//! the first key byte's bit 0x80 says that a short follows the pair: another state index or
//! 0xFFFF (end of the key group). A key is the key group (1 byte up to 128 key groups, else
//! 2), the key, the namespace (and for map state the user key); a value is the value, a
//! list's elements separated by `,`, a map value behind a null flag, nothing for a timer.
//!
//! Values are decoded for Flink's `Long`, `Integer`, `Double`, `Boolean`, `String`, `byte[]`
//! and `VoidNamespace` serializers, lists and maps of those, timers and TTL values. Flink
//! records no lengths, so a state with any other serializer cannot be delimited: reading a
//! key group in which it has entries fails with [`ErrorKind::Unsupported`] naming the state
//! and the serializer class.
//!
//! # Robustness
//! As for `_metadata`: every read is bounds-checked, every count is checked against the
//! bytes left before anything is allocated for it, errors name the field, the offset, the
//! file and the key group, and nothing panics.

mod reader;
mod serializers;

use cornerstone_backend_api::{Error, ErrorKind, Result};
use serde::Serialize;
use serde_json::Value;

pub use serializers::SerializerSnapshot;

use super::KeyedStateHandle;

/// How the key groups of a stream are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyGroupsFormat {
    /// The heap backend's own format (checkpoints and native savepoints).
    Heap,
    /// The canonical (unified) savepoint format, also RocksDB's full snapshots.
    Canonical,
}

/// The state meta info of one state (Flink's `StateMetaInfoSnapshot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateMetaInfo {
    /// The state name.
    pub name: String,
    /// The backend state type: `KEY_VALUE`, `OPERATOR`, `BROADCAST`, `PRIORITY_QUEUE`.
    pub backend_type: String,
    /// The options (such as `KEYED_STATE_TYPE` = `VALUE`, `LIST`, `MAP`).
    pub options: Vec<(String, String)>,
    /// The serializer snapshots by role (`NAMESPACE_SERIALIZER`, `VALUE_SERIALIZER`, ...).
    pub serializers: Vec<(String, SerializerSnapshot)>,
}

impl StateMetaInfo {
    /// The snapshot of the serializer with this role.
    pub fn serializer(&self, role: &str) -> Option<&SerializerSnapshot> {
        self.serializers
            .iter()
            .find(|(k, _)| k == role)
            .map(|(_, s)| s)
    }

    /// The value of an option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The kind of state: `value`, `list`, `map`, `timers`, or the lowercase
    /// `KEYED_STATE_TYPE` (`reducing`, `aggregating`, ...).
    pub fn kind(&self) -> String {
        if self.backend_type == "PRIORITY_QUEUE" {
            return "timers".to_owned();
        }
        self.option("KEYED_STATE_TYPE")
            .unwrap_or("value")
            .to_ascii_lowercase()
    }
}

/// The header of a key-groups stream (Flink's `KeyedBackendSerializationProxy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyedHeader {
    /// The proxy's version.
    pub version: i32,
    /// Whether key groups are compressed (snappy; not decoded).
    pub compression: bool,
    /// The key serializer snapshot.
    pub key_serializer: SerializerSnapshot,
    /// The states, in the order whose index the key groups refer to.
    pub states: Vec<StateMetaInfo>,
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyedEntry {
    /// The index of the state in [`KeyedHeader::states`].
    pub state: usize,
    /// The key group.
    pub key_group: u32,
    /// The key.
    pub key: Value,
    /// The namespace (`null` for `VoidNamespace`).
    pub namespace: Value,
    /// The value: the value, the list, the map (an object for string keys, else a list of
    /// `[key, value]`), a timer's timestamp; TTL values are
    /// `{"last_access_timestamp", "value"}`.
    pub value: Value,
}

/// The keyed state of one stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyedState {
    /// The layout read.
    pub format: KeyGroupsFormat,
    /// The header.
    pub header: KeyedHeader,
    /// The entries, by key group in the order of the stream (canonical map state: one entry
    /// per key with all its map entries merged).
    pub entries: Vec<KeyedEntry>,
}

/// What to read.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRead<'a> {
    /// The file's name for errors.
    pub file: &'a str,
    /// The operator's max parallelism (the number of key groups), which sets the size of the
    /// key-group prefix of canonical keys.
    pub max_parallelism: u32,
    /// Only this key group (the others are not read).
    pub key_group: Option<u32>,
}

/// Reads the keyed state of a full key-groups `handle` whose stream holds `bytes`.
///
/// # Errors
/// [`ErrorKind::Unsupported`] for incremental or changelog handles (RocksDB SST files and
/// the like), compressed key groups, or a state whose serializer this reader cannot decode
/// in a key group where it has entries; [`ErrorKind::Corrupted`] naming the field, offset,
/// file and key group for anything that does not fit the format.
pub fn read_keyed_state(
    bytes: &[u8],
    handle: &KeyedStateHandle,
    read: &KeyedRead<'_>,
) -> Result<KeyedState> {
    let (kg, canonical) = match handle {
        KeyedStateHandle::KeyGroups(h) | KeyedStateHandle::KeyGroupsV2(h) => (h, false),
        KeyedStateHandle::SavepointKeyGroups(h) => (h, true),
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "keyed state in a {} handle (incremental or changelog: native backend \
                     files such as RocksDB SST files) cannot be dumped",
                    handle_name(other)
                ),
            )
            .with_context("file", read.file));
        }
    };
    reader::read(bytes, kg, canonical, read).map_err(|mut e| {
        e.map_contexts(|k, v| {
            if k == "format" {
                *v = "flink key-groups state".to_owned();
            }
        });
        if e.context("file").is_none() {
            e = e.with_context("file", read.file);
        }
        e
    })
}

/// Reads only the header of a key-groups stream.
///
/// # Errors
/// As [`read_keyed_state`].
pub fn read_keyed_header(bytes: &[u8]) -> Result<KeyedHeader> {
    reader::header(&mut super::input::Input::new(bytes))
}

fn handle_name(h: &KeyedStateHandle) -> &'static str {
    match h {
        KeyedStateHandle::Incremental(_) => "INCREMENTAL_KEY_GROUPS_HANDLE",
        KeyedStateHandle::IncrementalV2(_) => "INCREMENTAL_KEY_GROUPS_HANDLE_V2",
        _ => "changelog",
    }
}
