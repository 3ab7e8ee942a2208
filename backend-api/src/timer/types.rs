//! The data of timers: their domains, timers as fired, the serialized entries queues store
//! and the stored form of timestamps.

use std::fmt;

use integer_encoding::VarInt;
use smallvec::SmallVec;

use crate::error::{Error, Result};

/// The prefix of the names of timer queues: a service named `window` keeps its timers in
/// the states `_timer_state/event_window` and `_timer_state/processing_window`, as Flink
/// names them. User states cannot take names with this prefix.
pub const TIMER_STATE_PREFIX: &str = "_timer_state/";

/// The value type recorded in the meta of a timer queue: the timestamp.
pub const TIMESTAMP_TYPE: &str = "i64";

/// The clock a timer fires by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark passes the timestamp.
    EventTime,
    /// Fires when the processing time passes the timestamp.
    ProcessingTime,
}

impl TimeDomain {
    /// The name of the queue of service `service` in this domain.
    pub fn queue_name(self, service: &str) -> String {
        match self {
            TimeDomain::EventTime => format!("{TIMER_STATE_PREFIX}event_{service}"),
            TimeDomain::ProcessingTime => format!("{TIMER_STATE_PREFIX}processing_{service}"),
        }
    }
}

/// A timer that fired (or is pending): for `key` in `namespace` at `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timer<K, N> {
    /// When it fires, in milliseconds.
    pub timestamp: i64,
    /// Its key.
    pub key: K,
    /// Its namespace (a window, `()` for none).
    pub namespace: N,
}

/// A timer's serialized key and namespace, as queues store and order it:
/// `varint(key length) | key | namespace` (LEB128 length, key and namespace serialized with
/// [`codec`](crate::spi::codec)). Entries of 24 bytes or less are stored without an allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TimerEntry(SmallVec<[u8; 24]>);

impl fmt::Debug for TimerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerEntry({:02x?})", &self.0[..])
    }
}

impl TimerEntry {
    /// The entry of a serialized key and namespace.
    pub fn from_parts(key: &[u8], namespace: &[u8]) -> Self {
        let mut out = SmallVec::new();
        let mut len = [0u8; 10];
        let n = (key.len() as u64).encode_var(&mut len);
        out.extend_from_slice(&len[..n]);
        out.extend_from_slice(key);
        out.extend_from_slice(namespace);
        TimerEntry(out)
    }

    /// An entry from its bytes, e.g. the tail of a stored key (checked when split).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        TimerEntry(SmallVec::from_slice(bytes))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serialized key and namespace.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupted`] when the length prefix is malformed or too long.
    pub fn split(&self) -> Result<(&[u8], &[u8])> {
        split_entry(&self.0)
    }
}

/// Splits entry bytes into the serialized key and namespace.
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] when the length prefix is malformed or too long.
pub fn split_entry(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || Error::corrupted("malformed timer entry").with_context("len", bytes.len());
    let (len, n) = u64::decode_var(bytes).ok_or_else(bad)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| n.checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(bad)?;
    Ok((&bytes[n..end], &bytes[end..]))
}

/// The stored form of a timestamp in snapshot records: [`codec`](crate::spi::codec)'s (big-endian `i64`).
pub fn encode_timestamp(timestamp: i64) -> [u8; 8] {
    timestamp.to_be_bytes()
}

/// Reads a timestamp written by [`encode_timestamp`].
///
/// # Errors
/// [`crate::ErrorKind::Corrupted`] unless `bytes` are 8 bytes long.
pub fn decode_timestamp(bytes: &[u8]) -> Result<i64> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| {
            Error::corrupted("a timer's timestamp is not 8 bytes").with_context("len", bytes.len())
        })
}
