//! TTL cleanup in compactions (Flink's `FlinkCompactionFilter`): a compaction filter on the
//! column family of every TTL state drops the entries whose timestamp has expired.
//!
//! A column family's options are fixed when it is opened, but a restored state learns its
//! TTL only when it is registered. So every TTL column family gets a filter factory at
//! open with an empty [`TtlSlot`], filled in at registration; until then, and for states
//! registered without compaction cleanup, the filter keeps everything.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use cornerstone_backend_api::{SharedClock, StateTtlConfig};
use parking_lot::RwLock;
use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};

/// The length of the big-endian timestamp at the start of a stored TTL value (and of every
/// element of a stored TTL list), and of the element count at the start of a stored list.
const U64: usize = 8;

/// Where the timestamps are in a stored value.
#[derive(Clone, Copy)]
pub(crate) enum Layout {
    /// Value and map state: the value starts with its timestamp.
    Value,
    /// List state: a big-endian element count, then the elements, each starting with its
    /// timestamp; the function gives the encoded length of the element at the start of a
    /// slice (`None` when it does not decode).
    List(fn(&[u8]) -> Option<usize>),
}

/// What the compaction filter of one TTL state checks.
pub(crate) struct TtlCompaction {
    ttl: StateTtlConfig,
    query_time_after: u64,
    clock: SharedClock,
    layout: Layout,
}

impl TtlCompaction {
    /// The compaction cleanup of a state with `ttl`, when `ttl` asks for it.
    pub(crate) fn new(ttl: &StateTtlConfig, clock: SharedClock, layout: Layout) -> Option<Self> {
        let query_time_after = ttl.cleanup.rocksdb_compaction_query_time_after?;
        Some(TtlCompaction {
            ttl: ttl.clone(),
            query_time_after: query_time_after.max(1),
            clock,
            layout,
        })
    }

    /// Whether a stored value has expired at `now`. Bytes that do not parse are kept: the
    /// filter never deletes what it cannot read.
    fn expired(&self, value: &[u8], now: u64) -> bool {
        match self.layout {
            Layout::Value => timestamp(value).is_some_and(|ts| self.ttl.is_expired(ts, now)),
            Layout::List(element_len) => self.list_expired(value, now, element_len),
        }
    }

