//! State time-to-live, driven by a manual clock.

use std::time::Duration;

use super::reducing::{average, sum};
use super::{Harness, T0, checkpoint, clock, fresh, restore_same, roundtrip, skip, sorted};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::ttl::{StateTtlConfig, StateVisibility, UpdateType};

/// The TTL of these cases, in milliseconds.
const TTL: u64 = 100;

pub(crate) fn ttl(update: UpdateType, visibility: StateVisibility) -> StateTtlConfig {
    StateTtlConfig::new(Duration::from_millis(TTL))
        .update_type(update)
        .visibility(visibility)
}

pub(crate) fn default_ttl() -> StateTtlConfig {
    ttl(
        UpdateType::OnCreateAndWrite,
        StateVisibility::NeverReturnExpired,
    )
}

pub(crate) fn return_expired() -> StateTtlConfig {
    ttl(
        UpdateType::OnCreateAndWrite,
        StateVisibility::ReturnExpiredIfNotCleanedUp,
    )
}

/// `OnCreateAndWrite`: writes refresh the timestamp, reads do not.
pub fn ttl_on_create_and_write<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v").with_ttl(default_ttl()))
        .unwrap();
    state.update(&1, &(), 1).unwrap();
    state.update(&2, &(), 2).unwrap();
    state.update(&3, &(), 3).unwrap();
    clock.set(T0 + 90);
    // Reading does not refresh key 1; writing refreshes key 2; transform is a write.
    assert_eq!(state.get(&1, &()).unwrap(), Some(1));
    state.update(&2, &(), 20).unwrap();
    state.transform(&3, &(), |v| v.map(|v| v + 1)).unwrap();
    clock.set(T0 + 150);
    assert_eq!(state.get(&1, &()).unwrap(), None);
    assert_eq!(state.get(&2, &()).unwrap(), Some(20));
    assert_eq!(state.get(&3, &()).unwrap(), Some(4));
    clock.set(T0 + 190);
    assert_eq!(state.get(&2, &()).unwrap(), None);
    assert_eq!(state.get(&3, &()).unwrap(), None);
}

/// `OnReadAndWrite`: reading refreshes the timestamp too.
pub fn ttl_on_read_and_write_refreshes_on_read<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let config = ttl(
        UpdateType::OnReadAndWrite,
        StateVisibility::NeverReturnExpired,
    );
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v").with_ttl(config.clone()))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l").with_ttl(config.clone()))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m").with_ttl(config))
        .unwrap();
    for k in [1, 2] {
        value.update(&k, &(), k).unwrap();
        list.add(&k, &(), k).unwrap();
        map.put(&k, &(), k, k).unwrap();
    }
    clock.set(T0 + 90);
    // Read key 1 only.
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(list.get(&1, &()).unwrap(), [1]);
    assert_eq!(map.get(&1, &(), &1).unwrap(), Some(1));
    clock.set(T0 + 150);
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(list.get(&1, &()).unwrap(), [1]);
    assert_eq!(map.entries(&1, &()).unwrap(), vec![(1, 1)]);
    assert_eq!(value.get(&2, &()).unwrap(), None);
    assert!(list.get(&2, &()).unwrap().is_empty());
    assert_eq!(map.get(&2, &(), &2).unwrap(), None);
    // Each read moved the expiry to read time + TTL.
    clock.set(T0 + 249);
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(list.get(&1, &()).unwrap(), [1]);
    assert_eq!(map.get(&1, &(), &1).unwrap(), Some(1));
    clock.set(T0 + 349);
    assert_eq!(value.get(&1, &()).unwrap(), None);
    assert!(list.get(&1, &()).unwrap().is_empty());
    assert!(map.is_empty(&1, &()).unwrap());
}

