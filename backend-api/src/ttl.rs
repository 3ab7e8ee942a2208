//! State time-to-live, as Flink's `StateTtlConfig`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When the last-access timestamp of a value is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum UpdateType {
    /// On creation and on every write (Flink's `OnCreateAndWrite`, the default).
    #[default]
    OnCreateAndWrite,
    /// On creation, on every write and on every read (`OnReadAndWrite`).
    OnReadAndWrite,
}

/// Whether an expired value that has not been cleaned up yet is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum StateVisibility {
    /// Expired values are never returned (the default).
    #[default]
    NeverReturnExpired,
    /// An expired value is returned by the read that finds it, which also removes it.
    /// Cleanup may remove it before any read: incremental cleanup, cleanup in full
    /// snapshots, RocksDB compactions, and namespace merges, which never move or fold an
    /// expired value.
    ReturnExpiredIfNotCleanedUp,
}

/// Background cleanup of expired values, beyond the cleanup on read that always happens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct CleanupStrategies {
    /// Leave expired entries out of full snapshots (they stay in the working state).
    pub in_full_snapshot: bool,
    /// Check this many entries on every access of the state (heap backends).
    pub incremental_cleanup_size: Option<usize>,
    /// Drop expired entries in RocksDB compactions; the filter refreshes its current time
    /// after this many processed entries.
    pub rocksdb_compaction_query_time_after: Option<u64>,
}

/// The TTL of one state, set on its descriptor.
///
/// ```
/// use std::time::Duration;
/// use cornerstone_backend_api::{StateTtlConfig, StateVisibility, UpdateType};
///
/// let ttl = StateTtlConfig::new(Duration::from_secs(60))
///     .update_type(UpdateType::OnReadAndWrite)
///     .visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)
///     .cleanup_full_snapshot()
///     .cleanup_incrementally(10);
/// assert_eq!(ttl.ttl_millis(), 60_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateTtlConfig {
    /// How long a value lives after its last timestamp update.
    pub ttl: Duration,
    /// When the timestamp is refreshed.
    pub update_type: UpdateType,
    /// Whether expired values can still be read once.
    pub visibility: StateVisibility,
    /// Background cleanup.
    pub cleanup: CleanupStrategies,
}

impl StateTtlConfig {
    /// A TTL of `ttl`, update on create and write, never return expired, cleanup on read.
    pub fn new(ttl: Duration) -> Self {
        StateTtlConfig {
            ttl,
            update_type: UpdateType::default(),
            visibility: StateVisibility::default(),
            cleanup: CleanupStrategies::default(),
        }
    }

    /// Sets the update type.
    #[must_use]
    pub fn update_type(mut self, update_type: UpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    /// Sets the visibility of expired values.
    #[must_use]
    pub fn visibility(mut self, visibility: StateVisibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Leaves expired entries out of full snapshots.
    #[must_use]
    pub fn cleanup_full_snapshot(mut self) -> Self {
        self.cleanup.in_full_snapshot = true;
        self
    }

    /// Checks `cleanup_size` entries on every access of the state (heap backends; the
    /// RocksDB backend cleans up in compactions instead).
    #[must_use]
    pub fn cleanup_incrementally(mut self, cleanup_size: usize) -> Self {
        self.cleanup.incremental_cleanup_size = Some(cleanup_size);
        self
    }

    /// Drops expired entries in RocksDB compactions (Flink's
    /// `cleanupInRocksdbCompactFilter`): values, map entries, and lists whose every
    /// element expired. The filter reads the clock when a compaction starts and again after
    /// every `query_time_after_num_entries` entries (Flink's default: 1000). Heap backends
    /// ignore it.
    #[must_use]
    pub fn cleanup_in_rocksdb_compaction(mut self, query_time_after_num_entries: u64) -> Self {
        self.cleanup.rocksdb_compaction_query_time_after = Some(query_time_after_num_entries);
        self
    }

    /// The TTL in milliseconds (saturating).
    pub fn ttl_millis(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a value stamped at `timestamp` has expired at `now`.
    #[inline]
    pub fn is_expired(&self, timestamp: u64, now: u64) -> bool {
        timestamp.saturating_add(self.ttl_millis()) <= now
    }
}

/// A user value with the timestamp of its last TTL update, as stored for TTL states.
///
/// Serialized as the big-endian timestamp followed by the value, so a byte-level filter
/// (a RocksDB compaction filter) reads the timestamp from the first 8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TtlValue<V> {
    /// Milliseconds since the epoch of the last timestamp update.
    pub timestamp: u64,
    /// The user value.
    pub value: V,
}

/// `ttl<V>`: the stored form of a TTL state's values. Snapshots record the value type
/// `V` and a TTL flag, not this identity.
impl<V: crate::identity::StateType> crate::identity::StateType for TtlValue<V> {
    fn type_identity() -> std::borrow::Cow<'static, str> {
        format!("ttl<{}>", V::type_identity()).into()
    }
}
