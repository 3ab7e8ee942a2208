//! Key groups: a backend owns a range of them and holds only keys of that range.

use super::reducing::sum;
use super::{Harness, MAX_P, clock, create, expect_err, fresh, key_where, kg, params};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::error::ErrorKind;
use crate::keygroup::KeyGroupRange;

/// Writing a key whose key group is outside the backend's range is an `InvalidInput`
/// error, for every kind of write; reads never find such a key; the backend keeps working.
pub fn foreign_key_is_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let range = KeyGroupRange::for_subtask(MAX_P, 2, 0).unwrap();
    let backend = create::<H, u64>(h, params(&clock, MAX_P, range)).unwrap();
    let own = key_where(MAX_P, 0, |g| range.contains(g));
    let foreign = key_where(MAX_P, 0, |g| !range.contains(g));
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    let reducing = backend.reducing_state::<u64, ()>(&sum("r")).unwrap();

    expect_err(value.update(&foreign, &(), 1), ErrorKind::InvalidInput);
    expect_err(
        value.transform(&foreign, &(), |_| Some(1)),
        ErrorKind::InvalidInput,
    );
    expect_err(list.add(&foreign, &(), 1), ErrorKind::InvalidInput);
    expect_err(
        list.add_all(&foreign, &(), vec![1, 2]),
        ErrorKind::InvalidInput,
    );
    expect_err(list.update(&foreign, &(), vec![1]), ErrorKind::InvalidInput);
    expect_err(map.put(&foreign, &(), 1, 1), ErrorKind::InvalidInput);
    expect_err(
        map.put_all(&foreign, &(), vec![(1, 1)]),
        ErrorKind::InvalidInput,
    );
    expect_err(reducing.add(&foreign, &(), 1), ErrorKind::InvalidInput);

    // Reads of a foreign key fail or find nothing.
    assert!(!matches!(value.get(&foreign, &()), Ok(Some(_))));
    assert!(!matches!(list.get(&foreign, &()), Ok(v) if !v.is_empty()));
    assert!(!matches!(map.get(&foreign, &(), &1), Ok(Some(_))));
    for keys in [
        value.state_keys(&()),
        list.state_keys(&()),
        map.state_keys(&()),
    ] {
        assert!(keys.unwrap().is_empty());
    }

    // Own keys still work.
    value.update(&own, &(), 1).unwrap();
    list.add(&own, &(), 1).unwrap();
    map.put(&own, &(), 1, 1).unwrap();
    reducing.add(&own, &(), 1).unwrap();
    assert_eq!(value.get(&own, &()).unwrap(), Some(1));
    assert_eq!(list.get(&own, &()).unwrap(), [1]);
    assert_eq!(map.get(&own, &(), &1).unwrap(), Some(1));
    assert_eq!(reducing.get(&own, &()).unwrap(), Some(1));
    assert_eq!(value.state_keys(&()).unwrap(), vec![own]);
}

/// A backend reports the max parallelism and range it was created with; keys of every key
/// group of its range are accepted, at the edges too.
pub fn backend_reports_its_range<H: Harness>(h: &H) {
    let clock = clock();
    for (max_p, p, i) in [(128, 3, 1), (7, 7, 6), (1000, 4, 0), (1, 1, 0)] {
        let range = KeyGroupRange::for_subtask(max_p, p, i).unwrap();
        let backend = create::<H, u64>(h, params(&clock, max_p, range)).unwrap();
        assert_eq!(backend.max_parallelism(), max_p);
        assert_eq!(backend.key_group_range(), range);
        let state = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
            .unwrap();
        let first = key_where(max_p, 0, |g| g == range.first());
        let last = key_where(max_p, first + 1, |g| g == range.last());
        state.update(&first, &(), 1).unwrap();
        state.update(&last, &(), 2).unwrap();
        assert_eq!(state.get(&first, &()).unwrap(), Some(1));
        assert_eq!(state.get(&last, &()).unwrap(), Some(2));
        if range.last() + 1 < max_p {
            let outside = key_where(max_p, 0, |g| g == range.last() + 1);
            expect_err(state.update(&outside, &(), 3), ErrorKind::InvalidInput);
        }
        if range.first() > 0 {
            let outside = key_where(max_p, 0, |g| g == range.first() - 1);
            expect_err(state.update(&outside, &(), 3), ErrorKind::InvalidInput);
        }
    }
}

/// Keys in different key groups, and different keys in the same key group, do not
/// interfere.
pub fn keys_in_different_key_groups_do_not_interfere<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    // Two keys per key group for the first 16 key groups.
    let mut keys = Vec::new();
    for g in 0..16 {
        let a = key_where(MAX_P, 0, |x| x == g);
        let b = key_where(MAX_P, a + 1, |x| x == g);
        keys.push(a);
        keys.push(b);
    }
    for &k in &keys {
        state.update(&k, &(), k * 2).unwrap();
        list.add(&k, &(), k).unwrap();
    }
    // Clear the first key of every group: its twin in the same group is untouched.
    for pair in keys.chunks(2) {
        state.clear(&pair[0], &()).unwrap();
        list.clear(&pair[0], &()).unwrap();
    }
    for pair in keys.chunks(2) {
        assert_eq!(kg(&pair[0], MAX_P), kg(&pair[1], MAX_P));
        assert_eq!(state.get(&pair[0], &()).unwrap(), None);
        assert_eq!(state.get(&pair[1], &()).unwrap(), Some(pair[1] * 2));
        assert!(list.get(&pair[0], &()).unwrap().is_empty());
        assert_eq!(list.get(&pair[1], &()).unwrap(), [pair[1]]);
    }
    let mut remaining = state.state_keys(&()).unwrap();
    remaining.sort_unstable();
    let mut expected: Vec<u64> = keys.chunks(2).map(|p| p[1]).collect();
    expected.sort_unstable();
    assert_eq!(remaining, expected);
}