/// `NeverReturnExpired`: an expired value reads as absent, also through `transform` and
/// `contains`, and the read removes it.
pub fn ttl_never_return_expired<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v").with_ttl(default_ttl()))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m").with_ttl(default_ttl()))
        .unwrap();
    value.update(&1, &(), 1).unwrap();
    value.update(&2, &(), 2).unwrap();
    map.put(&1, &(), 1, 1).unwrap();
    clock.set(T0 + TTL + 1);
    assert_eq!(value.get(&1, &()).unwrap(), None);
    assert_eq!(value.get(&1, &()).unwrap(), None);
    assert!(!value.state_keys(&()).unwrap().contains(&1));
    let mut seen = None;
    value
        .transform(&2, &(), |cur| {
            seen = Some(cur);
            Some(20)
        })
        .unwrap();
    assert_eq!(seen, Some(None), "transform must not see an expired value");
    assert_eq!(value.get(&2, &()).unwrap(), Some(20));
    assert!(!map.contains(&1, &(), &1).unwrap());
    assert_eq!(map.get(&1, &(), &1).unwrap(), None);
    assert!(map.is_empty(&1, &()).unwrap());
}

/// `ReturnExpiredIfNotCleanedUp`: the read that finds an expired value returns it once and
/// removes it.
pub fn ttl_return_expired_if_not_cleaned_up<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v").with_ttl(return_expired()))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l").with_ttl(return_expired()))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m").with_ttl(return_expired()))
        .unwrap();
    value.update(&1, &(), 1).unwrap();
    list.add_all(&1, &(), vec![1, 2]).unwrap();
    map.put(&1, &(), 1, 10).unwrap();
    map.put(&1, &(), 2, 20).unwrap();
    clock.set(T0 + TTL + 1);
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(value.get(&1, &()).unwrap(), None);
    assert!(value.state_keys(&()).unwrap().is_empty());
    assert_eq!(list.get(&1, &()).unwrap(), [1, 2]);
    assert!(list.get(&1, &()).unwrap().is_empty());
    assert!(list.state_keys(&()).unwrap().is_empty());
    assert_eq!(map.get(&1, &(), &1).unwrap(), Some(10));
    assert_eq!(map.get(&1, &(), &1).unwrap(), None);
    assert_eq!(map.entries(&1, &()).unwrap(), vec![(2, 20)]);
    assert!(map.entries(&1, &()).unwrap().is_empty());
    assert!(map.state_keys(&()).unwrap().is_empty());
}

/// A value written at `t` is visible at `t + ttl - 1` and expired at exactly `t + ttl`.
pub fn ttl_expires_exactly_at_ttl<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v").with_ttl(default_ttl()))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l").with_ttl(default_ttl()))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m").with_ttl(default_ttl()))
        .unwrap();
    value.update(&1, &(), 1).unwrap();
    list.add(&1, &(), 1).unwrap();
    map.put(&1, &(), 1, 1).unwrap();
    clock.set(T0 + TTL - 1);
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(list.get(&1, &()).unwrap(), [1]);
    assert_eq!(map.get(&1, &(), &1).unwrap(), Some(1));
    clock.set(T0 + TTL);
    assert_eq!(value.get(&1, &()).unwrap(), None);
    assert!(list.get(&1, &()).unwrap().is_empty());
    assert_eq!(map.get(&1, &(), &1).unwrap(), None);
}

/// List elements expire one by one, by the time each was added; an emptied list is gone.
pub fn ttl_list_elements_expire_individually<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let list = backend
        .list_state::<String, ()>(&ListStateDescriptor::new("l").with_ttl(default_ttl()))
        .unwrap();
    list.add(&1, &(), "a".into()).unwrap();
    list.add(&2, &(), "only".into()).unwrap();
    clock.set(T0 + 50);
    list.add_all(&1, &(), vec!["b".into(), "c".into()]).unwrap();
    clock.set(T0 + 100);
    assert_eq!(list.get(&1, &()).unwrap(), ["b", "c"]);
    let mut seen = Vec::new();
    list.for_each(&1, &(), |v| seen.push(v.clone())).unwrap();
    assert_eq!(seen, ["b", "c"]);
    assert!(list.get(&2, &()).unwrap().is_empty());
    assert_eq!(list.state_keys(&()).unwrap(), vec![1]);
    // update stamps every element anew.
    list.update(&1, &(), vec!["x".into(), "y".into()]).unwrap();
    clock.set(T0 + 199);
    assert_eq!(list.get(&1, &()).unwrap(), ["x", "y"]);
    clock.set(T0 + 200);
    assert!(list.get(&1, &()).unwrap().is_empty());
    assert!(list.state_keys(&()).unwrap().is_empty());
}

