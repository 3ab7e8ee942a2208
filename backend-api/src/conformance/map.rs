//! Map state.

use super::{Harness, clock, fresh, sorted};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::MapStateDescriptor;

/// Map state: get, put, overwrite, remove, contains.
pub fn map_get_put_remove_contains<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .map_state::<String, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    assert_eq!(state.name(), "m");
    let a = "a".to_owned();
    assert_eq!(state.get(&1, &(), &a).unwrap(), None);
    assert!(!state.contains(&1, &(), &a).unwrap());
    state.put(&1, &(), a.clone(), 1).unwrap();
    state.put(&1, &(), "b".into(), 2).unwrap();
    assert_eq!(state.get(&1, &(), &a).unwrap(), Some(1));
    assert!(state.contains(&1, &(), &a).unwrap());
    assert!(!state.contains(&2, &(), &a).unwrap());
    state.put(&1, &(), a.clone(), 10).unwrap();
    assert_eq!(state.get(&1, &(), &a).unwrap(), Some(10));
    state.remove(&1, &(), &a).unwrap();
    assert_eq!(state.get(&1, &(), &a).unwrap(), None);
    assert!(!state.contains(&1, &(), &a).unwrap());
    assert_eq!(state.get(&1, &(), &"b".to_owned()).unwrap(), Some(2));
    // Removing an absent entry, or from an absent map, is fine.
    state.remove(&1, &(), &a).unwrap();
    state.remove(&9, &(), &a).unwrap();
    assert_eq!(state.state_keys(&()).unwrap(), vec![1]);
}

/// `put_all`, `entries`, `keys` and `values`.
pub fn map_put_all_entries_keys_values<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .map_state::<u32, String, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    state
        .put_all(&1, &(), (0..100u32).map(|i| (i, format!("v{i}"))).collect())
        .unwrap();
    // put_all overwrites existing entries and adds new ones.
    state
        .put_all(&1, &(), vec![(0, "zero".into()), (100, "v100".into())])
        .unwrap();
    state.put_all(&2, &(), vec![]).unwrap();
    let mut expected: Vec<(u32, String)> = (1..=100u32).map(|i| (i, format!("v{i}"))).collect();
    expected.insert(0, (0, "zero".into()));
    assert_eq!(sorted(state.entries(&1, &()).unwrap()), expected);
    assert_eq!(
        sorted(state.keys(&1, &()).unwrap()),
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    assert_eq!(
        sorted(state.values(&1, &()).unwrap()),
        sorted(expected.iter().map(|e| e.1.clone()).collect::<Vec<_>>())
    );
    assert!(state.entries(&2, &()).unwrap().is_empty());
    assert!(state.keys(&2, &()).unwrap().is_empty());
    assert!(state.values(&2, &()).unwrap().is_empty());
    assert_eq!(state.state_keys(&()).unwrap(), vec![1]);
}

/// `is_empty`, `clear` and `for_each`.
pub fn map_is_empty_clear_for_each<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .map_state::<u32, u32, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    assert!(state.is_empty(&1, &()).unwrap());
    state.put(&1, &(), 1, 10).unwrap();
    state.put(&1, &(), 2, 20).unwrap();
    state.put(&2, &(), 1, 30).unwrap();
    assert!(!state.is_empty(&1, &()).unwrap());
    let mut seen = Vec::new();
    state.for_each(&1, &(), |k, v| seen.push((*k, *v))).unwrap();
    assert_eq!(sorted(seen), vec![(1, 10), (2, 20)]);
    state.clear(&1, &()).unwrap();
    assert!(state.is_empty(&1, &()).unwrap());
    let mut count = 0;
    state.for_each(&1, &(), |_, _| count += 1).unwrap();
    assert_eq!(count, 0);
    assert_eq!(state.get(&1, &(), &1).unwrap(), None);
    assert_eq!(state.get(&2, &(), &1).unwrap(), Some(30));
    assert_eq!(state.state_keys(&()).unwrap(), vec![2]);
    state.clear(&1, &()).unwrap();
    state.put(&1, &(), 3, 40).unwrap();
    assert_eq!(state.entries(&1, &()).unwrap(), vec![(3, 40)]);
}

/// A map whose last entry is removed is gone: the key has no map anymore (as in Flink,
/// where an emptied map is cleared).
pub fn map_removing_last_entry_removes_key<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .map_state::<u32, u32, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    state.put(&1, &(), 1, 10).unwrap();
    state.put(&1, &(), 2, 20).unwrap();
    state.put(&2, &(), 1, 10).unwrap();
    state.remove(&1, &(), &1).unwrap();
    assert_eq!(sorted(state.state_keys(&()).unwrap()), vec![1, 2]);
    state.remove(&1, &(), &2).unwrap();
    assert!(state.is_empty(&1, &()).unwrap());
    assert_eq!(state.state_keys(&()).unwrap(), vec![2]);
}

/// The same key in different namespaces has different maps.
pub fn map_namespaces_isolate<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .map_state::<u32, u32, u64>(&MapStateDescriptor::new("m"))
        .unwrap();
    state.put(&1, &100, 1, 10).unwrap();
    state.put(&1, &200, 1, 20).unwrap();
    state.put(&1, &200, 2, 21).unwrap();
    assert_eq!(state.get(&1, &100, &1).unwrap(), Some(10));
    assert_eq!(state.get(&1, &200, &1).unwrap(), Some(20));
    assert_eq!(state.get(&1, &100, &2).unwrap(), None);
    state.clear(&1, &200).unwrap();
    assert_eq!(state.entries(&1, &100).unwrap(), vec![(1, 10)]);
    assert!(state.is_empty(&1, &200).unwrap());
    assert_eq!(state.state_keys(&100).unwrap(), vec![1]);
    assert!(state.state_keys(&200).unwrap().is_empty());
}
