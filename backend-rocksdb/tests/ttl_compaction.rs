//! TTL cleanup in RocksDB compactions: the compaction filter drops expired entries from the
//! stored data, only for states that ask for it, and also on column families opened by a
//! restore before the state registers again.
//!
//! The states here return expired values that are not cleaned up yet
//! (`ReturnExpiredIfNotCleanedUp`), and `state_keys` lists stored keys whether expired or
//! not, so what a compaction removed is visible.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use cornerstone_backend_api::conformance::Harness;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    ListState, ListStateDescriptor, ManualClock, MapState, MapStateDescriptor, StateBackend,
    StateTtlConfig, StateVisibility, ValueState, ValueStateDescriptor,
};
use cornerstone_backend_rocksdb::RocksDbKeyedStateBackend;

use common::RocksHarness;

const MAX_P: u32 = 128;
const TTL_MS: u64 = 1_000;
const KEYS: u64 = 200;

fn ttl(compaction: bool) -> StateTtlConfig {
    let ttl = StateTtlConfig::new(Duration::from_millis(TTL_MS))
        .visibility(StateVisibility::ReturnExpiredIfNotCleanedUp);
    if compaction {
        ttl.cleanup_in_rocksdb_compaction(10)
    } else {
        ttl
    }
}

struct States {
    swept: ValueState<u64, u64, ()>,
    kept: ValueState<u64, u64, ()>,
    list: ListState<u64, u64, ()>,
    map: MapState<u64, u32, u64, ()>,
}

fn states(backend: &RocksDbKeyedStateBackend<u64>) -> States {
    States {
        swept: backend
            .value_state(&ValueStateDescriptor::new("swept").with_ttl(ttl(true)))
            .unwrap(),
        kept: backend
            .value_state(&ValueStateDescriptor::new("kept").with_ttl(ttl(false)))
            .unwrap(),
        list: backend
            .list_state(&ListStateDescriptor::new("list").with_ttl(ttl(true)))
            .unwrap(),
        map: backend
            .map_state(&MapStateDescriptor::new("map").with_ttl(ttl(true)))
            .unwrap(),
    }
}

fn backend(
    h: &RocksHarness,
    clock: &ManualClock,
    restore: Vec<cornerstone_backend_api::KeyedStateHandle>,
) -> RocksDbKeyedStateBackend<u64> {
    let params = KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P))
        .clock(Arc::new(clock.clone()))
        .restore(restore, h.reader());
    h.factory().create_keyed_backend::<u64>(params).unwrap()
}

/// At time 0 every key gets a value in both value states, a list element and map entry 0;
/// at time 1500 the upper half of the keys gets a second list element and map entry 1.
fn write(s: &States, clock: &ManualClock) {
    clock.set(0);
    for k in 0..KEYS {
        s.swept.update(&k, &(), k).unwrap();
        s.kept.update(&k, &(), k).unwrap();
        s.list.add(&k, &(), k).unwrap();
        s.map.put(&k, &(), 0, k).unwrap();
    }
    clock.set(1_500);
    for k in KEYS / 2..KEYS {
        s.list.add(&k, &(), k + 1).unwrap();
        s.map.put(&k, &(), 1, k + 1).unwrap();
    }
}

/// A backend restored from checkpoint 1 of a backend that [`write`] filled.
fn written_and_restored(h: &RocksHarness, clock: &ManualClock) -> RocksDbKeyedStateBackend<u64> {
    let source = backend(h, clock, Vec::new());
    write(&states(&source), clock);
    let handles = source
        .snapshot(CheckpointId(1))
        .unwrap()
        .write(&*h.stream_factory(CheckpointId(1)))
        .unwrap()
        .keyed;
    backend(h, clock, handles)
}

/// At time 2100 (the writes of time 0 expired, those of 1500 not), compacts and checks
/// what is left.
fn compact_and_check(backend: &RocksDbKeyedStateBackend<u64>, s: &States, clock: &ManualClock) {
    clock.set(2_100);
    let all: Vec<u64> = (0..KEYS).collect();
    let upper: Vec<u64> = (KEYS / 2..KEYS).collect();
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };
    // Before the compaction, expired entries are all still stored.
    assert_eq!(sorted(s.swept.state_keys(&()).unwrap()), all);
    assert_eq!(sorted(s.list.state_keys(&()).unwrap()), all);

    backend.compact().unwrap();

    assert!(
        s.swept.state_keys(&()).unwrap().is_empty(),
        "expired values of a state with compaction cleanup are dropped"
    );
    assert_eq!(
        sorted(s.kept.state_keys(&()).unwrap()),
        all,
        "a state without compaction cleanup keeps its expired values"
    );
    assert_eq!(s.kept.get(&3, &()).unwrap(), Some(3));
    // A list goes when every element expired; a partly expired one stays whole.
    assert_eq!(sorted(s.list.state_keys(&()).unwrap()), upper);
    assert_eq!(s.list.get(&150, &()).unwrap(), vec![150, 151]);
    // Map entries expire one by one.
    assert_eq!(sorted(s.map.state_keys(&()).unwrap()), upper);
    assert_eq!(s.map.entries(&150, &()).unwrap(), vec![(1, 151)]);
    assert!(s.map.is_empty(&3, &()).unwrap());
}

#[test]
fn compaction_drops_expired_entries_of_states_that_ask_for_it() {
    let h = RocksHarness::incremental();
    let clock = ManualClock::new(0);
    let backend = backend(&h, &clock, Vec::new());
    let s = states(&backend);
    write(&s, &clock);
    compact_and_check(&backend, &s, &clock);
}

/// A restore opens the column families before the states register again: their filter
/// starts empty and takes the TTL of the registration. Checked for both restore paths
/// (opening an incremental snapshot's files, and inserting a full snapshot's records).
#[test]
fn compaction_cleanup_applies_to_restored_states() {
    for h in [RocksHarness::incremental(), RocksHarness::full()] {
        let clock = ManualClock::new(0);
        let restored = written_and_restored(&h, &clock);
        // Registered before the clock passes the TTL: nothing has been read or cleaned.
        let s = states(&restored);
        compact_and_check(&restored, &s, &clock);
    }
}

/// A restored TTL state that is not registered again keeps its entries: the filter of
/// its column family has no TTL to apply.
#[test]
fn unregistered_restored_states_keep_their_entries() {
    let h = RocksHarness::incremental();
    let clock = ManualClock::new(0);
    let restored = written_and_restored(&h, &clock);
    clock.set(10_000);
    restored.compact().unwrap();
    let swept = restored
        .value_state::<u64, ()>(&ValueStateDescriptor::new("swept").with_ttl(ttl(true)))
        .unwrap();
    assert_eq!(swept.state_keys(&()).unwrap().len(), KEYS as usize);
}