/// With `ReturnExpiredIfNotCleanedUp`, a list of expired and live elements is returned in
/// insertion order once; then only the live elements remain.
pub fn ttl_list_return_expired_keeps_order<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l").with_ttl(return_expired()))
        .unwrap();
    list.add(&1, &(), 1).unwrap();
    list.add(&2, &(), 1).unwrap();
    clock.set(T0 + 50);
    list.add(&1, &(), 2).unwrap();
    list.add(&2, &(), 2).unwrap();
    clock.set(T0 + 10);
    list.add(&1, &(), 3).unwrap();
    list.add(&2, &(), 3).unwrap();
    clock.set(T0 + 120);
    // Elements 1 and 3 have expired, 2 has not.
    assert_eq!(list.get(&1, &()).unwrap(), [1, 2, 3]);
    assert_eq!(list.get(&1, &()).unwrap(), [2]);
    let mut seen = Vec::new();
    list.for_each(&2, &(), |v| seen.push(*v)).unwrap();
    assert_eq!(seen, [1, 2, 3]);
    assert_eq!(list.get(&2, &()).unwrap(), [2]);
}

/// Map entries expire one by one; an emptied map is gone.
pub fn ttl_map_entries_expire_individually<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let map = backend
        .map_state::<String, u64, ()>(&MapStateDescriptor::new("m").with_ttl(default_ttl()))
        .unwrap();
    let (a, b, c) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
    map.put(&1, &(), a.clone(), 1).unwrap();
    map.put(&1, &(), b.clone(), 2).unwrap();
    clock.set(T0 + 50);
    map.put_all(&1, &(), vec![(b.clone(), 20), (c.clone(), 30)])
        .unwrap();
    clock.set(T0 + 100);
    assert_eq!(map.get(&1, &(), &a).unwrap(), None);
    assert!(!map.contains(&1, &(), &a).unwrap());
    assert_eq!(map.get(&1, &(), &b).unwrap(), Some(20));
    assert_eq!(
        sorted(map.entries(&1, &()).unwrap()),
        vec![(b.clone(), 20), (c.clone(), 30)]
    );
    assert_eq!(
        sorted(map.keys(&1, &()).unwrap()),
        vec![b.clone(), c.clone()]
    );
    assert_eq!(sorted(map.values(&1, &()).unwrap()), vec![20, 30]);
    assert!(!map.is_empty(&1, &()).unwrap());
    clock.set(T0 + 150);
    assert!(map.is_empty(&1, &()).unwrap());
    assert!(map.entries(&1, &()).unwrap().is_empty());
    assert!(map.state_keys(&()).unwrap().is_empty());
}

/// Reducing and aggregating state start over once their value has expired.
pub fn ttl_reducing_restarts_after_expiry<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let reducing = backend
        .reducing_state::<u64, ()>(&sum("sum").with_ttl(return_expired()))
        .unwrap();
    let aggregating = backend
        .aggregating_state::<u64, (u64, u64), f64, ()>(&average("avg").with_ttl(default_ttl()))
        .unwrap();
    reducing.add(&1, &(), 5).unwrap();
    aggregating.add(&1, &(), 5).unwrap();
    clock.set(T0 + 50);
    reducing.add(&1, &(), 1).unwrap();
    aggregating.add(&1, &(), 7).unwrap();
    // Adding refreshed the timestamps at T0 + 50.
    clock.set(T0 + 149);
    assert_eq!(reducing.get(&1, &()).unwrap(), Some(6));
    assert_eq!(aggregating.get(&1, &()).unwrap(), Some(6.0));
    clock.set(T0 + 150);
    reducing.add(&1, &(), 1).unwrap();
    aggregating.add(&1, &(), 1).unwrap();
    assert_eq!(reducing.get(&1, &()).unwrap(), Some(1));
    assert_eq!(aggregating.accumulator(&1, &()).unwrap(), Some((1, 1)));
}