    /// A list goes when every element has expired. Partly expired lists are kept whole:
    /// rewriting a value needs an owned `Decision::Change`, which the `rocksdb` crate
    /// only offers for `'static` bytes; their expired elements go on the next access.
    fn list_expired(
        &self,
        value: &[u8],
        now: u64,
        element_len: fn(&[u8]) -> Option<usize>,
    ) -> bool {
        let Some(count) = timestamp(value) else {
            return false;
        };
        let mut rest = &value[U64..];
        for _ in 0..count {
            let expired = timestamp(rest).is_some_and(|ts| self.ttl.is_expired(ts, now));
            if !expired {
                return false;
            }
            match element_len(rest) {
                Some(len) if len <= rest.len() => rest = &rest[len..],
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

/// The first 8 bytes as a big-endian `u64`.
fn timestamp(bytes: &[u8]) -> Option<u64> {
    let head: [u8; U64] = bytes.get(..U64)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// The TTL compaction configuration of one column family, set when its state registers.
pub(crate) type TtlSlot = Arc<RwLock<Option<Arc<TtlCompaction>>>>;

/// Creates one [`TtlFilter`] per compaction, with the configuration of the moment.
pub(crate) struct TtlFilterFactory {
    slot: TtlSlot,
    name: CString,
}

impl TtlFilterFactory {
    pub(crate) fn new(slot: TtlSlot) -> Self {
        TtlFilterFactory {
            slot,
            name: c"cornerstone-ttl-factory".to_owned(),
        }
    }
}

impl CompactionFilterFactory for TtlFilterFactory {
    type Filter = TtlFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> TtlFilter {
        let config = self.slot.read().clone();
        let now = config.as_ref().map_or(0, |c| c.clock.now_millis());
        TtlFilter {
            config,
            now,
            since_query: 0,
            name: c"cornerstone-ttl".to_owned(),
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

/// The filter of one compaction run: reads the clock at its start and again after every
/// `query_time_after` entries, as Flink's `queryTimeAfterNumEntries`.
pub(crate) struct TtlFilter {
    config: Option<Arc<TtlCompaction>>,
    now: u64,
    since_query: u64,
    name: CString,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], value: &[u8]) -> Decision {
        let Some(config) = &self.config else {
            return Decision::Keep;
        };
        if self.since_query >= config.query_time_after {
            self.now = config.clock.now_millis();
            self.since_query = 0;
        }
        self.since_query += 1;
        if config.expired(value, self.now) {
            Decision::Remove
        } else {
            Decision::Keep
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cornerstone_backend_api::ManualClock;
    use cornerstone_backend_api::spi::codec;
    use cornerstone_backend_api::ttl::TtlValue;

    use super::*;

    fn element_len(bytes: &[u8]) -> Option<usize> {
        codec::decode_prefix::<TtlValue<String>>(bytes)
            .ok()
            .map(|(_, n)| n)
    }

    fn config(layout: Layout) -> TtlCompaction {
        let ttl = StateTtlConfig::new(Duration::from_millis(100)).cleanup_in_rocksdb_compaction(3);
        TtlCompaction::new(&ttl, Arc::new(ManualClock::new(0)), layout).unwrap()
    }

    fn list(stamps: &[u64]) -> Vec<u8> {
        let elements: Vec<TtlValue<String>> = stamps
            .iter()
            .map(|&timestamp| TtlValue {
                timestamp,
                value: "x".repeat(timestamp as usize % 7),
            })
            .collect();
        codec::encode(&elements).unwrap()
    }

    #[test]
    fn values_expire_by_their_leading_timestamp() {
        let c = config(Layout::Value);
        let v = codec::encode(&TtlValue {
            timestamp: 1_000,
            value: 7u32,
        })
        .unwrap();
        assert!(!c.expired(&v, 1_099));
        assert!(c.expired(&v, 1_100));
        assert!(
            !c.expired(&[1, 2, 3], u64::MAX),
            "unreadable bytes are kept"
        );
    }

    #[test]
    fn a_list_goes_only_when_every_element_expired() {
        let c = config(Layout::List(element_len));
        assert!(c.expired(&list(&[10, 20, 30]), 130));
        assert!(!c.expired(&list(&[10, 20, 30]), 129));
        assert!(!c.expired(&list(&[10, 500, 30]), 200));
        assert!(
            c.expired(&list(&[]), 0),
            "an empty list holds nothing alive"
        );
        let mut truncated = list(&[10, 20]);
        truncated.pop();
        assert!(
            !c.expired(&truncated, u64::MAX),
            "unreadable lists are kept"
        );
        let mut trailing = list(&[10]);
        trailing.push(0);
        assert!(!c.expired(&trailing, u64::MAX));
    }

    #[test]
    fn the_filter_reads_the_clock_every_n_entries() {
        let clock = Arc::new(ManualClock::new(0));
        let ttl = StateTtlConfig::new(Duration::from_millis(100)).cleanup_in_rocksdb_compaction(2);
        let slot: TtlSlot = Arc::default();
        *slot.write() = TtlCompaction::new(&ttl, clock.clone(), Layout::Value).map(Arc::new);
        let mut factory = TtlFilterFactory::new(slot);
        let context = CompactionFilterContext {
            is_full_compaction: true,
            is_manual_compaction: true,
        };
        let mut filter = factory.create(context);
        let v = codec::encode(&TtlValue {
            timestamp: 0,
            value: 1u8,
        })
        .unwrap();
        let removed = |d: Decision| matches!(d, Decision::Remove);
        assert!(!removed(filter.filter(0, b"k", &v)));
        clock.set(500);
        assert!(
            !removed(filter.filter(0, b"k", &v)),
            "time read at entry 0 only"
        );
        assert!(
            removed(filter.filter(0, b"k", &v)),
            "time read again at entry 2"
        );
    }

    #[test]
    fn without_compaction_cleanup_there_is_no_filter_config() {
        let ttl = StateTtlConfig::new(Duration::from_secs(1));
        assert!(TtlCompaction::new(&ttl, Arc::new(ManualClock::new(0)), Layout::Value).is_none());
    }
}