/// With cleanup in full snapshots, expired entries are left out of a snapshot: after a
/// restore they are gone even with `ReturnExpiredIfNotCleanedUp`. The working state keeps
/// them until read.
pub fn ttl_cleanup_full_snapshot_drops_expired<H: Harness>(h: &H) {
    if !h.full_snapshot_ttl_cleanup() {
        return skip(
            "ttl_cleanup_full_snapshot_drops_expired",
            "snapshots are not full snapshots (incremental native snapshots)",
        );
    }
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let config = return_expired().cleanup_full_snapshot();
    let value_d = ValueStateDescriptor::<u64>::new("v").with_ttl(config.clone());
    let list_d = ListStateDescriptor::<u64>::new("l").with_ttl(config.clone());
    let map_d = MapStateDescriptor::<u64, u64>::new("m").with_ttl(config);
    let value = backend.value_state::<u64, ()>(&value_d).unwrap();
    let list = backend.list_state::<u64, ()>(&list_d).unwrap();
    let map = backend.map_state::<u64, u64, ()>(&map_d).unwrap();
    value.update(&1, &(), 1).unwrap();
    list.add(&1, &(), 1).unwrap();
    list.add(&3, &(), 1).unwrap();
    map.put(&1, &(), 1, 1).unwrap();
    map.put(&3, &(), 1, 1).unwrap();
    clock.set(T0 + 60);
    value.update(&2, &(), 2).unwrap();
    list.add(&1, &(), 2).unwrap();
    map.put(&1, &(), 2, 2).unwrap();
    clock.set(T0 + 120);
    let state = checkpoint(h, &backend, 1);

    let restored = restore_same(h, &clock, &backend, &state);
    let r_value = restored.value_state::<u64, ()>(&value_d).unwrap();
    let r_list = restored.list_state::<u64, ()>(&list_d).unwrap();
    let r_map = restored.map_state::<u64, u64, ()>(&map_d).unwrap();
    assert_eq!(r_value.state_keys(&()).unwrap(), vec![2]);
    assert_eq!(r_list.state_keys(&()).unwrap(), vec![1]);
    assert_eq!(r_map.state_keys(&()).unwrap(), vec![1]);
    assert_eq!(r_value.get(&1, &()).unwrap(), None);
    assert_eq!(r_value.get(&2, &()).unwrap(), Some(2));
    assert_eq!(r_list.get(&1, &()).unwrap(), [2]);
    assert!(r_list.get(&3, &()).unwrap().is_empty());
    assert_eq!(r_map.entries(&1, &()).unwrap(), vec![(2, 2)]);
    assert!(r_map.entries(&3, &()).unwrap().is_empty());

    // The working state still has the expired entries, returned once.
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(list.get(&1, &()).unwrap(), [1, 2]);
    assert_eq!(map.get(&3, &(), &1).unwrap(), Some(1));
}

/// Without cleanup in full snapshots, expired entries that were not cleaned up are in the
/// snapshot: after a restore, `ReturnExpiredIfNotCleanedUp` returns them once.
pub fn ttl_expired_kept_in_snapshot_without_cleanup<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value_d = ValueStateDescriptor::<u64>::new("v").with_ttl(return_expired());
    let list_d = ListStateDescriptor::<u64>::new("l").with_ttl(return_expired());
    let map_d = MapStateDescriptor::<u64, u64>::new("m").with_ttl(return_expired());
    let value = backend.value_state::<u64, ()>(&value_d).unwrap();
    let list = backend.list_state::<u64, ()>(&list_d).unwrap();
    let map = backend.map_state::<u64, u64, ()>(&map_d).unwrap();
    value.update(&1, &(), 1).unwrap();
    list.add(&1, &(), 1).unwrap();
    map.put(&1, &(), 1, 1).unwrap();
    clock.set(T0 + 500);
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let r_value = restored.value_state::<u64, ()>(&value_d).unwrap();
    let r_list = restored.list_state::<u64, ()>(&list_d).unwrap();
    let r_map = restored.map_state::<u64, u64, ()>(&map_d).unwrap();
    assert_eq!(r_value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(r_value.get(&1, &()).unwrap(), None);
    assert_eq!(r_list.get(&1, &()).unwrap(), [1]);
    assert!(r_list.get(&1, &()).unwrap().is_empty());
    assert_eq!(r_map.get(&1, &(), &1).unwrap(), Some(1));
    assert_eq!(r_map.get(&1, &(), &1).unwrap(), None);
}

/// A restore keeps the timestamps: values expire when they would have without it.
pub fn ttl_timestamps_survive_restore<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value_d = ValueStateDescriptor::<u64>::new("v").with_ttl(default_ttl());
    let list_d = ListStateDescriptor::<u64>::new("l").with_ttl(default_ttl());
    let value = backend.value_state::<u64, ()>(&value_d).unwrap();
    let list = backend.list_state::<u64, ()>(&list_d).unwrap();
    value.update(&1, &(), 1).unwrap();
    list.add(&1, &(), 1).unwrap();
    clock.set(T0 + 40);
    list.add(&1, &(), 2).unwrap();
    clock.set(T0 + 50);
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let value = restored.value_state::<u64, ()>(&value_d).unwrap();
    let list = restored.list_state::<u64, ()>(&list_d).unwrap();
    clock.set(T0 + 99);
    assert_eq!(value.get(&1, &()).unwrap(), Some(1));
    assert_eq!(list.get(&1, &()).unwrap(), [1, 2]);
    clock.set(T0 + 100);
    assert_eq!(value.get(&1, &()).unwrap(), None);
    assert_eq!(list.get(&1, &()).unwrap(), [2]);
    clock.set(T0 + 140);
    assert!(list.get(&1, &()).unwrap().is_empty());
}

/// Incremental cleanup removes expired values as the state is accessed, without reading
/// them: the keys disappear from `state_keys`. Live values stay.
pub fn ttl_incremental_cleanup_removes_expired_values<H: Harness>(h: &H) {
    if !h.incremental_ttl_cleanup() {
        return skip(
            "ttl_incremental_cleanup_removes_expired_values",
            "no incremental TTL cleanup",
        );
    }
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value = backend
        .value_state::<u64, u64>(
            &ValueStateDescriptor::new("v").with_ttl(default_ttl().cleanup_incrementally(5)),
        )
        .unwrap();
    for k in 0..40 {
        value.update(&k, &(k % 2), k).unwrap();
    }
    clock.set(T0 + 60);
    for k in 100..110 {
        value.update(&k, &0, k).unwrap();
    }
    clock.set(T0 + 120);
    let live: Vec<u64> = (100..110).collect();
    for _ in 0..100 {
        if value.state_keys(&0).unwrap().len() == live.len()
            && value.state_keys(&1).unwrap().is_empty()
        {
            break;
        }
        assert_eq!(value.get(&100, &0).unwrap(), Some(100));
    }
    assert_eq!(
        sorted(value.state_keys(&0).unwrap()),
        live,
        "expired keys were not cleaned up"
    );
    assert!(
        value.state_keys(&1).unwrap().is_empty(),
        "expired keys were not cleaned up"
    );
    for k in live {
        assert_eq!(value.get(&k, &0).unwrap(), Some(k));
    }
}

/// Incremental cleanup removes expired list elements and map entries; lists and maps
/// emptied by it are gone.
pub fn ttl_incremental_cleanup_lists_and_maps<H: Harness>(h: &H) {
    if !h.incremental_ttl_cleanup() {
        return skip(
            "ttl_incremental_cleanup_lists_and_maps",
            "no incremental TTL cleanup",
        );
    }
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let config = default_ttl().cleanup_incrementally(3);
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l").with_ttl(config.clone()))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m").with_ttl(config))
        .unwrap();
    for k in 0..20 {
        list.add_all(&k, &(), vec![1, 2]).unwrap();
        map.put_all(&k, &(), vec![(1, 1), (2, 2)]).unwrap();
    }
    clock.set(T0 + 60);
    for k in 0..5 {
        list.add(&k, &(), 3).unwrap();
        map.put(&k, &(), 3, 3).unwrap();
    }
    clock.set(T0 + 120);
    let live: Vec<u64> = (0..5).collect();
    for _ in 0..200 {
        if list.state_keys(&()).unwrap().len() == live.len()
            && map.state_keys(&()).unwrap().len() == live.len()
        {
            break;
        }
        // Accesses of a key that does not exist still drive the cleanup.
        assert!(list.get(&1000, &()).unwrap().is_empty());
        assert_eq!(map.get(&1000, &(), &1).unwrap(), None);
    }
    assert_eq!(
        sorted(list.state_keys(&()).unwrap()),
        live,
        "expired lists were not cleaned up"
    );
    assert_eq!(
        sorted(map.state_keys(&()).unwrap()),
        live,
        "expired maps were not cleaned up"
    );
    for k in live {
        assert_eq!(list.get(&k, &()).unwrap(), [3]);
        assert_eq!(map.entries(&k, &()).unwrap(), vec![(3, 3)]);
    }
}
